package cloudflare

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
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
// sent: never "status" on create (refused, code 1001), always the member's
// current status on update (without it the change is silently dropped).
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

// checkIDs refuses ids that are not Cloudflare ids before they go into a
// request path: a member id such as "../../../zones/x" would otherwise
// address another resource.
func checkIDs(op string, ids ...string) error {
	for _, id := range ids {
		if !IsID(id) {
			return fmt.Errorf("%s: %q is not a Cloudflare id (32 hexadecimal characters): refused", op, truncate(id, 40))
		}
	}
	return nil
}

// ErrAlreadyMember is returned by Invite when the email is already a member
// (pending or accepted): the caller reads the member back and updates it.
var ErrAlreadyMember = errors.New("already a member")

// codeAlreadyMember is Cloudflare's answer to an invite of an email that is
// already a member: 400, code 1008, "Account member already exists for
// email address" (baton-cloudflare user.go).
const codeAlreadyMember = 1008

// Invite invites email with policies; Cloudflare sends the invitation and
// the member is pending until accepted. It returns the new member's id.
func (c *Client) Invite(ctx context.Context, accountID, email string, policies []Policy) (string, error) {
	op := "invite " + email + " to account " + accountID
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
		werr := c.wrap(op, err)
		var ae *APIError
		if errors.As(werr, &ae) && ae.Status == http.StatusBadRequest &&
			(ae.Code == codeAlreadyMember || strings.Contains(strings.ToLower(ae.Message), "already exists")) {
			return "", fmt.Errorf("%w: %w", ErrAlreadyMember, werr)
		}
		return "", werr
	}
	if !IsID(m.ID) {
		return "", untrusted(op, "the answer holds no member id")
	}
	return m.ID, nil
}

// ReplacePolicies sets a member's policies to exactly these. status must be
// the member's current status: Cloudflare needs it on every member PUT and
// silently drops the change, answering 200, without it or with another
// (Terraform provider PR 6581, Cloudflare ticket ACCT-10961). Read the
// member back to confirm the change took.
func (c *Client) ReplacePolicies(ctx context.Context, accountID, memberID, status string, policies []Policy) error {
	op := "update member " + memberID + " of account " + accountID
	if err := checkIDs(op, accountID, memberID); err != nil {
		return err
	}
	if status != "accepted" && status != "pending" {
		return fmt.Errorf("%s: the member's current status is %q; only accepted or pending members are updated", op, status)
	}
	body, err := json.Marshal(struct {
		Status   string       `json:"status"`
		Policies []policyJSON `json:"policies"`
	}{status, policiesJSON(policies)})
	if err != nil {
		return err
	}
	var p accounts.MemberUpdateParams
	p.AccountID.Value, p.AccountID.Present = accountID, true
	_, err = c.members.Update(ctx, memberID, p, option.WithRequestBody("application/json", body))
	return c.wrap(op, err)
}

// Remove removes a member (or withdraws a pending invitation).
//
// A member already gone (404) is removed: that is what a retried DELETE
// whose first answer was lost sees, or a removal someone made meanwhile in
// the dashboard. (The account itself was read just before, so the 404 is
// the member's.)
func (c *Client) Remove(ctx context.Context, accountID, memberID string) error {
	if err := checkIDs("remove member "+memberID+" of account "+accountID, accountID, memberID); err != nil {
		return err
	}
	var p accounts.MemberDeleteParams
	p.AccountID.Value, p.AccountID.Present = accountID, true
	_, err := c.members.Delete(ctx, memberID, p)
	var ae *APIError
	if err = c.wrap("remove member "+memberID+" of account "+accountID, err); errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return nil
	}
	return err
}

// GetMember reads one member of acct back: its own policies, those of its
// user groups (as acct read them) left out.
func (c *Client) GetMember(ctx context.Context, acct *Account, memberID string) (Member, error) {
	accountID := acct.ID
	if err := checkIDs("read member "+memberID+" of account "+accountID, accountID, memberID); err != nil {
		return Member{}, err
	}
	m, err := c.members.Get(ctx, memberID, memberGetParams(accountID))
	if err != nil {
		return Member{}, c.wrap("read member "+memberID+" of account "+accountID, err)
	}
	conv, err := convertMember(*m, accountID, nil)
	if err != nil {
		return Member{}, err
	}
	return conv.resolve(acct.ResourceGroups, acct.inheritedPolicies()), nil
}

func memberGetParams(accountID string) accounts.MemberGetParams {
	var p accounts.MemberGetParams
	p.AccountID.Value, p.AccountID.Present = accountID, true
	return p
}

