package cloudflare

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/cloudflare/cloudflare-go/v7/iam"
	"github.com/cloudflare/cloudflare-go/v7/option"
	"golang.org/x/sync/errgroup"

	"github.com/cfaccess/reconciler/internal/desired"
)

// User groups give their policies to every member in them: a member's
// effective access is its own policies and those of its groups
// (developers.cloudflare.com fundamentals/manage-members/user-groups:
// "User Group permissions are inherited by each member of the group").
// cloudflare-go v7.9.0 iam.UserGroupService and UserGroupMemberService
// reach them: GET /accounts/{id}/iam/user_groups and
// …/user_groups/{gid}/members, both paged (100 by default, 500 at most).

// UserGroup is a user group of the account.
type UserGroup struct {
	ID, Name string
	// Access is what the group's allow policies give (zones by id),
	// sorted; Denies counts its deny policies; Unknown lists scopes the
	// reconciler cannot express.
	Access  []desired.Access
	Denies  int
	Unknown []string
	// Policies are the group's policies as listed, by id: a member answer
	// that lists one of these ids is showing what the member inherits,
	// not its own; an update names the ones it keeps.
	Policies []GroupPolicy
	// Members are the group's members (account member ids), sorted.
	Members []GroupMember
	// ModifiedOn is the group's modified_on, as the API wrote it.
	ModifiedOn string

	parts []policyPart
}

// GroupPolicy is a policy of a user group: its id, and the permission
// groups and resource groups it is made of (ids, sorted).
type GroupPolicy struct {
	ID                               string
	Deny                             bool
	PermissionGroups, ResourceGroups []string
}

// GroupMember is a member of a user group.
type GroupMember struct {
	ID, Email, Status string
}

// userGroupPerPage is the page size of the user-group lists: their
// default (the OpenAPI operations: 100, at most 500).
const userGroupPerPage = 100

// NotChecked is why part of an account could not be read with these
// credentials and was not checked, for the plan to say plainly.
type NotChecked struct {
	What string // "user groups", "organization members"
	Why  string
}

func (n NotChecked) String() string { return n.What + " not checked: " + n.Why }

// notPermitted reports whether err is a refusal of these credentials (or
// an endpoint the account's plan lacks): part of the account is then not
// checked, rather than the whole read failing.
func notPermitted(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && (ae.Auth() || ae.Status == http.StatusNotFound)
}

