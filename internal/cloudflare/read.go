package cloudflare

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unique"

	"github.com/cloudflare/cloudflare-go/v7/accounts"
	"github.com/cloudflare/cloudflare-go/v7/iam"
	"github.com/cloudflare/cloudflare-go/v7/shared"
	"github.com/cloudflare/cloudflare-go/v7/zones"
	"golang.org/x/sync/errgroup"

	"github.com/cfaccess/reconciler/internal/desired"
)

// Member is a live member with its effective access.
type Member struct {
	ID        string
	Email     string // lower case
	Status    string // accepted or pending
	TwoFactor bool
	// Access is the effective access of the member's allow policies (or of
	// its legacy roles, on the whole account), sorted; zones by id
	// (desired.ZoneKey).
	Access []desired.Access
	// Denies counts deny policies; cfaccess never writes them, so a member
	// with any differs from every declaration.
	Denies int
	// Unknown lists scopes the reconciler cannot express (resource groups
	// of other kinds); a member with any differs from every declaration.
	Unknown []string
	// Legacy is set when the member is described by legacy roles only.
	Legacy bool
}

// unresolvedGroup is a policy's resource group that came without a scope.
type unresolvedGroup struct {
	groupID string
	roles   []string
}

// PermissionGroup is a permission group of the account; its name is the
// role name declarations use.
type PermissionGroup struct {
	ID   string
	Name string
	// Scope is where the role may be granted, from meta.scopes:
	// "com.cloudflare.api.account" is account-scoped,
	// "com.cloudflare.api.account.zone" domain-scoped.
	Scope desired.Scope
}

// scopeOfMeta reads a permission group's meta.scopes.
func scopeOfMeta(scopes string) desired.Scope {
	switch scopes {
	case "com.cloudflare.api.account":
		return desired.ScopeAccount
	case "com.cloudflare.api.account.zone":
		return desired.ScopeDomain
	}
	return desired.ScopeUnknown
}

// ResourceGroup is a resource group whose scope the reconciler understands:
// the whole account, or one or more zones of it (a domain group, or the
// dashboard's ad-hoc group for one zone).
type ResourceGroup struct {
	ID   string
	Name string
	// Resources are the account ([WholeAccount]) or the zones (by id,
	// sorted) the group covers.
	Resources []desired.Resource
	// AdHoc is set for a group keyed by its zone, as the dashboard makes
	// them.
	AdHoc bool
}

// Account is the live state of one account. A read returns all of it or
// an error.
type Account struct {
	ID               string
	Name             string
	Members          []Member // sorted by email
	PermissionGroups []PermissionGroup
	// ResourceGroups are, after a read, the groups the members' policies
	// use (member responses carry their scopes); a Writer lists every
	// other group of the account into its copy, only when a change needs
	// it.
	ResourceGroups []ResourceGroup
	// ZoneIDs maps zone names to ids, for the zones asked for.
	ZoneIDs map[string]string
	// ZoneNames maps zone ids back to names.
	ZoneNames map[string]string
	// UserGroups are the account's user groups with their members, by
	// name; a member's access through them is not in its Access.
	UserGroups []UserGroup
	// Organization is the organization the account belongs to ("" for
	// none); OrgAdmins its members, each a Super Administrator of every
	// account of it without being an account member.
	Organization string
	OrgAdmins    []OrgMember
	// NotChecked lists what these credentials could not read.
	NotChecked []NotChecked

	// allGroups says ResourceGroups lists every group of the account,
	// not only those the members use.
	allGroups bool
}

// ReadOptions say which zones to resolve.
type ReadOptions struct {
	// Zones lists zone names to resolve (those the declarations name).
	Zones []string
	// AllZones resolves every zone of the account (for import).
	AllZones bool
	// OrganizationID, when set, is the organization whose members (its
	// Super Administrators) are read too.
	OrganizationID string
}

