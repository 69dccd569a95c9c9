package cfroles

import (
	_ "embed"
	"strings"
	"sync"

	"github.com/cfaccess/reconciler/internal/desired"
)

var (
	//go:embed account-role-names.txt
	accountText string
	//go:embed domain-role-names.txt
	domainText string
)

// AccountNames returns the account-scoped role names (78 as of 2026): they
// apply to the whole account ("All domains") only.
func AccountNames() []string { return lines(accountText) }

// DomainNames returns the domain-scoped role names (13 as of 2026): they
// apply to domains only, one zone or a domain group.
func DomainNames() []string { return lines(domainText) }

// Names returns every current role name, account-scoped first.
func Names() []string { return append(AccountNames(), DomainNames()...) }

func lines(s string) []string { return strings.Split(strings.TrimSpace(s), "\n") }

// Renamed maps former role names to their current names.
func Renamed() map[string]string {
	return map[string]string{
		"Super Administrator": "Super Administrator - All Privileges",
		"Workers Admin":       "Workers Platform Admin",
	}
}

// counterparts pairs each account-scoped role with the domain-scoped role
// that does the same job on domains. Written out by hand from the two
// lists: the names do not follow one rule ("Cache Purge" is "Cache Domain
// Purge" on domains).
var counterparts = [][2]string{
	{"Administrator", "Domain Administrator"},
	{"Administrator Read Only", "Domain Administrator Read Only"},
	{"DNS", "Domain DNS"},
	{"Cache Purge", "Cache Domain Purge"},
	{"Page Shield", "Domain Page Shield"},
	{"Page Shield Read", "Domain Page Shield Read"},
	{"Waiting Room Admin", "Domain Waiting Room Admin"},
	{"Waiting Room Read", "Domain Waiting Room Read"},
	{"API Gateway", "Domain API Gateway"},
	{"API Gateway Read", "Domain API Gateway Read"},
	{"Bot Management (Account-Wide)", "Bot Management"},
	{"Zone Versioning (Account-Wide)", "Zone Versioning"},
	{"Zone Versioning Read (Account-Wide)", "Zone Versioning Read"},
}

// Counterpart returns the role of the other scope that does the same job
// ("DNS" gives "Domain DNS" and back), or "".
func Counterpart(name string) string {
	for _, p := range counterparts {
		switch name {
		case p[0]:
			return p[1]
		case p[1]:
			return p[0]
		}
	}
	return ""
}

// ScopeOf returns a role's scope; former names have their current name's.
func ScopeOf(name string) desired.Scope {
	if now, ok := Renamed()[name]; ok {
		name = now
	}
	return scopes()[name]
}

// scopes maps every current role name to its scope, built once.
var scopes = sync.OnceValue(func() map[string]desired.Scope {
	m := map[string]desired.Scope{}
	for _, n := range AccountNames() {
		m[n] = desired.ScopeAccount
	}
	for _, n := range DomainNames() {
		m[n] = desired.ScopeDomain
	}
	return m
})

// Catalogue is the built-in catalogue, for validation without an account.
type Catalogue struct{}

var _ desired.Catalogue = Catalogue{}

// Names returns every current role name.
func (Catalogue) Names() []string { return Names() }

// Renamed returns the current name of a former role name, or "".
func (Catalogue) Renamed(name string) string { return Renamed()[name] }

// Scope returns a role's scope.
func (Catalogue) Scope(name string) desired.Scope { return ScopeOf(name) }

// Counterpart returns the role of the other scope that does the same job.
func (Catalogue) Counterpart(name string) string { return Counterpart(name) }