// CreateResourceGroup creates a resource group named name for the whole
// account or for zones (by id) and returns it. Cloudflare requires the
// name (cloudflare-go v7.9.0 ResourceGroupNewParams.Name is required;
// 2026 iam_request_create_resource_group requires name and scope).
func (c *Client) CreateResourceGroup(ctx context.Context, accountID, name string, rs []desired.Resource) (ResourceGroup, error) {
	op := fmt.Sprintf("create resource group %q in account %s", name, accountID)
	objects, err := scopeObjects(rs)
	if err != nil {
		return ResourceGroup{}, fmt.Errorf("%s: %w", op, err)
	}
	body, err := json.Marshal(map[string]any{
		"name":  name,
		"scope": map[string]any{"key": "com.cloudflare.api.account." + accountID, "objects": objects},
	})
	if err != nil {
		return ResourceGroup{}, err
	}
	var p iam.ResourceGroupNewParams
	p.AccountID.Value, p.AccountID.Present = accountID, true
	// Not retried: a retry after a lost answer would make a second group.
	// The caller lists the groups again to find out (Writer).
	g, err := c.groups.New(ctx, p, option.WithRequestBody("application/json", body), option.WithMaxRetries(0))
	if err != nil {
		return ResourceGroup{}, c.wrap(op, err)
	}
	if !IsID(g.ID) {
		return ResourceGroup{}, untrusted(op, "the answer holds no resource group id")
	}
	key, keys := rawScope(g.JSON.Scope.Raw())
	got, _, ok := scopeResources(accountID, key, keys)
	if want := normalize(rs); !ok || !slices.Equal(got, want) {
		return ResourceGroup{}, untrusted(op, "the group Cloudflare made has another scope than asked for")
	}
	return ResourceGroup{ID: g.ID, Name: g.Name, Resources: got}, nil
}

type idKey struct {
	Key string `json:"key"`
}

// scopeObjects are the scope objects of a resource group for rs: "*" for
// the whole account, the zone keys of zones (by id).
func scopeObjects(rs []desired.Resource) ([]idKey, error) {
	rs = normalize(rs)
	if len(rs) == 1 && rs[0].Kind == desired.WholeAccount {
		return []idKey{{"*"}}, nil
	}
	out := make([]idKey, 0, len(rs))
	for _, r := range rs {
		if r.Kind != desired.ZoneKey {
			return nil, fmt.Errorf("%s: only the whole account or zones by id make a resource group", r)
		}
		out = append(out, idKey{desired.ZoneKeyPrefix + r.Zone})
	}
	if len(out) == 0 {
		return nil, errors.New("no resources")
	}
	return out, nil
}

// normalize sorts resources and drops duplicates, as scopeResources
// returns them.
func normalize(rs []desired.Resource) []desired.Resource {
	out := slices.Clone(rs)
	slices.SortFunc(out, desired.Resource.Compare)
	return slices.Compact(out)
}

// PermissionGroup returns the permission group of a role name, or an error
// naming the closest names.
func (a *Account) PermissionGroup(name string) (PermissionGroup, error) {
	for _, pg := range a.PermissionGroups {
		if pg.Name == name {
			return pg, nil
		}
	}
	names := make([]string, len(a.PermissionGroups))
	for i, pg := range a.PermissionGroups {
		names[i] = pg.Name
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

// ResourceGroup returns an existing resource group covering exactly rs
// (the whole account, or these zones by id) — made by cfaccess, by hand or
// ad hoc by the dashboard — preferring one that is not ad hoc. The groups
// must have been listed (Writer).
func (a *Account) ResourceGroup(rs []desired.Resource) (ResourceGroup, bool) {
	want := normalize(rs)
	found, ok := ResourceGroup{}, false
	for _, g := range a.ResourceGroups {
		if slices.Equal(g.Resources, want) && (!ok || found.AdHoc && !g.AdHoc) {
			found, ok = g, true
		}
	}
	return found, ok
}

// groupNamed reports whether a resource group of this name exists.
func (a *Account) groupNamed(name string) bool {
	return slices.ContainsFunc(a.ResourceGroups, func(g ResourceGroup) bool { return g.Name == name })
}

// findMember returns the member with this email (any case).
func (c *Client) findMember(ctx context.Context, accountID, email string) (Member, error) {
	members, err := c.listMembers(ctx, accountID, nil)
	if err != nil {
		return Member{}, err
	}
	for _, m := range members {
		if m.Email == strings.ToLower(email) {
			return m.Member, nil
		}
	}
	return Member{}, fmt.Errorf("no member %s in account %s", email, accountID)
}
