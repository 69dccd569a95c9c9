package cloudflare

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unique"

	"github.com/cloudflare/cloudflare-go/v7/accounts"
	"github.com/cloudflare/cloudflare-go/v7/iam"
	"github.com/cloudflare/cloudflare-go/v7/option"
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
	// Scopes is meta.scopes: "com.cloudflare.api.account" for roles that
	// apply to the whole account only.
	Scopes string
}

// ResourceGroup is a resource group whose scope the reconciler understands:
// one resource of the account.
type ResourceGroup struct {
	ID       string
	Name     string
	Resource desired.Resource // zones by id
}

// Account is the live state of one account. A read returns all of it or
// an error.
type Account struct {
	ID               string
	Name             string
	Members          []Member // sorted by email
	PermissionGroups []PermissionGroup
	// ResourceGroups are read only when needed: call LoadResourceGroups
	// before looking one up.
	ResourceGroups []ResourceGroup
	// ZoneIDs maps zone names to ids, for the zones asked for.
	ZoneIDs map[string]string
	// ZoneNames maps zone ids back to names.
	ZoneNames map[string]string

	groupsLoaded bool
}

// ReadOptions say which zones to resolve.
type ReadOptions struct {
	// Zones lists zone names to resolve (those the declarations name).
	Zones []string
	// AllZones resolves every zone of the account (for import).
	AllZones bool
}

