package desired

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cfaccess/reconciler/internal/suggest"
)

// Access is one Cloudflare role on one resource: the unit of effective
// access that the reconciler compares.
type Access struct {
	Role     string // Cloudflare role name
	Resource Resource
}

func (a Access) String() string { return a.Role + " on " + a.Resource.String() }

// Compare orders accesses by role name, then resource.
func (a Access) Compare(b Access) int {
	return cmp.Or(cmp.Compare(a.Role, b.Role), a.Resource.Compare(b.Resource))
}

// Binding is one Cloudflare role on one resource for one email in one
// account, from one grant.
type Binding struct {
	Provider string
	Email    string
	Role     string // repository role id
	Access   Access
	Active   bool
	Reason   string
	// NotBefore and Expires are the grant's window; zero when open.
	NotBefore time.Time
	Expires   time.Time
	Source    Pos // the grant
	// Group is the id of the mirrored group (cloudflare_user_group) the
	// binding comes through: the member holds it as a member of that
	// Cloudflare user group, not by its own policies. "" for direct.
	Group string
}

// Bindings returns every binding the repository declares, active at now or
// not, in declaration order: grants as read, then each grant's roles, the
// roles' providers, the emails (sorted), Cloudflare roles (sorted) and
// resources. Disabled roles and providers give none.
func (r *Repo) Bindings(now time.Time) []Binding {
	out := make([]Binding, 0, r.countBindings())
	for _, g := range r.Grants {
		out = r.AppendGrantBindings(out, g, now)
	}
	return out
}

// AppendGrantBindings appends one grant's bindings, in the order of
// Bindings.
func (r *Repo) AppendGrantBindings(out []Binding, g *Grant, now time.Time) []Binding {
	targets := r.grantTargets(g)
	active := g.ActiveAt(now)
	for _, roleID := range g.Roles {
		role := r.Roles[roleID]
		if role == nil || !role.Enabled {
			continue
		}
		for _, pid := range role.Providers {
			pv := r.Providers[pid]
			if pv == nil || !pv.Enabled {
				continue
			}
			for _, t := range targets {
				for _, name := range role.CloudflareRoles {
					for _, res := range role.Resources {
						out = append(out, Binding{
							Provider: pid, Email: t.email, Role: roleID,
							Access: Access{Role: name, Resource: res},
							Active: active, Reason: g.Reason,
							NotBefore: g.NotBefore, Expires: g.Expires,
							Source: g.Pos, Group: t.group,
						})
					}
				}
			}
		}
	}
	return out
}

// countBindings returns an upper bound of len(Bindings), so that a large
// repository's bindings are allocated once.
func (r *Repo) countBindings() int {
	n := 0
	for _, g := range r.Grants {
		n += r.grantBindings(g)
	}
	return n
}

// grantBindings is an upper bound of the bindings one grant makes, counted
// without making them.
func (r *Repo) grantBindings(g *Grant) int {
	emails := len(g.Users)
	for _, gid := range g.Groups {
		if grp := r.Groups[gid]; grp != nil {
			emails += len(grp.Members)
		}
	}
	n := 0
	for _, roleID := range g.Roles {
		if role := r.Roles[roleID]; role != nil {
			n += emails * len(role.Providers) * len(role.CloudflareRoles) * len(role.Resources)
		}
	}
	return n
}

// target is an email a grant names, and the mirrored group it names it
// through ("" when named directly or through a group not mirrored).
type target struct{ email, group string }

// grantTargets returns the emails a grant names, each once, sorted: one
// named directly (or through a plain group) holds the grant's roles
// itself; one named only through mirrored groups holds them as a member of
// each of those Cloudflare user groups.
func (r *Repo) grantTargets(g *Grant) []target {
	direct := map[string]bool{}
	for _, e := range g.Users {
		direct[e] = true
	}
	var out []target
	for _, gid := range g.Groups {
		grp := r.Groups[gid]
		if grp == nil {
			continue
		}
		for _, e := range grp.Members {
			if !grp.UserGroup {
				direct[e] = true
			}
		}
	}
	for _, gid := range g.Groups {
		if grp := r.Groups[gid]; grp != nil && grp.UserGroup {
			for _, e := range grp.Members {
				if !direct[e] {
					out = append(out, target{e, gid})
				}
			}
		}
	}
	for e := range direct {
		out = append(out, target{email: e})
	}
	slices.SortFunc(out, func(a, b target) int { return cmp.Or(cmp.Compare(a.email, b.email), cmp.Compare(a.group, b.group)) })
	return slices.Compact(out)
}

// grantEmails returns the emails a grant names, directly and through
// groups, without duplicates.
func (r *Repo) grantEmails(g *Grant) []string {
	emails := slices.Clone(g.Users)
	for _, gid := range g.Groups {
		if grp := r.Groups[gid]; grp != nil {
			emails = append(emails, grp.Members...)
		}
	}
	slices.Sort(emails)
	return slices.Compact(emails)
}

// Member is the desired access of one email in one account.
type Member struct {
	Email string
	// Access is the set of active accesses, sorted; empty for a declared
	// member with no active grant (to be removed).
	Access []Access
	// Bindings are the active bindings behind Access, for sources and
	// reasons in plans and audit records.
	Bindings []Binding
}

// Account is the desired state of one provider's account.
type Account struct {
	Provider *Provider
	// Members holds every declared email, keyed by email.
	Members map[string]*Member
}

// State is the desired state of every enabled account at an instant.
type State struct {
	Now      time.Time
	Accounts map[string]*Account // by provider id
}

