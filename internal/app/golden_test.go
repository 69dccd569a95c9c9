package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cfaccess/reconciler/internal/golden"
)

// TestOutputGolden renders the same plan in every format, and an apply, and
// compares them with testdata/golden (go test -update refreshes). The
// repository is a plain directory (no revision) so the output is stable.
func TestOutputGolden(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.Fake.AddZone("api.example.com")
	dir := t.TempDir()
	for _, name := range []string{"providers.yaml", "roles.yaml", "grants.yaml"} {
		data, err := os.ReadFile(filepath.Join(e.Repo, name))
		if err != nil {
			t.Fatal(err)
		}
		switch name {
		case "roles.yaml":
			// A domain-scoped role on two zones: one domain group.
			data = append(data, []byte("  web: {providers: [prod], inherits: [Domain Administrator Read Only], resources: {allow: [zone:example.com, zone:api.example.com]}}\n")...)
		case "grants.yaml":
			// A grant without reason, for a warning in every format, and
			// an invite from a new domain, for a risk flag.
			data = append(data, []byte("  - {users: [gil@partner.example.net], roles: [ro, web]}\n")...)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"plan.txt", []string{"plan", "--repo", dir}, ExitOK},
		{"plan.json", []string{"plan", "--repo", dir, "--format", "json"}, ExitOK},
		{"plan.md", []string{"plan", "--repo", dir, "--format", "markdown"}, ExitOK},
		{"plan.sarif", []string{"plan", "--repo", dir, "--format", "sarif", "--detailed-exitcode"}, ExitChanges},
		{"apply.txt", []string{"apply", "--repo", dir}, ExitOK},
		{"after.md", []string{"plan", "--repo", dir, "--format", "markdown"}, ExitOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := e.run(tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, out, errOut)
			}
			golden.Compare(t, filepath.Join("testdata/golden", tc.name), strings.ReplaceAll(out, dir, "$REPO"))
		})
	}
}
