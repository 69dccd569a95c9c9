package policy

import (
	"time"

	"github.com/cfaccess/reconciler/internal/desired"
)

// Input builds the input document of SPEC §3 from a repository at now,
// without "live" and "plan" (the caller adds those after reading an
// account). Beyond the SPEC's keys it carries, for rule authors: providers'
// "enabled", roles' "cloudflare_roles" (inherits with repository roles
// expanded) and "enabled", grants' "active", bindings' "not_before" and
// "reason".
func Input(repo *desired.Repo, now time.Time) map[string]any {
	providers := map[string]any{}
	for id, pv := range repo.Providers {
		providers[id] = map[string]any{
			"account_id":   pv.AccountID,
			"enabled":      pv.Enabled,
			"prune":        pv.Prune,
			"protected":    anyList(pv.Protected),
			"max_removals": pv.MaxRemovals,
			"source":       pv.Pos.String(),
		}
	}
	roles := map[string]any{}
	for id, r := range repo.Roles {
		allow := make([]any, len(r.Resources))
		for i, res := range r.Resources {
			allow[i] = res.String()
		}
		roles[id] = map[string]any{
			"inherits":         anyList(r.Inherits),
			"cloudflare_roles": anyList(r.CloudflareRoles),
			"resources":        map[string]any{"allow": allow},
			"providers":        anyList(r.Providers),
			"enabled":          r.Enabled,
			"source":           r.Pos.String(),
		}
	}
	grants := make([]any, len(repo.Grants))
	for i, g := range repo.Grants {
		grants[i] = map[string]any{
			"users":      anyList(g.Users),
			"groups":     anyList(g.Groups),
			"roles":      anyList(g.Roles),
			"reason":     g.Reason,
			"not_before": instant(g.NotBefore),
			"expires":    instant(g.Expires),
			"active":     g.ActiveAt(now),
			"source":     g.Pos.String(),
		}
	}
	all := repo.Bindings(now)
	bindings := make([]any, len(all))
	for i, b := range all {
		bindings[i] = map[string]any{
			"provider":        b.Provider,
			"email":           b.Email,
			"role":            b.Role,
			"cloudflare_role": b.Access.Role,
			"resource":        b.Access.Resource.String(),
			"active":          b.Active,
			"not_before":      instant(b.NotBefore),
			"expires":         instant(b.Expires),
			"reason":          b.Reason,
			"source":          b.Source.String(),
		}
	}
	return map[string]any{
		"now":       now.UTC().Format(time.RFC3339),
		"providers": providers,
		"roles":     roles,
		"grants":    grants,
		"bindings":  bindings,
	}
}

func anyList(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func instant(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