// ReadAccount reads an account: members, permission groups, resource
// groups and zones, lists fetched concurrently once their page count is
// known. Any failure fails the whole read.
func (c *Client) ReadAccount(ctx context.Context, accountID string, opts ReadOptions) (*Account, error) {
	acct := newAccount(accountID)
	r := &accountRead{c: c, opts: opts, acct: acct, seen: &groupSet{byID: map[string]ResourceGroup{}}}
	// The account first, alone: refused credentials then give one clear
	// error instead of several concurrent ones.
	name, org, err := c.account(ctx, accountID)
	if err != nil {
		return nil, err
	}
	acct.Name, acct.Organization = name, org
	if err := r.readLists(ctx); err != nil {
		return nil, err
	}
	if opts.OrganizationID == "" && org != "" {
		r.note(&NotChecked{What: "organization " + org,
			Why: "this account belongs to an organization whose Super Administrators hold every account of it without being members; set the provider's organization_id (with a Global API key) to list them"})
	}
	acct.NotChecked = r.notChecked()
	acct.ResourceGroups = r.seen.sorted()
	// Member responses carry each resource group's scope, so the group
	// list is needed only when one came without it — or, later, to write
	// a group no member uses yet (Writer). A steady-state
	// read skips it, and a plan where resource groups cannot be listed
	// (Cloudflare: they "may be unavailable on some plans") still writes
	// with the groups its members use.
	if err := c.resolveMissingScopes(ctx, acct, r.members); err != nil {
		return nil, err
	}
	slices.SortFunc(acct.Members, func(a, b Member) int { return cmp.Compare(a.Email, b.Email) })
	return acct, nil
}

// newAccount returns an empty account, ready to be read into.
func newAccount(accountID string) *Account {
	return &Account{ID: accountID, ZoneIDs: map[string]string{}, ZoneNames: map[string]string{}}
}

// addZone notes a zone's id and name (in lower case).
func (a *Account) addZone(z zone) {
	name := strings.ToLower(z.Name)
	a.ZoneIDs[name], a.ZoneNames[z.ID] = z.ID, name
}

// accountRead is one ReadAccount: the account its concurrent reads fill,
// and what they gather for it.
type accountRead struct {
	c    *Client
	opts ReadOptions
	acct *Account
	// members are the members read, their access still by policy; seen
	// collects the resource groups that member and user group answers
	// show.
	members []converted
	seen    *groupSet
	// mu guards acct's zones and nc, what could not be read (nil
	// entries for none), in the order found.
	mu sync.Mutex
	nc []*NotChecked
}

// readLists reads the account's lists concurrently, the first failure
// cancelling the others.
func (r *accountRead) readLists(ctx context.Context) error {
	accountID, opts := r.acct.ID, r.opts
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		r.members, err = r.c.listMembers(gctx, accountID, r.seen)
		return err
	})
	g.Go(func() error {
		groups, nc, err := r.c.readUserGroups(gctx, accountID, r.seen)
		r.acct.UserGroups = groups
		r.note(nc)
		return err
	})
	switch org := r.acct.Organization; {
	case opts.OrganizationID != "" && org != "" && !strings.EqualFold(org, opts.OrganizationID):
		r.note(&NotChecked{What: "organization " + org,
			Why: "the provider's organization_id is " + opts.OrganizationID + ", not the organization this account belongs to: its Super Administrators were not read; correct organization_id"})
	case opts.OrganizationID != "":
		g.Go(func() error {
			admins, nc, err := r.c.readOrgMembers(gctx, opts.OrganizationID)
			r.acct.OrgAdmins = admins
			r.note(nc)
			return err
		})
	}
	g.Go(func() (err error) {
		r.acct.PermissionGroups, err = r.c.listPermissionGroups(gctx, accountID)
		return err
	})
	names := slices.Compact(slices.Sorted(slices.Values(opts.Zones)))
	// Looking zones up one by one costs a request each; beyond a few,
	// listing them all (50 a page) is cheaper.
	if opts.AllZones || len(names) > 3 {
		g.Go(func() error {
			return r.readZones(gctx, "", func(z zone) bool {
				return opts.AllZones || slices.Contains(names, strings.ToLower(z.Name))
			})
		})
	} else {
		for _, name := range names {
			g.Go(func() error {
				return r.readZones(gctx, name, func(z zone) bool { return strings.EqualFold(z.Name, name) })
			})
		}
	}
	return g.Wait()
}

// readZones lists the account's zones named name ("" for all of them)
// and keeps those keep accepts.
func (r *accountRead) readZones(ctx context.Context, name string, keep func(zone) bool) error {
	zs, err := r.c.listZones(ctx, r.acct.ID, name)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, z := range zs {
		if keep(z) {
			r.acct.addZone(z)
		}
	}
	return err
}

// note records what could not be read (nothing, for nil).
func (r *accountRead) note(nc *NotChecked) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nc = append(r.nc, nc)
}

