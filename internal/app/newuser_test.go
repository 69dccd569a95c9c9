package app

import (
	"strings"
	"testing"
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