// readUserGroups lists the account's user groups and each one's members.
// A token that may not read them gives a NotChecked, not an error.
func (c *Client) readUserGroups(ctx context.Context, accountID string, seen *groupSet) ([]UserGroup, *NotChecked, error) {
	groups, err := c.listUserGroups(ctx, accountID, func(g iam.UserGroupListResponse) (UserGroup, error) {
		return convertUserGroup(g, accountID, seen)
	})
	if notPermitted(err) {
		var ae *APIError
		errors.As(err, &ae)
		return nil, &NotChecked{What: "user groups", Why: fmt.Sprintf("the token may not read them (%d %s): access through user groups was not checked; give the token Account Settings Read", ae.Status, http.StatusText(ae.Status))}, nil
	}
	if err != nil {
		return nil, nil, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.cfg.Concurrency)
	var mu sync.Mutex
	for i := range groups {
		g.Go(func() error {
			ms, err := c.listUserGroupMembers(gctx, accountID, groups[i].ID)
			mu.Lock()
			defer mu.Unlock()
			groups[i].Members = ms
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	slices.SortFunc(groups, func(a, b UserGroup) int { return cmp.Compare(a.Name, b.Name) })
	return groups, nil, nil
}

// listUserGroups lists the account's user groups, each made by convert.
func (c *Client) listUserGroups(ctx context.Context, accountID string, convert func(iam.UserGroupListResponse) (UserGroup, error)) ([]UserGroup, error) {
	return fetchAll(ctx, c, "list user groups of account "+accountID, listMode{perPage: userGroupPerPage},
		func(g UserGroup) string { return g.ID },
		func(ctx context.Context, page int) ([]UserGroup, pageInfo, error) {
			var p iam.UserGroupListParams
			p.AccountID.Value, p.AccountID.Present = accountID, true
			p.Page.Value, p.Page.Present = float64(page), true
			p.PerPage.Value, p.PerPage.Present = userGroupPerPage, true
			res, err := c.userGroups.List(ctx, p)
			if err != nil {
				return nil, pageInfo{}, err
			}
			out := make([]UserGroup, len(res.Result))
			for i, g := range res.Result {
				if out[i], err = convert(g); err != nil {
					return nil, pageInfo{}, err
				}
			}
			return out, parsePageInfo(res.JSON.RawJSON()), nil
		})
}

func convertUserGroup(g iam.UserGroupListResponse, accountID string, seen *groupSet) (UserGroup, error) {
	op := "list user groups of account " + accountID
	if !IsID(g.ID) {
		return UserGroup{}, untrusted(op, fmt.Sprintf("a user group's id %q is not a Cloudflare id", truncate(g.ID, 40)))
	}
	out := UserGroup{ID: strings.Clone(g.ID), Name: strings.Clone(g.Name), ModifiedOn: strings.Clone(g.JSON.ModifiedOn.Raw())}
	for _, p := range g.Policies {
		raw := rawPolicy{id: p.ID, deny: p.Access == iam.UserGroupListResponsePoliciesAccessDeny}
		gp := GroupPolicy{ID: strings.Clone(p.ID), Deny: raw.deny}
		for _, pg := range p.PermissionGroups {
			raw.roles = append(raw.roles, pg.Name)
			gp.PermissionGroups = append(gp.PermissionGroups, strings.Clone(pg.ID))
		}
		for _, rg := range p.ResourceGroups {
			raw.groups = append(raw.groups, rawResourceGroup{id: rg.ID, name: rg.Name, scope: rg.JSON.Scope.Raw()})
			gp.ResourceGroups = append(gp.ResourceGroups, strings.Clone(rg.ID))
		}
		out.parts = append(out.parts, raw.convert(accountID, seen))
		if p.ID != "" {
			slices.Sort(gp.PermissionGroups)
			slices.Sort(gp.ResourceGroups)
			out.Policies = append(out.Policies, gp)
		}
	}
	return out, nil
}

func (c *Client) listUserGroupMembers(ctx context.Context, accountID, groupID string) ([]GroupMember, error) {
	op := "list members of user group " + groupID + " of account " + accountID
	ms, err := fetchAll(ctx, c, op, listMode{perPage: userGroupPerPage}, func(m GroupMember) string { return m.ID },
		func(ctx context.Context, page int) ([]GroupMember, pageInfo, error) {
			var p iam.UserGroupMemberListParams
			p.AccountID.Value, p.AccountID.Present = accountID, true
			p.Page.Value, p.Page.Present = float64(page), true
			p.PerPage.Value, p.PerPage.Present = userGroupPerPage, true
			res, err := c.userGroupMembers.List(ctx, groupID, p)
			if err != nil {
				return nil, pageInfo{}, err
			}
			out := make([]GroupMember, len(res.Result))
			for i, m := range res.Result {
				if !IsID(m.ID) {
					return nil, pageInfo{}, untrusted(op, fmt.Sprintf("a member's id %q is not a Cloudflare id", truncate(m.ID, 40)))
				}
				out[i] = GroupMember{ID: strings.Clone(m.ID), Email: strings.Clone(strings.ToLower(m.Email)), Status: canon(string(m.Status))}
			}
			return out, parsePageInfo(res.JSON.RawJSON()), nil
		})
	slices.SortFunc(ms, func(a, b GroupMember) int { return cmp.Compare(a.ID, b.ID) })
	return ms, err
}

// resolveUserGroups completes the groups' access once resource groups are
// known.
func (a *Account) resolveUserGroups() {
	for i := range a.UserGroups {
		g := &a.UserGroups[i]
		g.Access, g.Denies, g.Unknown = combine(g.parts, a.ResourceGroups)
	}
}

// GroupsOf returns the user groups a member is in.
func (a *Account) GroupsOf(memberID string) []*UserGroup {
	var out []*UserGroup
	for i := range a.UserGroups {
		if slices.ContainsFunc(a.UserGroups[i].Members, func(m GroupMember) bool { return m.ID == memberID }) {
			out = append(out, &a.UserGroups[i])
		}
	}
	return out
}

// inherited tells a member's policies held through its user groups, by
// the group's policy id: a member answer may list them beside the
// member's own (the dashboard "shows all permission policies associated
// with a member; including policies inherited from group associations",
// changelog 2025-10-30). Never by content: a member's own policy may
// hold what a policy of its group holds, under an id of its own, and is
// still the member's (issue 19: matched by content, it was read back as
// inherited, and a write that took was reported as not taken). Were
// Cloudflare to list inherited policies under ids of their own, which
// nothing documents, they would read as the member's: cfaccess would plan
// to remove them and the read-back would say the change did not take —
// loud, and harmless.
type inherited map[string]bool

func (in inherited) has(p policyPart) bool { return p.id != "" && in[p.id] }

// inheritedPolicies returns the ids of the policies of every user group
// of the account: a member's own policies have ids of their own, so a
// member answer listing one of these is showing what it inherits — whether
// or not acct knows it joined that group yet.
func (a *Account) inheritedPolicies() inherited {
	out := inherited{}
	for _, g := range a.UserGroups {
		for _, p := range g.Policies {
			out[p.ID] = true
		}
	}
	return out
}

// LeaveUserGroup takes a member out of a user group (DELETE
// …/user_groups/{gid}/members/{mid}) and reads the group's member back to
// confirm: a member already out is done.
func (c *Client) LeaveUserGroup(ctx context.Context, accountID, groupID, memberID string) error {
	op := "take member " + memberID + " out of user group " + groupID + " of account " + accountID
	if err := checkIDs(op, accountID, groupID, memberID); err != nil {
		return err
	}
	var p iam.UserGroupMemberDeleteParams
	p.AccountID.Value, p.AccountID.Present = accountID, true
	_, err := c.userGroupMembers.Delete(ctx, groupID, memberID, p)
	var ae *APIError
	if err = c.wrap(op, err); err != nil && !(errors.As(err, &ae) && ae.Status == http.StatusNotFound) {
		return err
	}
	var g iam.UserGroupMemberGetParams
	g.AccountID.Value, g.AccountID.Present = accountID, true
	_, err = c.userGroupMembers.Get(ctx, groupID, memberID, g)
	switch err = c.wrap(op+" (read back)", err); {
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		return nil
	case err != nil:
		return err
	}
	return fmt.Errorf("%s: the change did not take: the member is still in the group", op)
}

// userGroupBody is a user group as created: its name and policies.
// Policies go without ids, as the docs' examples and the Terraform
// provider send them.
type userGroupBody struct {
	Name     string       `json:"name"`
	Policies []policyJSON `json:"policies"`
}

// userGroupPolicies is a user group update: the whole policy list, which
// PUT replaces ("send another PUT request … with an empty policy array to
// overwrite", the user-groups docs), and no name — the name never changes,
// and the docs' example for groups pushed by SCIM, whose names the API
// refuses to change, sends the policies alone.
type userGroupPolicies struct {
	Policies []groupPolicyJSON `json:"policies"`
}

// groupPolicyJSON is a policy of a user-group update: with the id of the
// group's policy it keeps or edits in place.
type groupPolicyJSON struct {
	ID string `json:"id,omitempty"`
	policyJSON
}

// updatePolicies lays out a user group's new policies over its current
// ones. The 2026 schema (iam_update_user_group_body) and cloudflare-go
// v7.9.0 (UserGroupUpdateParamsPolicy.ID, api:"required") give every
// policy of an update the id of a policy of the group; nothing says what
// id a policy the group did not have takes, and Cloudflare's own Terraform
// provider (cloudflare_user_group, v5.19 to v5.22: its policy model has no
// id; acceptance test TestAccCloudflareUserGroup_UpdatePolicy) and the
// user-groups docs' example send policies without one. So each new policy
// takes the id of the group's policy it keeps (the same permission and
// resource groups) or, failing that, of one it replaces; only a policy
// beyond the group's count goes without an id, as Terraform sends them.
// Whether ids survive is not documented either way: the answer is read
// back, never assumed.
func updatePolicies(current []GroupPolicy, want []Policy) []groupPolicyJSON {
	out := make([]groupPolicyJSON, len(want))
	body := policiesJSON(want)
	used := make([]bool, len(current))
	placed := make([]bool, len(want))
	same := func(c GroupPolicy, w Policy) bool {
		return !c.Deny && slices.Equal(c.PermissionGroups, sortedIDs(w.PermissionGroups)) && slices.Equal(c.ResourceGroups, sortedIDs(w.ResourceGroups))
	}
	for i, w := range want {
		out[i].policyJSON = body[i]
		for j, c := range current {
			if !used[j] && same(c, w) {
				out[i].ID, used[j], placed[i] = c.ID, true, true
				break
			}
		}
	}
	for i := range want {
		if placed[i] {
			continue
		}
		if j := slices.Index(used, false); j >= 0 {
			out[i].ID, used[j] = current[j].ID, true
		}
	}
	return out
}

func sortedIDs(ids []string) []string {
	return slices.Compact(slices.Sorted(slices.Values(ids)))
}

// CreateUserGroup makes a user group with its policies and returns it as
// Cloudflare answers it (its access resolved with acct's resource groups).
// Not retried: a retry after a lost answer would make a second group, and
// the next plan finds the one that was made, by name.
func (c *Client) CreateUserGroup(ctx context.Context, acct *Account, name string, policies []Policy) (UserGroup, error) {
	op := fmt.Sprintf("create user group %q in account %s", name, acct.ID)
	body, err := json.Marshal(userGroupBody{name, policiesJSON(policies)})
	if err != nil {
		return UserGroup{}, err
	}
	var p iam.UserGroupNewParams
	p.AccountID.Value, p.AccountID.Present = acct.ID, true
	g, err := c.userGroups.New(ctx, p, option.WithRequestBody("application/json", body), option.WithMaxRetries(0))
	if err != nil {
		return UserGroup{}, c.wrap(op, err)
	}
	answer, err := c.groupAnswer(op, acct, g.JSON.RawJSON())
	if err == nil {
		// Its policy ids are inherited ones from now on.
		acct.UserGroups = append(acct.UserGroups, answer)
	}
	return answer, err
}

// UpdateUserGroup sets a user group's policies (name is for messages),
// naming the group's current policies it keeps (updatePolicies), and
// returns the group as Cloudflare answers it; acct's copy of the group
// takes the answer's policies, so that later read-backs of its members
// tell what they inherit.
func (c *Client) UpdateUserGroup(ctx context.Context, acct *Account, groupID, name string, policies []Policy) (UserGroup, error) {
	op := fmt.Sprintf("update user group %q of account %s", name, acct.ID)
	if err := checkIDs(op, acct.ID, groupID); err != nil {
		return UserGroup{}, err
	}
	var current []GroupPolicy
	i := slices.IndexFunc(acct.UserGroups, func(g UserGroup) bool { return g.ID == groupID })
	if i >= 0 {
		current = acct.UserGroups[i].Policies
	}
	body, err := json.Marshal(userGroupPolicies{updatePolicies(current, policies)})
	if err != nil {
		return UserGroup{}, err
	}
	var p iam.UserGroupUpdateParams
	p.AccountID.Value, p.AccountID.Present = acct.ID, true
	g, err := c.userGroups.Update(ctx, groupID, p, option.WithRequestBody("application/json", body))
	if err != nil {
		return UserGroup{}, c.wrap(op, err)
	}
	answer, err := c.groupAnswer(op, acct, g.JSON.RawJSON())
	if err == nil && i >= 0 {
		acct.UserGroups[i].Policies, acct.UserGroups[i].parts = answer.Policies, answer.parts
		acct.UserGroups[i].Access, acct.UserGroups[i].Denies, acct.UserGroups[i].Unknown = answer.Access, answer.Denies, answer.Unknown
	}
	return answer, err
}

// groupAnswer reads a user group answer (create, update and get answer as
// a listed group, in the SDK's types of each).
func (c *Client) groupAnswer(op string, acct *Account, raw string) (UserGroup, error) {
	var g iam.UserGroupListResponse
	if err := json.Unmarshal([]byte(raw), &g); err != nil {
		return UserGroup{}, untrusted(op, "the answer is not a user group: "+err.Error())
	}
	out, err := convertUserGroup(g, acct.ID, nil)
	if err != nil {
		return UserGroup{}, untrusted(op, "the answer holds no user group id")
	}
	out.Access, out.Denies, out.Unknown = combine(out.parts, acct.ResourceGroups)
	return out, nil
}

// JoinUserGroup puts an account member in a user group (POST
// …/members with [{"id": member id}]) and reads the group's member back
// to confirm.
func (c *Client) JoinUserGroup(ctx context.Context, accountID, groupID, memberID string) error {
	op := "put member " + memberID + " in user group " + groupID + " of account " + accountID
	if err := checkIDs(op, accountID, groupID, memberID); err != nil {
		return err
	}
	body, err := json.Marshal([]idJSON{{memberID}})
	if err != nil {
		return err
	}
	var p iam.UserGroupMemberNewParams
	p.AccountID.Value, p.AccountID.Present = accountID, true
	if _, err := c.userGroupMembers.New(ctx, groupID, p, option.WithRequestBody("application/json", body)); err != nil {
		return c.wrap(op, err)
	}
	var g iam.UserGroupMemberGetParams
	g.AccountID.Value, g.AccountID.Present = accountID, true
	if _, err := c.userGroupMembers.Get(ctx, groupID, memberID, g); err != nil {
		return c.wrap(op+" (read back)", err)
	}
	return nil
}