// notChecked lists what could not be read, in the order it was found.
func (r *accountRead) notChecked() []NotChecked {
	var out []NotChecked
	for _, nc := range r.nc {
		if nc != nil {
			out = append(out, *nc)
		}
	}
	return out
}

// ReadCatalogue reads what names the ids of an account's writes: its
// permission groups, resource groups (with their scopes), zones, and user
// groups (names only). No member is read: a catalogue is for telling what
// a logged write gave (reconciler report), which costs a few requests
// where a full read costs one per 50 members.
func (c *Client) ReadCatalogue(ctx context.Context, accountID string) (*Account, error) {
	if err := checkIDs("read account "+accountID, accountID); err != nil {
		return nil, err
	}
	acct := newAccount(accountID)
	acct.allGroups = true
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		acct.PermissionGroups, err = c.listPermissionGroups(gctx, accountID)
		return err
	})
	g.Go(func() (err error) {
		acct.ResourceGroups, err = c.listResourceGroups(gctx, accountID)
		return err
	})
	g.Go(func() error {
		zs, err := c.listZones(gctx, accountID, "")
		for _, z := range zs {
			acct.addZone(z)
		}
		return err
	})
	g.Go(func() error {
		groups, err := c.listUserGroups(gctx, accountID, func(g iam.UserGroupListResponse) (UserGroup, error) {
			return UserGroup{ID: strings.Clone(g.ID), Name: strings.Clone(g.Name)}, nil
		})
		if notPermitted(err) {
			return nil // group names then come from the log alone
		}
		acct.UserGroups = groups
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return acct, nil
}

// PermissionGroupByID returns the permission group of an id.
func (a *Account) PermissionGroupByID(id string) (PermissionGroup, bool) {
	i := slices.IndexFunc(a.PermissionGroups, func(pg PermissionGroup) bool { return pg.ID == id })
	if i < 0 {
		return PermissionGroup{}, false
	}
	return a.PermissionGroups[i], true
}

// ResourceGroupByID returns the resource group of an id.
func (a *Account) ResourceGroupByID(id string) (ResourceGroup, bool) {
	i := slices.IndexFunc(a.ResourceGroups, func(g ResourceGroup) bool { return g.ID == id })
	if i < 0 {
		return ResourceGroup{}, false
	}
	return a.ResourceGroups[i], true
}

// resolveMissingScopes completes the access of members whose resource
// groups came without a scope, from the resource-group list.
func (c *Client) resolveMissingScopes(ctx context.Context, acct *Account, members []converted) error {
	missing := slices.ContainsFunc(members, converted.unresolved) ||
		slices.ContainsFunc(acct.UserGroups, func(g UserGroup) bool {
			return slices.ContainsFunc(g.parts, func(p policyPart) bool { return len(p.unresolved) > 0 })
		})
	if missing {
		if err := c.loadResourceGroups(ctx, acct); err != nil {
			return err
		}
	}
	acct.resolveUserGroups()
	acct.Members = make([]Member, len(members))
	inherited := acct.inheritedPolicies()
	for i, m := range members {
		acct.Members[i] = m.resolve(acct.ResourceGroups, inherited)
	}
	return nil
}

// converted is a member read from a page, its access still by policy:
// the policies of its user groups, when the answer lists them too, are
// told apart once the groups are read, and resource groups that came
// without a scope are resolved from the group list.
type converted struct {
	Member
	parts []policyPart
}

func (m converted) unresolved() bool {
	return slices.ContainsFunc(m.parts, func(p policyPart) bool { return len(p.unresolved) > 0 })
}

// resolve completes the member: its own policies' access, leaving out the
// policies inherited from its user groups (ids in inherited).
func (m converted) resolve(groups []ResourceGroup, in inherited) Member {
	out := m.Member
	own := slices.DeleteFunc(slices.Clone(m.parts), in.has)
	out.Access, out.Denies, out.Unknown = combine(own, groups)
	return out
}

// loadResourceGroups lists every resource group of the account into
// acct, keeping those it knows already that the list lacks (a group just
// made, which a list may not show yet).
func (c *Client) loadResourceGroups(ctx context.Context, acct *Account) error {
	groups, err := c.listResourceGroups(ctx, acct.ID)
	if err != nil {
		return err
	}
	for _, g := range acct.ResourceGroups {
		if !slices.ContainsFunc(groups, func(l ResourceGroup) bool { return l.ID == g.ID }) {
			groups = append(groups, g)
		}
	}
	acct.ResourceGroups, acct.allGroups = groups, true
	return nil
}

// groupSet collects the resource groups that member responses show, for
// concurrent page reads.
type groupSet struct {
	mu   sync.Mutex
	byID map[string]ResourceGroup
}

func (s *groupSet) add(g ResourceGroup) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byID[g.ID]; !ok {
		g.ID, g.Name = strings.Clone(g.ID), strings.Clone(g.Name)
		s.byID[g.ID] = g
	}
}

