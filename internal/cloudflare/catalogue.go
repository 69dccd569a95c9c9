package cloudflare

import (
	"github.com/cfaccess/reconciler/internal/cfroles"
	"github.com/cfaccess/reconciler/internal/desired"
)

// Catalogue is the account's own catalogue of roles: its permission
// groups and their meta.scopes, the authority at plan time, with the
// built-in former names and counterparts for suggestions.
func (a *Account) Catalogue() desired.Catalogue { return liveCatalogue{a} }

type liveCatalogue struct{ acct *Account }

func (l liveCatalogue) Names() []string {
	out := make([]string, len(l.acct.PermissionGroups))
	for i, pg := range l.acct.PermissionGroups {
		out[i] = pg.Name
	}
	return out
}

func (l liveCatalogue) Renamed(name string) string { return cfroles.Renamed()[name] }

func (l liveCatalogue) Scope(name string) desired.Scope {
	pg, err := l.acct.PermissionGroup(name)
	if err != nil {
		return desired.ScopeUnknown // reported as a missing role instead
	}
	return pg.Scope
}

func (l liveCatalogue) Counterpart(name string) string { return cfroles.Counterpart(name) }
