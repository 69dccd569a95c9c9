package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// What a new user tripped over (issue 23): a mistyped --provider gets a
// suggestion; run refuses -o as it refuses --format.
func TestNewUserMistakes(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	if code, _, errOut := e.run("plan", "--repo", e.Repo, "--provider", "prd"); code == ExitOK || !strings.Contains(errOut, `--provider "prd" is not defined in the repository (did you mean "prod"?)`) {
		t.Errorf("plan --provider prd: exit %d\n%s", code, errOut)
	}
	if code, _, errOut := e.run("run", "--repo", e.Repo, "-o", "json"); code == ExitOK || !strings.Contains(errOut, "--output is not used by run") {
		t.Errorf("run -o json: exit %d\n%s", code, errOut)
	}
}

// report --repo on a folder inside a checkout reads the checkout's
// history and the declarations in that folder (it failed with
// "repository not found").
func TestReportOnAFolderOfACheckout(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	if err := os.Mkdir(filepath.Join(e.Repo, "access"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.Git("mv", "providers.yaml", "roles.yaml", "grants.yaml", "access/")
	e.Git("commit", "-q", "-m", "declarations in access/")
	dir := filepath.Join(e.Repo, "access")
	e.now = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	if code, out, errOut := e.run("apply", "--repo", dir); code != ExitOK {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
	}
	e.now = time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	code, out, errOut := e.run("report", "--repo", dir, "--since", "2026-12-01", "--format", "json")
	if code != ExitOK || strings.Contains(errOut, "repository not found") || !strings.Contains(out, `"approval": "git"`) {
		t.Errorf("report on a folder: exit %d\n%s%s", code, out, errOut)
	}
}