func (s *groupSet) sorted() []ResourceGroup {
	out := make([]ResourceGroup, 0, len(s.byID))
	for _, g := range s.byID {
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b ResourceGroup) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// listMembers reads every member, converting each page as it arrives: the
// SDK's structures (with their raw JSON) are garbage a page later, so a
// large account never sits in memory in that form. A member the reconciler
// cannot trust (no email, an id that is not an id) fails the read: a
// member read as "" would look undeclared and be removed.
func (c *Client) listMembers(ctx context.Context, accountID string, seen *groupSet) ([]converted, error) {
	return fetchAll(ctx, c, "list members of account "+accountID, listMode{}, func(m converted) string { return m.ID },
		func(ctx context.Context, page int) ([]converted, pageInfo, error) {
			var p accounts.MemberListParams
			p.AccountID.Value, p.AccountID.Present = accountID, true
			p.Page.Value, p.Page.Present = float64(page), true
			p.PerPage.Value, p.PerPage.Present = float64(c.cfg.PerPage), true
			res, err := c.members.List(ctx, p)
			if err != nil {
				return nil, pageInfo{}, err
			}
			out := make([]converted, len(res.Result))
			for i, m := range res.Result {
				if out[i], err = convertMember(m, accountID, seen); err != nil {
					return nil, pageInfo{}, err
				}
			}
			return out, parsePageInfo(res.JSON.RawJSON()), nil
		})
}

func (c *Client) listPermissionGroups(ctx context.Context, accountID string) ([]PermissionGroup, error) {
	// Two roles have once been listed under one id: both are kept, and
	// only an exact repeat is dropped.
	return fetchAll(ctx, c, "list permission groups of account "+accountID, listMode{dropRepeats: true},
		func(pg PermissionGroup) string { return pg.ID + "\x00" + pg.Name },
		func(ctx context.Context, page int) ([]PermissionGroup, pageInfo, error) {
			var p iam.PermissionGroupListParams
			p.AccountID.Value, p.AccountID.Present = accountID, true
			p.Page.Value, p.Page.Present = float64(page), true
			p.PerPage.Value, p.PerPage.Present = float64(c.cfg.PerPage), true
			res, err := c.perms.List(ctx, p)
			if err != nil {
				return nil, pageInfo{}, err
			}
			out := make([]PermissionGroup, len(res.Result))
			for i, pg := range res.Result {
				// The SDK models meta as {key, value}; the API sends
				// {label, scopes, …} (recorded-list-members.json), which
				// land in ExtraFields.
				var scopes string
				if f, ok := pg.Meta.JSON.ExtraFields["scopes"]; ok {
					scopes = unquote(f.Raw())
				}
				out[i] = PermissionGroup{ID: pg.ID, Name: pg.Name, Scope: scopeOfMeta(scopes)}
			}
			return out, parsePageInfo(res.JSON.RawJSON()), nil
		})
}

// ResourceGroups lists every resource group of the account, those whose
// scope cfaccess cannot express without resources.
func (c *Client) ResourceGroups(ctx context.Context, accountID string) ([]ResourceGroup, error) {
	if err := checkIDs("list resource groups of account "+accountID, accountID); err != nil {
		return nil, err
	}
	return c.listResourceGroups(ctx, accountID)
}

// listResourceGroups reads the resource groups in one request: the list
// is not paged (2026 operation: no page or per_page parameter, no
// result_info; cloudflare-go v7 types it as a single page; paging it loops
// forever, cloudflare-typescript issue 2661).
func (c *Client) listResourceGroups(ctx context.Context, accountID string) ([]ResourceGroup, error) {
	op := "list resource groups of account " + accountID
	var p iam.ResourceGroupListParams
	p.AccountID.Value, p.AccountID.Present = accountID, true
	res, err := c.groups.List(ctx, p)
	if err != nil {
		return nil, c.wrap(op, err)
	}
	if !parsePageInfo(res.JSON.RawJSON()).list {
		return nil, untrusted(op, "the answer holds no list of resource groups")
	}
	// Groups of shapes the reconciler does not write are kept, without
	// resources: their names are taken.
	var out []ResourceGroup
	for _, rg := range res.Result {
		key, objects := rg.Scope.Key, make([]string, 0, len(rg.Scope.Objects))
		for _, o := range rg.Scope.Objects {
			objects = append(objects, o.Key)
		}
		if key == "" {
			key, objects = rawScope(rg.JSON.Scope.Raw())
		}
		rs, adHoc, _ := scopeResources(accountID, key, objects)
		out = append(out, ResourceGroup{ID: rg.ID, Name: rg.Name, Resources: rs, AdHoc: adHoc})
	}
	return out, nil
}

type zone struct{ ID, Name string }

func (c *Client) listZones(ctx context.Context, accountID, name string) ([]zone, error) {
	op := "list zones of account " + accountID
	if name != "" {
		op = fmt.Sprintf("look up zone %s in account %s", name, accountID)
	}
	return fetchAll(ctx, c, op, listMode{countIsBound: true, dropRepeats: true}, func(z zone) string { return z.ID }, func(ctx context.Context, page int) ([]zone, pageInfo, error) {
		var p zones.ZoneListParams
		p.Account.Value.ID.Value, p.Account.Value.ID.Present, p.Account.Present = accountID, true, true
		if name != "" {
			p.Name.Value, p.Name.Present = name, true
		}
		p.Page.Value, p.Page.Present = float64(page), true
		p.PerPage.Value, p.PerPage.Present = float64(c.cfg.PerPage), true
		res, err := c.zones.List(ctx, p)
		if err != nil {
			return nil, pageInfo{}, err
		}
		out := make([]zone, len(res.Result))
		for i, z := range res.Result {
			out[i] = zone{ID: z.ID, Name: z.Name}
		}
		return out, parsePageInfo(res.JSON.RawJSON()), nil
	})
}

// scopeResources reads a resource group scope as what it covers: the
// whole account (key com.cloudflare.api.account.<account>, objects [*]);
// a domain group (the same key, objects that are all zone keys); or the
// dashboard's ad-hoc group for one zone (key
// com.cloudflare.api.account.zone.<zone>, objects [*]). Zones are by id,
// sorted. Any other shape is not understood (no evidence exists for an
// object "com.cloudflare.api.account.zone.*").
func scopeResources(accountID, key string, objects []string) (rs []desired.Resource, adHoc, ok bool) {
	if id, isZone := strings.CutPrefix(key, desired.ZoneKeyPrefix); isZone {
		if IsID(id) && len(objects) == 1 && objects[0] == "*" {
			return []desired.Resource{{Kind: desired.ZoneKey, Zone: canon(id)}}, true, true
		}
		return nil, false, false
	}
	if key != "com.cloudflare.api.account."+accountID || len(objects) == 0 {
		return nil, false, false
	}
	if len(objects) == 1 && objects[0] == "*" {
		return []desired.Resource{{Kind: desired.WholeAccount}}, false, true
	}
	for _, o := range objects {
		id, isZone := strings.CutPrefix(o, desired.ZoneKeyPrefix)
		if !isZone || !IsID(id) {
			return nil, false, false
		}
		rs = append(rs, desired.Resource{Kind: desired.ZoneKey, Zone: canon(id)})
	}
	slices.SortFunc(rs, desired.Resource.Compare)
	return slices.Compact(rs), false, true
}

// memberEmail is a member's email in lower case: user.email, which pending
// members have too (baton-cloudflare invitation.go), or the top-level
// email that the schema also defines.
func memberEmail(m shared.Member) string {
	email := m.User.Email
	if email == "" {
		email = m.Email
	}
	// A copy: the SDK's strings point into the page's whole body.
	return strings.Clone(strings.ToLower(strings.TrimSpace(email)))
}

// canon returns the canonical copy of a string that repeats across
// members (role names, zone ids, statuses), detached from the page body
// the SDK decoded it from.
func canon(s string) string { return unique.Make(s).Value() }

// convertMember computes a member's effective access. Policies win over
// legacy roles when a member has both (Cloudflare lists matching roles
// beside the policies of members made with policies). A resource group
// that came without its scope is kept aside for resolveMissingScopes; the
// others are noted in seen (when not nil).
func convertMember(m shared.Member, accountID string, seen *groupSet) (converted, error) {
	op := "list members of account " + accountID
	if !IsID(m.ID) {
		return converted{}, untrusted(op, fmt.Sprintf("a member's id %q is not a Cloudflare id", truncate(m.ID, 40)))
	}
	out := converted{Member: Member{ID: strings.Clone(m.ID), Email: memberEmail(m), Status: canon(string(m.Status)), TwoFactor: m.User.TwoFactorAuthenticationEnabled}}
	if out.Email == "" {
		return converted{}, untrusted(op, "member "+m.ID+" has no email")
	}
	if out.Status == "" {
		// The status is needed to update the member (it must be sent
		// back) and tells an invitation from a membership.
		return converted{}, untrusted(op, "member "+m.ID+" has no status")
	}
	if len(m.Policies) == 0 {
		out.Legacy = len(m.Roles) > 0
		var legacy policyPart
		for _, r := range m.Roles {
			legacy.access = append(legacy.access, desired.Access{Role: canon(r.Name), Resource: desired.Resource{Kind: desired.WholeAccount}})
		}
		out.parts = append(out.parts, legacy)
	}
	for _, p := range m.Policies {
		raw := rawPolicy{id: p.ID, deny: p.Access == shared.MemberPoliciesAccessDeny}
		for _, pg := range p.PermissionGroups {
			raw.roles = append(raw.roles, pg.Name)
		}
		for _, rg := range p.ResourceGroups {
			raw.groups = append(raw.groups, rawResourceGroup{id: rg.ID, name: rg.Name, scope: rg.JSON.Scope.Raw()})
		}
		out.parts = append(out.parts, raw.convert(accountID, seen))
	}
	return out, nil
}

// rawPolicy is a policy as a member or a user group answer gives it.
type rawPolicy struct {
	id     string
	deny   bool
	roles  []string
	groups []rawResourceGroup
}

type rawResourceGroup struct {
	id, name, scope string // scope: its raw JSON
}

// policyPart is what one policy gives: access (or a deny), scopes not
// understood, and resource groups whose scope came without it.
type policyPart struct {
	id         string // "" for legacy roles
	deny       bool
	access     []desired.Access
	unknown    []string
	unresolved []unresolvedGroup
}

// convert reads a policy's access; resource groups that came with their
// scope are noted in seen (when not nil).
func (p rawPolicy) convert(accountID string, seen *groupSet) policyPart {
	part := policyPart{id: strings.Clone(p.id), deny: p.deny}
	if p.deny {
		return part
	}
	roles := make([]string, len(p.roles))
	for i, r := range p.roles {
		roles[i] = canon(r)
	}
	for _, rg := range p.groups {
		key, objects := rawScope(rg.scope)
		if key == "" || len(objects) == 0 {
			part.unresolved = append(part.unresolved, unresolvedGroup{groupID: canon(rg.id), roles: roles})
			continue
		}
		rs, adHoc, ok := scopeResources(accountID, key, objects)
		if !ok {
			part.unknown = append(part.unknown, key+" "+strings.Join(objects, ","))
			continue
		}
		if IsID(rg.id) {
			// Only a group with an id can be written again (a scope given
			// inline makes an anonymous group: Terraform provider issue
			// 7096).
			seen.add(ResourceGroup{ID: rg.id, Name: rg.name, Resources: rs, AdHoc: adHoc})
		}
		for _, role := range roles {
			for _, r := range rs {
				part.access = append(part.access, desired.Access{Role: role, Resource: r})
			}
		}
	}
	return part
}

// combine totals policy parts: the access of the allow policies (sorted,
// once each), deny policies counted, scopes not understood listed.
// Resource groups that came without a scope are looked up in groups.
func combine(parts []policyPart, groups []ResourceGroup) (access []desired.Access, denies int, unknown []string) {
	for _, part := range parts {
		if part.deny {
			denies++
			continue
		}
		access = append(access, part.access...)
		unknown = append(unknown, part.unknown...)
		for _, u := range part.unresolved {
			i := slices.IndexFunc(groups, func(g ResourceGroup) bool { return g.ID == u.groupID })
			if i < 0 {
				unknown = append(unknown, "resource group "+u.groupID)
				continue
			}
			for _, role := range u.roles {
				for _, r := range groups[i].Resources {
					access = append(access, desired.Access{Role: role, Resource: r})
				}
			}
		}
	}
	slices.SortFunc(access, desired.Access.Compare)
	return slices.Compact(access), denies, unknown
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