// ReadAccount reads an account: members, permission groups, resource
// groups and zones, lists fetched concurrently once their page count is
// known. Any failure fails the whole read.
func (c *Client) ReadAccount(ctx context.Context, accountID string, opts ReadOptions) (*Account, error) {
	acct := &Account{ID: accountID, ZoneIDs: map[string]string{}, ZoneNames: map[string]string{}}
	var mu sync.Mutex
	// The account first, alone: refused credentials then give one clear
	// error instead of several concurrent ones.
	name, err := c.Verify(ctx, accountID)
	if err != nil {
		return nil, err
	}
	acct.Name = name
	g, gctx := errgroup.WithContext(ctx)
	var members []converted
	g.Go(func() (err error) {
		members, err = c.listMembers(gctx, accountID)
		return err
	})
	g.Go(func() (err error) {
		acct.PermissionGroups, err = c.listPermissionGroups(gctx, accountID)
		return err
	})
	names := slices.Compact(slices.Sorted(slices.Values(opts.Zones)))
	// Looking zones up one by one costs a request each; beyond a few,
	// listing them all (50 a page) is cheaper.
	if opts.AllZones || len(names) > 3 {
		g.Go(func() error {
			zs, err := c.listZones(gctx, accountID, "")
			mu.Lock()
			defer mu.Unlock()
			for _, z := range zs {
				name := strings.ToLower(z.Name)
				if opts.AllZones || slices.Contains(names, name) {
					acct.ZoneIDs[name], acct.ZoneNames[z.ID] = z.ID, name
				}
			}
			return err
		})
	} else {
		for _, name := range names {
			g.Go(func() error {
				zs, err := c.listZones(gctx, accountID, name)
				mu.Lock()
				defer mu.Unlock()
				for _, z := range zs {
					if strings.EqualFold(z.Name, name) {
						acct.ZoneIDs[strings.ToLower(z.Name)], acct.ZoneNames[z.ID] = z.ID, strings.ToLower(z.Name)
					}
				}
				return err
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// Member responses carry each resource group's scope, so the group
	// list is needed only when one came without it — or, later, to write
	// (LoadResourceGroups). A steady-state read skips it.
	if err := c.resolveMissingScopes(ctx, acct, members); err != nil {
		return nil, err
	}
	slices.SortFunc(acct.Members, func(a, b Member) int { return cmp.Compare(a.Email, b.Email) })
	return acct, nil
}

// resolveMissingScopes completes the access of members whose resource
// groups came without a scope, from the resource-group list.
func (c *Client) resolveMissingScopes(ctx context.Context, acct *Account, members []converted) error {
	missing := false
	for _, m := range members {
		missing = missing || len(m.unresolved) > 0
	}
	if missing {
		if err := c.LoadResourceGroups(ctx, acct); err != nil {
			return err
		}
	}
	acct.Members = make([]Member, len(members))
	for i, m := range members {
		acct.Members[i] = m.resolve(acct.ResourceGroups)
	}
	return nil
}

// converted is a member read from a page, with the resource groups whose
// scope it came without.
type converted struct {
	Member
	unresolved []unresolvedGroup
}

// resolve completes the member's access from the account's resource groups.
func (m converted) resolve(groups []ResourceGroup) Member {
	out := m.Member
	if len(m.unresolved) == 0 {
		return out
	}
	for _, u := range m.unresolved {
		i := slices.IndexFunc(groups, func(g ResourceGroup) bool { return g.ID == u.groupID })
		if i < 0 {
			out.Unknown = append(out.Unknown, "resource group "+u.groupID)
			continue
		}
		for _, role := range u.roles {
			out.Access = append(out.Access, desired.Access{Role: role, Resource: groups[i].Resource})
		}
	}
	slices.SortFunc(out.Access, desired.Access.Compare)
	out.Access = slices.Compact(out.Access)
	return out
}

// LoadResourceGroups reads the account's resource groups, once.
func (c *Client) LoadResourceGroups(ctx context.Context, acct *Account) error {
	if acct.groupsLoaded {
		return nil
	}
	groups, err := c.listResourceGroups(ctx, acct.ID)
	if err != nil {
		return err
	}
	acct.ResourceGroups, acct.groupsLoaded = append(groups, acct.ResourceGroups...), true
	return nil
}

// pageInfo is the part of result_info that the SDK's types drop.
type pageInfo struct {
	ResultInfo struct {
		Page       int `json:"page"`
		PerPage    int `json:"per_page"`
		Count      int `json:"count"`
		TotalCount int `json:"total_count"`
		TotalPages int `json:"total_pages"`
	} `json:"result_info"`
}

func parsePageInfo(raw string) pageInfo {
	var pi pageInfo
	_ = json.Unmarshal([]byte(raw), &pi)
	return pi
}

// pages returns the page count of a list from its first page.
func (pi pageInfo) pages(perPage, got int) int {
	switch {
	case pi.ResultInfo.TotalPages > 0:
		return pi.ResultInfo.TotalPages
	case pi.ResultInfo.TotalCount > 0:
		return (pi.ResultInfo.TotalCount + perPage - 1) / perPage
	case got < perPage:
		return 1
	}
	return -1 // unknown: read until an empty page
}

// fetchAll reads every page of a list: the first, then the rest
// concurrently. When the total count changes between pages (members
// added or removed while reading), the whole list is read again, up to
// three times, so that no decision rests on a list that was shifting.
func fetchAll[T any](ctx context.Context, c *Client, op string, get func(ctx context.Context, page int) ([]T, pageInfo, error)) ([]T, error) {
	for attempt := 1; ; attempt++ {
		items, stable, err := fetchOnce(ctx, c, get)
		if err != nil {
			return nil, c.wrap(op, err)
		}
		if stable {
			return items, nil
		}
		if attempt == 3 {
			return nil, &APIError{Op: op, Message: "the list kept changing while it was read; try again"}
		}
	}
}

func fetchOnce[T any](ctx context.Context, c *Client, get func(ctx context.Context, page int) ([]T, pageInfo, error)) ([]T, bool, error) {
	first, info, err := get(ctx, 1)
	if err != nil {
		return nil, false, err
	}
	total := info.pages(c.cfg.PerPage, len(first))
	if total < 0 {
		// No count: read sequentially until an empty page.
		all := first
		for page := 2; ; page++ {
			items, _, err := get(ctx, page)
			if err != nil {
				return nil, false, err
			}
			if len(items) == 0 {
				return all, true, nil
			}
			all = append(all, items...)
		}
	}
	pages := make([][]T, total)
	if total > 0 {
		pages[0] = first
	}
	stable := true
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.cfg.Concurrency)
	for p := 2; p <= total; p++ {
		g.Go(func() error {
			items, pi, err := get(gctx, p)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			pages[p-1] = items
			if pi.ResultInfo.TotalCount != info.ResultInfo.TotalCount {
				stable = false
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, false, err
	}
	var all []T
	for _, p := range pages {
		all = append(all, p...)
	}
	if info.ResultInfo.TotalCount > 0 && len(all) != info.ResultInfo.TotalCount {
		stable = false
	}
	return all, stable, nil
}

// listMembers reads every member, converting each page as it arrives: the
// SDK's structures (with their raw JSON) are garbage a page later, so a
// large account never sits in memory in that form.
func (c *Client) listMembers(ctx context.Context, accountID string) ([]converted, error) {
	return fetchAll(ctx, c, "list members of account "+accountID, func(ctx context.Context, page int) ([]converted, pageInfo, error) {
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
			out[i] = convertMember(m, accountID)
		}
		return out, parsePageInfo(res.JSON.RawJSON()), nil
	})
}

func (c *Client) listPermissionGroups(ctx context.Context, accountID string) ([]PermissionGroup, error) {
	return fetchAll(ctx, c, "list permission groups of account "+accountID, func(ctx context.Context, page int) ([]PermissionGroup, pageInfo, error) {
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
			// {label, scopes}, which land in ExtraFields.
			var scopes string
			if f, ok := pg.Meta.JSON.ExtraFields["scopes"]; ok {
				_ = json.Unmarshal([]byte(f.Raw()), &scopes)
			}
			out[i] = PermissionGroup{ID: pg.ID, Name: pg.Name, Scopes: scopes}
		}
		return out, parsePageInfo(res.JSON.RawJSON()), nil
	})
}

func (c *Client) listResourceGroups(ctx context.Context, accountID string) ([]ResourceGroup, error) {
	all, err := fetchAll(ctx, c, "list resource groups of account "+accountID, func(ctx context.Context, page int) ([]iam.ResourceGroupListResponse, pageInfo, error) {
		var p iam.ResourceGroupListParams
		p.AccountID.Value, p.AccountID.Present = accountID, true
		// The SDK types this list as a single page; the API pages it.
		res, err := c.groups.List(ctx, p,
			option.WithQuery("page", strconv.Itoa(page)), option.WithQuery("per_page", strconv.Itoa(c.cfg.PerPage)))
		if err != nil {
			return nil, pageInfo{}, err
		}
		return res.Result, parsePageInfo(res.JSON.RawJSON()), nil
	})
	if err != nil {
		return nil, err
	}
	// Groups of shapes the reconciler does not write are left out.
	var out []ResourceGroup
	for _, rg := range all {
		key, objects := rawScope(rg.JSON.Scope.Raw())
		if r, ok := scopeResource(accountID, key, objects); ok {
			out = append(out, ResourceGroup{ID: rg.ID, Name: rg.Name, Resource: r})
		}
	}
	return out, nil
}

type zone struct{ ID, Name string }

func (c *Client) listZones(ctx context.Context, accountID, name string) ([]zone, error) {
	op := "list zones of account " + accountID
	if name != "" {
		op = fmt.Sprintf("look up zone %s in account %s", name, accountID)
	}
	return fetchAll(ctx, c, op, func(ctx context.Context, page int) ([]zone, pageInfo, error) {
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

// scopeResource reads a resource group scope as one resource of the
// account: the whole account ("*"), all zones, or one zone (by id).
func scopeResource(accountID, key string, objects []string) (desired.Resource, bool) {
	if key != "com.cloudflare.api.account."+accountID || len(objects) != 1 {
		return desired.Resource{}, false
	}
	switch o := objects[0]; {
	case o == "*":
		return desired.Resource{Kind: desired.WholeAccount}, true
	case o == desired.ZoneKeyPrefix+"*":
		return desired.Resource{Kind: desired.AllZones}, true
	case strings.HasPrefix(o, desired.ZoneKeyPrefix) && isHex32(strings.TrimPrefix(o, desired.ZoneKeyPrefix)):
		return desired.Resource{Kind: desired.ZoneKey, Zone: strings.TrimPrefix(o, desired.ZoneKeyPrefix)}, true
	}
	return desired.Resource{}, false
}

// rawScope reads a resource group's scope from its JSON, which is an
// object in member responses and a list of one in the resource-group list
// (the SDK decodes only one of the two).
func rawScope(raw string) (key string, objects []string) {
	type scope struct {
		Key     string `json:"key"`
		Objects []struct {
			Key string `json:"key"`
		} `json:"objects"`
	}
	var one scope
	if err := json.Unmarshal([]byte(raw), &one); err != nil {
		var list []scope
		if json.Unmarshal([]byte(raw), &list) != nil || len(list) != 1 {
			return "", nil
		}
		one = list[0]
	}
	for _, o := range one.Objects {
		objects = append(objects, o.Key)
	}
	return one.Key, objects
}

// memberEmail is a member's email in lower case: user.email, or for
// pending members (reported) the top-level email.
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
// legacy roles when a member has both. A resource group that came without
// its scope is kept aside for resolveMissingScopes.
func convertMember(m shared.Member, accountID string) converted {
	out := converted{Member: Member{ID: strings.Clone(m.ID), Email: memberEmail(m), Status: canon(string(m.Status)), TwoFactor: m.User.TwoFactorAuthenticationEnabled}}
	if len(m.Policies) == 0 {
		out.Legacy = len(m.Roles) > 0
		for _, r := range m.Roles {
			out.Access = append(out.Access, desired.Access{Role: canon(r.Name), Resource: desired.Resource{Kind: desired.WholeAccount}})
		}
	}
	for _, p := range m.Policies {
		if p.Access == shared.MemberPoliciesAccessDeny {
			out.Denies++
			continue
		}
		var roles []string
		for _, pg := range p.PermissionGroups {
			roles = append(roles, canon(pg.Name))
		}
		for _, rg := range p.ResourceGroups {
			key, objects := rawScope(rg.JSON.Scope.Raw())
			if key == "" || len(objects) == 0 {
				out.unresolved = append(out.unresolved, unresolvedGroup{groupID: canon(rg.ID), roles: roles})
				continue
			}
			r, ok := scopeResource(accountID, key, objects)
			if !ok {
				out.Unknown = append(out.Unknown, key+" "+strings.Join(objects, ","))
				continue
			}
			r.Zone = canon(r.Zone)
			for _, role := range roles {
				out.Access = append(out.Access, desired.Access{Role: role, Resource: r})
			}
		}
	}
	slices.SortFunc(out.Access, desired.Access.Compare)
	out.Access = slices.Compact(out.Access)
	return out
}
