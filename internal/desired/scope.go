package desired

import (
	"fmt"
	"slices"
	"strings"
)

// Scope is where Cloudflare lets a role be granted. Cloudflare: "Roles can
// only ever be assigned to their given scope"; there are two types of
// scopes, Account and Domain, with a different set of roles for each.
type Scope int

const (
	// ScopeUnknown is a role the catalogue does not know: not checked.
	ScopeUnknown Scope = iota
	// ScopeAccount roles apply to the whole account ("All domains") only:
	// "account:*".
	ScopeAccount
	// ScopeDomain roles apply to domains only: one zone, or a domain group
	// of several.
	ScopeDomain
)

func (s Scope) String() string {
	switch s {
	case ScopeAccount:
		return "account-scoped"
	case ScopeDomain:
		return "domain-scoped"
	}
	return "of unknown scope"
}

// fits reports whether a role of this scope may be granted on r.
func (s Scope) fits(r Resource) bool {
	switch s {
	case ScopeAccount:
		return r.Kind == WholeAccount
	case ScopeDomain:
		return r.Kind == ZoneName || r.Kind == ZoneKey
	}
	return true
}

// Catalogue describes Cloudflare's roles: the built-in list for offline
// validation, or an account's own permission groups at plan time.
type Catalogue interface {
	// Names lists the current role names, for suggestions.
	Names() []string
	// Renamed returns the current name of a former role name, or "".
	Renamed(role string) string
	// Scope returns where a role may be granted.
	Scope(role string) Scope
	// Counterpart names the role of the other scope that does the same
	// job ("DNS" and "Domain DNS"), or "".
	Counterpart(role string) string
}

// CheckScopes reports every Cloudflare role that a role of the repository
// grants on a kind of resource its scope does not fit, naming the role to
// use instead. When provider is not empty, only the roles of that provider
// are checked. A role the catalogue does not know is not checked.
//
// A Cloudflare role that fits none of the role's resources is reported once,
// at its inherits entry; one that fits some of them, at each resources.allow
// entry it does not fit.
func (r *Repo) CheckScopes(cat Catalogue, provider string) Diagnostics {
	var out Diagnostics
	seen := map[string]bool{}
	add := func(pos Pos, msg string) {
		if k := pos.String() + "\x00" + msg; !seen[k] {
			seen[k] = true
			out = append(out, Diagnostic{Pos: pos, Severity: Error, Message: msg})
		}
	}
	for _, role := range r.Roles {
		if provider != "" && !slices.Contains(role.Providers, provider) {
			continue
		}
		for i, entry := range role.Inherits {
			names, via := []string{entry}, ""
			if sub := r.Roles[entry]; sub != nil {
				names, via = sub.CloudflareRoles, entry
			}
			for _, name := range names {
				scope := cat.Scope(name)
				var bad []int
				for j, res := range role.Resources {
					if !scope.fits(res) {
						bad = append(bad, j)
					}
				}
				switch {
				case len(bad) == 0:
				case len(bad) == len(role.Resources):
					add(at(role.InheritsAt, i, role.Pos), scopeMessage(role.ID, name, via, scope, role.Resources, cat.Counterpart(name)))
				default:
					for _, j := range bad {
						add(at(role.ResourcesAt, j, role.Pos), scopeMessage(role.ID, name, via, scope, role.Resources[j:j+1], cat.Counterpart(name)))
					}
				}
			}
		}
	}
	out.Sort()
	return out
}

// scopeMessage explains a role granted on resources its scope does not
// fit, and says what to write instead.
func scopeMessage(roleID, name, via string, scope Scope, on []Resource, counterpart string) string {
	what := name
	if via != "" {
		what = fmt.Sprintf("%s (from role %q)", name, via)
	}
	where := resourceList(on)
	switch scope {
	case ScopeAccount:
		if counterpart != "" {
			return fmt.Sprintf("role %q: %s is account-scoped: on %s use %s, or grant %s on account:*", roleID, what, where, counterpart, name)
		}
		return fmt.Sprintf("role %q: %s is account-scoped and no domain-scoped role does the same: grant it on account:* (in a role of its own), not on %s", roleID, what, where)
	default:
		if counterpart != "" {
			return fmt.Sprintf("role %q: %s is domain-scoped: on account:* use %s, or grant %s on zones (zone:<name>)", roleID, what, counterpart, name)
		}
		return fmt.Sprintf("role %q: %s is domain-scoped: grant it on zones (zone:<name>), not on account:*", roleID, what)
	}
}

// resourceList names resources for a message: all of a few, the first
// ones and a count of many.
func resourceList(rs []Resource) string {
	const shown = 3
	var parts []string
	for i, r := range rs {
		if i == shown {
			parts = append(parts, fmt.Sprintf("%d more", len(rs)-shown))
			break
		}
		parts = append(parts, r.String())
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

func at(ps []Pos, i int, fallback Pos) Pos {
	if i < len(ps) {
		return ps[i]
	}
	return fallback
}
