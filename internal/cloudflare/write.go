package cloudflare

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/cloudflare/cloudflare-go/v7/accounts"
	"github.com/cloudflare/cloudflare-go/v7/iam"
	"github.com/cloudflare/cloudflare-go/v7/option"

	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/suggest"
)

// Policy is an allow policy to write: permission groups on resource groups,
// by id.
type Policy struct {
	PermissionGroups []string
	ResourceGroups   []string
}

// The request bodies are written by hand so that exactly these fields are
// sent: never "status" (refused on create, silently dropping the change on
// update).
type idJSON struct {
	ID string `json:"id"`
}

type policyJSON struct {
	Access           string   `json:"access"`
	PermissionGroups []idJSON `json:"permission_groups"`
	ResourceGroups   []idJSON `json:"resource_groups"`
}

func policiesJSON(ps []Policy) []policyJSON {
	out := make([]policyJSON, len(ps))
	for i, p := range ps {
		out[i] = policyJSON{Access: "allow"}
		for _, id := range p.PermissionGroups {
			out[i].PermissionGroups = append(out[i].PermissionGroups, idJSON{id})
		}
		for _, id := range p.ResourceGroups {
			out[i].ResourceGroups = append(out[i].ResourceGroups, idJSON{id})
		}
	}
	return out
}

// ErrAlreadyMember is returned by Invite when the email is already a member
// (pending or accepted): the caller reads the member back and updates it.
var ErrAlreadyMember = errors.New("already a member")

// Invite invites email with policies; Cloudflare sends the invitation and
// the member is pending until accepted. It returns the new member's id.
func (c *Client) Invite(ctx context.Context, accountID, email string, policies []Policy) (string, error) {
	body, err := json.Marshal(struct {
		Email    string       `json:"email"`
		Policies []policyJSON `json:"policies"`
	}{email, policiesJSON(policies)})
	if err != nil {
		return "", err
	}
	var p accounts.MemberNewParams
	p.AccountID.Value, p.AccountID.Present = accountID, true
	m, err := c.members.New(ctx, p, option.WithRequestBody("application/json", body))
	if err != nil {
		werr := c.wrap("invite "+email+" to account "+accountID, err)
		var ae *APIError
		if errors.As(werr, &ae) && ae.Status == 400 && strings.Contains(strings.ToLower(ae.Message), "already") {
			return "", fmt.Errorf("%w: %w", ErrAlreadyMember, werr)
		}
		return "", werr
	}
	return m.ID, nil
}

// ReplacePolicies sets a member's policies to exactly these.
func (c *Client) ReplacePolicies(ctx context.Context, accountID, memberID string, policies []Policy) error {
	body, err := json.Marshal(struct {
		Policies []policyJSON `json:"policies"`
	}{policiesJSON(policies)})
	if err != nil {
		return err
	}
	var p accounts.MemberUpdateParams
	p.AccountID.Value, p.AccountID.Present = accountID, true
	_, err = c.members.Update(ctx, memberID, p, option.WithRequestBody("application/json", body))
	return c.wrap("update member "+memberID+" of account "+accountID, err)
}

// Remove removes a member (or withdraws a pending invitation).
//
// A member already gone (404) is removed: that is what a retried DELETE
// whose first answer was lost sees, or a removal someone made meanwhile in
// the dashboard. (The account itself was read just before, so the 404 is
// the member's.)
func (c *Client) Remove(ctx context.Context, accountID, memberID string) error {
	var p accounts.MemberDeleteParams
	p.AccountID.Value, p.AccountID.Present = accountID, true
	_, err := c.members.Delete(ctx, memberID, p)
	var ae *APIError
	if err = c.wrap("remove member "+memberID+" of account "+accountID, err); errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return nil
	}
	return err
}

// GetMember reads one member back.
func (c *Client) GetMember(ctx context.Context, accountID, memberID string, groups []ResourceGroup) (Member, error) {
	var p accounts.MemberGetParams
	p.AccountID.Value, p.AccountID.Present = accountID, true
	m, err := c.members.Get(ctx, memberID, p)
	if err != nil {
		return Member{}, c.wrap("read member "+memberID+" of account "+accountID, err)
	}
	return convertMember(*m, accountID).resolve(groups), nil
}

