package desired

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/tools/txtar"

	"github.com/cfaccess/reconciler/internal/golden"
)

// testNow is the instant golden cases are evaluated at.
var testNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// TestLoadGolden loads each testdata/load/*.txtar (its files are the
// repository) and compares the diagnostics, and for a valid repository its
// bindings at testNow, with the .golden file beside it.
func TestLoadGolden(t *testing.T) {
	t.Parallel()
	cases, err := filepath.Glob("testdata/load/*.txtar")
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("no cases")
	}
	for _, path := range cases {
		name := strings.TrimSuffix(filepath.Base(path), ".txtar")
		t.Run(name, func(t *testing.T) {
			ar, err := txtar.ParseFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var files []File
			for _, f := range ar.Files {
				files = append(files, File{Path: f.Name, Data: f.Data})
			}
			repo, diags := Load(files, Options{Roles: testRoles})
			got := describe(repo, diags)
			golden.Compare(t, strings.TrimSuffix(path, ".txtar")+".golden", got)
		})
	}
}

// describe renders a load result for golden files.
func describe(repo *Repo, diags Diagnostics) string {
	var b strings.Builder
	for _, d := range diags {
		fmt.Fprintf(&b, "%s: %s: %s\n", d.Pos, d.Severity, d.Message)
	}
	if repo == nil {
		b.WriteString("-- invalid --\n")
		return b.String()
	}
	fmt.Fprintf(&b, "-- valid: %d providers, %d roles, %d groups, %d grants --\n", len(repo.Providers), len(repo.Roles), len(repo.Groups), len(repo.Grants))
	for _, bd := range repo.Bindings(testNow) {
		state := "active"
		if !bd.Active {
			state = "inactive"
		}
		fmt.Fprintf(&b, "%s %s %s via %s (%s) from %s\n", bd.Provider, bd.Email, bd.Access, bd.Role, state, bd.Source)
	}
	return b.String()
}

// testCatalogue is a catalogue of a few roles, for tests. (Cloudflare's
// own, internal/cfroles, builds on this package.)
type testCatalogue struct {
	scopes       map[string]Scope
	renamed      map[string]string
	counterparts map[string]string
}

func (c testCatalogue) Names() []string            { return slices.Sorted(maps.Keys(c.scopes)) }
func (c testCatalogue) Renamed(name string) string { return c.renamed[name] }
func (c testCatalogue) Scope(name string) Scope {
	if now := c.renamed[name]; now != "" {
		name = now
	}
	return c.scopes[name]
}
func (c testCatalogue) Counterpart(name string) string { return c.counterparts[name] }

var testRoles = testCatalogue{
	scopes: map[string]Scope{
		"Administrator": ScopeAccount, "Administrator Read Only": ScopeAccount, "DNS": ScopeAccount,
		"Analytics": ScopeAccount, "Firewall": ScopeAccount, "Super Administrator - All Privileges": ScopeAccount,
		"Workers Platform Admin": ScopeAccount,
		"Domain DNS":             ScopeDomain, "Domain Administrator Read Only": ScopeDomain, "Cache Domain Purge": ScopeDomain,
	},
	renamed: map[string]string{"Workers Admin": "Workers Platform Admin", "Super Administrator": "Super Administrator - All Privileges"},
	counterparts: map[string]string{
		"DNS": "Domain DNS", "Domain DNS": "DNS",
		"Administrator Read Only": "Domain Administrator Read Only", "Domain Administrator Read Only": "Administrator Read Only",
	},
}

// A repository that multiplies beyond MaxBindings is refused at the grant
// that makes the most, before any binding is made.
func TestMaxBindings(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("providers:\n  prod: {provider: cloudflare, config: {account_id: 023e105f4ecef8ad9ca31a8372d0c353}}\n")
	b.WriteString("roles:\n  wide: {providers: [prod], inherits: [Domain DNS, Cache Domain Purge], resources: {allow: [zone:a.example.com, zone:b.example.com, zone:c.example.com]}}\n")
	b.WriteString("groups:\n  everyone:\n    members:\n")
	for i := range 200 {
		fmt.Fprintf(&b, "      - u%d@example.com\n", i)
	}
	b.WriteString("grants:\n  - {users: [a@example.com], roles: [wide], reason: r}\n  - {groups: [everyone], roles: [wide], reason: r}\n")
	repo, diags := Load([]File{{Path: "r.yaml", Data: []byte(b.String())}}, Options{Roles: testRoles, MaxBindings: 1000})
	if repo != nil || len(diags.Errors()) != 1 {
		t.Fatalf("got %v, want one error", diags)
	}
	if got, want := diags.Errors()[0].String(), "r.yaml:210: the repository makes 1206 bindings (members × Cloudflare roles × resources), more than 1000; this grant makes 1200 of them: split it, or narrow its roles' resources"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
