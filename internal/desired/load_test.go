package desired

import (
	"fmt"
	"path/filepath"
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
			repo, diags := Load(files, Options{
				KnownRoles:   []string{"Administrator", "Administrator Read Only", "DNS", "Analytics", "Firewall", "Super Administrator - All Privileges", "Workers Platform Admin"},
				RenamedRoles: map[string]string{"Workers Admin": "Workers Platform Admin"},
			})
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