// CreateResourceGroup creates the resource group for one resource (zones
// by id) and returns it.
func (c *Client) CreateResourceGroup(ctx context.Context, accountID string, r desired.Resource) (ResourceGroup, error) {
	object := ScopeObject(r)
	if object == "" {
		return ResourceGroup{}, fmt.Errorf("create resource group for %s: resolve the zone name to an id first", r)
	}
	// No "name": the schema marks it read-only (the SDK's params would
	// send one).
	body, err := json.Marshal(map[string]any{
		"scope": map[string]any{"key": "com.cloudflare.api.account." + accountID, "objects": []idKey{{object}}},
	})
	if err != nil {
		return ResourceGroup{}, err
	}
	var p iam.ResourceGroupNewParams
	p.AccountID.Value, p.AccountID.Present = accountID, true
	g, err := c.groups.New(ctx, p, option.WithRequestBody("application/json", body))
	if err != nil {
		return ResourceGroup{}, c.wrap(fmt.Sprintf("create resource group for %s in account %s", r, accountID), err)
	}
	return ResourceGroup{ID: g.ID, Name: g.Name, Resource: r}, nil
}

type idKey struct {
	Key string `json:"key"`
}

// ScopeObject is the scope object key of a resource: "*" for the account,
// the zone key for one zone (by id) or all zones; "" for a zone by name.
func ScopeObject(r desired.Resource) string {
	switch r.Kind {
	case desired.WholeAccount:
		return "*"
	case desired.AllZones:
		return desired.ZoneKeyPrefix + "*"
	case desired.ZoneKey:
		return desired.ZoneKeyPrefix + r.Zone
	}
	return ""
}

// PermissionGroup returns the permission group of a role name, or an error
// naming the closest names.
func (a *Account) PermissionGroup(name string) (PermissionGroup, error) {
	names := make([]string, 0, len(a.PermissionGroups))
	for _, pg := range a.PermissionGroups {
		if pg.Name == name {
			return pg, nil
		}
		names = append(names, pg.Name)
	}
	return PermissionGroup{}, fmt.Errorf("role %q does not exist in Cloudflare account %s%s", name, a.ID, suggest.Hint(name, names))
}

// Resolve turns a zone named in a declaration into the zone's key in this
// account; other resources are returned as they are.
func (a *Account) Resolve(r desired.Resource) (desired.Resource, error) {
	if r.Kind != desired.ZoneName {
		return r, nil
	}
	id, ok := a.ZoneIDs[r.Zone]
	if !ok {
		names := make([]string, 0, len(a.ZoneIDs))
		for n := range a.ZoneIDs {
			names = append(names, n)
		}
		return r, fmt.Errorf("zone %s is not in account %s%s", r.Zone, a.ID, suggest.Hint(r.Zone, names))
	}
	return desired.Resource{Kind: desired.ZoneKey, Zone: id}, nil
}

// Display turns a zone key back into the zone's name when it is known.
func (a *Account) Display(r desired.Resource) desired.Resource {
	if r.Kind == desired.ZoneKey {
		if name, ok := a.ZoneNames[r.Zone]; ok {
			return desired.Resource{Kind: desired.ZoneName, Zone: name}
		}
	}
	return r
}

// ResourceGroup returns the existing resource group for a resolved
// resource; the groups must have been loaded (LoadResourceGroups).
func (a *Account) ResourceGroup(r desired.Resource) (ResourceGroup, bool) {
	for _, g := range a.ResourceGroups {
		if g.Resource == r {
			return g, true
		}
	}
	return ResourceGroup{}, false
}

// FindMember returns the id of the member with this email (any case).
func (c *Client) FindMember(ctx context.Context, accountID, email string) (string, error) {
	members, err := c.listMembers(ctx, accountID)
	if err != nil {
		return "", err
	}
	for _, m := range members {
		if m.Email == strings.ToLower(email) {
			return m.ID, nil
		}
	}
	return "", fmt.Errorf("no member %s in account %s", email, accountID)
}
