package app

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cfaccess/reconciler/internal/daemon"
	"github.com/cfaccess/reconciler/internal/testkit"
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

// A plan or a review that could not read an account says so before its
// figures, not "0 members" in bold and the failure below.
func TestFailuresBeforeFigures(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	run := func(args ...string) (int, string) {
		var stdout, stderr bytes.Buffer
		env := e.env(args...)
		env.Getenv = func(k string) string {
			if k == "CLOUDFLARE_API_TOKEN" {
				return "wrong-token-0123456789"
			}
			return e.Getenv(testkit.APIURL)(k)
		}
		env.Stdout, env.Stderr = &stdout, &stderr
		return Run(context.Background(), env), stdout.String() + stderr.String()
	}
	code, out := run("plan", "--repo", e.Repo)
	if code == ExitOK || !strings.Contains(out, "Plan (of the accounts that could be planned): 0 to invite") ||
		!strings.Contains(out, "Some accounts could not be planned (error: above), so nothing was applied to any account.") {
		t.Errorf("plan with a wrong token: exit %d\n%s", code, out)
	}
	code, out = run("review", "--repo", e.Repo)
	failed, figures := strings.Index(out, "could not be read (prod): this review is incomplete"), strings.Index(out, "**1 account: 0 members")
	if code == ExitOK || failed < 0 || figures < 0 || failed > figures {
		t.Errorf("review with a wrong token: exit %d\n%s", code, out)
	}
}

// The protected owner is not drift: /status, the page and `reconciler
// status` mark it protected, not "not declared".
func TestProtectedOwnerMarked(t *testing.T) {
	if testing.Short() {
		t.Skip("serves over TCP")
	}
	t.Parallel()
	e := newE2E(t)
	d := startDaemon(t, e, "--status-details")
	d.waitReady()
	_, status := d.get("/status?members=true")
	var st struct {
		Accounts []struct {
			Members []struct {
				Email     string
				Protected bool
			}
		}
	}
	if err := json.Unmarshal([]byte(status), &st); err != nil || len(st.Accounts) != 1 {
		t.Fatalf("/status: %v\n%s", err, status)
	}
	for _, m := range st.Accounts[0].Members {
		if (m.Email == "owner@example.com") != m.Protected {
			t.Errorf("/status member %s protected %v", m.Email, m.Protected)
		}
	}
	if _, page := d.get("/"); !strings.Contains(page, "protected: never changed by cfaccess") {
		t.Errorf("the page does not mark the owner protected")
	}
	code, out, _ := e.run("status", "--addr", d.base)
	if code != ExitOK || !strings.Contains(out, "protected: never changed by cfaccess") || strings.Contains(out, "owner@example.com  accepted  Super Administrator - All Privileges on account:*  not declared") {
		t.Errorf("reconciler status: exit %d\n%s", code, out)
	}
}

// A wrong account id is not reported as a token problem alone: Cloudflare
// answers 9109 for both, and the message puts the account id first.
func TestWrongAccountID(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	code, _, errOut := e.run("members", "list", "--account-id", "0123456789abcdef0123456789abcdef")
	if code == ExitOK || !strings.Contains(errOut, "(code 9109); Cloudflare gives this answer for an account the token cannot reach: check the account id first") {
		t.Errorf("members list on a wrong account: exit %d\n%s", code, errOut)
	}
}

// reconciler status prints what the page shows, in its order: the recent
// changes with who made the drift each corrected, then each account with
// its failure and since when, its drift, and only then its members.
func TestStatusTerminalLikeThePage(t *testing.T) {
	t.Parallel()
	since := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	st := daemon.Status{Ready: true, Accounts: []daemon.AccountStatus{{Account: "prod", AccountID: "023e105f4ecef8ad9ca31a8372d0c353", Result: "error",
		Error: "a change failed", FailingSince: &since,
		Members: []daemon.MemberStatus{{Email: "alice@example.com", Status: "accepted", Access: []string{"Analytics on account:*"}}},
		Drift:   []daemon.DriftStatus{{Change: "remove", Email: "mallory@evil.example", Actor: "admin@example.com", Context: "dash", Action: "Add Member"}}}},
		Recent: []daemon.RecentChange{{At: since, Account: "prod", Action: "remove", Email: "mallory@evil.example", Result: "success",
			DriftActor: "admin@example.com", DriftContext: "dash"}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _ = json.NewEncoder(w).Encode(st) }))
	defer srv.Close()
	code, out, errOut := newE2E(t).run("status", "--addr", srv.URL)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	recent, failing, drift, members := strings.Index(out, "remove mallory@evil.example: success (drift by admin@example.com, dash)"),
		strings.Index(out, "failing since 2026-12-01 09:00:00 UTC"), strings.Index(out, "  drift: remove mallory@evil.example"), strings.Index(out, "MEMBER")
	if recent < 0 || failing < recent || drift < failing || members < drift || !strings.Contains(out, "Enforcing no revision yet") {
		t.Errorf("want the drifter, then failing since, drift, members (%d %d %d %d):\n%s", recent, failing, drift, members, out)
	}
}