// State computes the desired state at now.
func (r *Repo) State(now time.Time) *State {
	st := &State{Now: now, Accounts: map[string]*Account{}}
	for id, pv := range r.Providers {
		if pv.Enabled {
			st.Accounts[id] = &Account{Provider: pv, Members: map[string]*Member{}}
		}
	}
	for _, b := range r.Bindings(now) {
		acct := st.Accounts[b.Provider]
		m := acct.Members[b.Email]
		if m == nil {
			m = &Member{Email: b.Email}
			acct.Members[b.Email] = m
		}
		if !b.Active {
			continue
		}
		m.Bindings = append(m.Bindings, b)
		if !slices.Contains(m.Access, b.Access) {
			m.Access = append(m.Access, b.Access)
		}
	}
	for _, acct := range st.Accounts {
		for _, m := range acct.Members {
			slices.SortFunc(m.Access, Access.Compare)
		}
	}
	return st
}

// NextChange returns the first not_before or expires instant strictly
// after now, when some grant's activity changes, or the zero time.
func (r *Repo) NextChange(now time.Time) time.Time {
	var next time.Time
	for _, g := range r.Grants {
		for _, t := range []time.Time{g.NotBefore, g.Expires} {
			if !t.IsZero() && t.After(now) && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
	}
	return next
}

// Policy is what one Cloudflare policy of a member says: roles on one set
// of resources — the whole account, or zones, which Cloudflare groups in
// one domain group.
type Policy struct {
	// Roles are Cloudflare role names, sorted.
	Roles []string
	// Resources are the account, or the zones (sorted).
	Resources []Resource
	// Name is the repository role the resources come from (the first, when
	// several roles share them): domain groups are named after it.
	Name string
}

// PoliciesOf lays out an access set as policies when no repository role
// says how: resources with the same roles share one policy.
func PoliciesOf(access []Access) []Policy {
	byRes := map[Resource][]string{}
	var order []Resource
	for _, a := range access {
		if _, seen := byRes[a.Resource]; !seen {
			order = append(order, a.Resource)
		}
		byRes[a.Resource] = append(byRes[a.Resource], a.Role)
	}
	var out []Policy
	index := map[string]int{}
	for _, r := range order {
		roles := slices.Compact(slices.Sorted(slices.Values(byRes[r])))
		key := fmt.Sprint(roles, r.Kind == WholeAccount)
		if i, ok := index[key]; ok {
			out[i].Resources = append(out[i].Resources, r)
			continue
		}
		index[key] = len(out)
		out = append(out, Policy{Roles: roles, Resources: []Resource{r}})
	}
	for i := range out {
		slices.SortFunc(out[i].Resources, Resource.Compare)
	}
	return out
}

// Inactive explains why a declared member of provider has no access at
// now: the grants naming email for that provider, each with its window
// ("expired 2026-11-24T00:00:00Z", "starts 2026-12-01T00:00:00Z") and
// reason, for plans that remove the member.
func (r *Repo) Inactive(provider, email string, now time.Time) (sources []Pos, reasons []string) {
	for _, g := range r.Grants {
		if g.ActiveAt(now) || !slices.Contains(r.grantEmails(g), email) || !r.GrantReaches(g, provider) {
			continue
		}
		why := ""
		switch {
		case !g.Expires.IsZero() && !now.Before(g.Expires):
			why = "grant expired " + g.Expires.UTC().Format(time.RFC3339)
		case !g.NotBefore.IsZero() && now.Before(g.NotBefore):
			why = "grant starts " + g.NotBefore.UTC().Format(time.RFC3339)
		}
		if g.Reason != "" {
			why += " (" + g.Reason + ")"
		}
		sources = append(sources, g.Pos)
		reasons = append(reasons, why)
	}
	return sources, reasons
}

// RoleAccess is what a repository role gives on provider's account: each
// of its Cloudflare roles on each of its resources (none when the role is
// unknown, disabled, or not for that provider).
func (r *Repo) RoleAccess(roleID, provider string) []Access {
	role := r.Roles[roleID]
	if role == nil || !role.Enabled || !slices.Contains(role.Providers, provider) {
		return nil
	}
	out := make([]Access, 0, len(role.CloudflareRoles)*len(role.Resources))
	for _, name := range role.CloudflareRoles {
		for _, res := range role.Resources {
			out = append(out, Access{Role: name, Resource: res})
		}
	}
	return out
}

// EnabledProviders lists the enabled providers, sorted: only only's when
// it is set, an error naming it when it is not defined or is disabled.
func (r *Repo) EnabledProviders(only string) ([]string, error) {
	var ids []string
	for id, pv := range r.Providers {
		if pv.Enabled && (only == "" || only == id) {
			ids = append(ids, id)
		}
	}
	if only != "" && len(ids) == 0 {
		if _, exists := r.Providers[only]; exists {
			return nil, fmt.Errorf("--provider %q is disabled (enabled: false)", only)
		}
		return nil, fmt.Errorf("--provider %q is not defined in the repository%s", only, suggest.Hint(only, slices.Sorted(maps.Keys(r.Providers))))
	}
	slices.Sort(ids)
	return ids, nil
}

// GrantReaches reports whether a grant gives access in provider's account
// (through an enabled role naming it).
func (r *Repo) GrantReaches(g *Grant, provider string) bool {
	for _, id := range g.Roles {
		if role := r.Roles[id]; role != nil && role.Enabled && slices.Contains(role.Providers, provider) {
			return true
		}
	}
	return false
}
