package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/report"
	"github.com/cfaccess/reconciler/internal/testkit"
)

// e2e is the story (testkit.Story): a real Git repository on disk and
// the fake account, here reached through an in-memory transport, with the
// reconciler run in-process at the story's instant.
type e2e struct {
	*testkit.Story
	now time.Time
}

func newE2E(t *testing.T) *e2e {
	t.Helper()
	s := testkit.NewStory(t)
	e := &e2e{Story: s, now: s.Now}
	s.Clock = func() time.Time { return e.now }
	return e
}

// newE2EWith is the story with an account of the given options.
func newE2EWith(t *testing.T, opts fake.Options) *e2e {
	t.Helper()
	s := testkit.NewStoryWith(t, opts)
	e := &e2e{Story: s, now: s.Now}
	s.Clock = func() time.Time { return e.now }
	return e
}

// env is the environment of a command: the fake reached in-process, with
// the story's token.
func (e *e2e) env(args ...string) Env {
	return Env{Args: args, Getenv: e.Getenv(testkit.APIURL), Stdout: io.Discard, Stderr: io.Discard,
		Now: func() time.Time { return e.now }, Transport: e.Transport()}
}

// run runs the reconciler and returns its exit code and outputs.
func (e *e2e) run(args ...string) (int, string, string) {
	e.T.Helper()
	var stdout, stderr bytes.Buffer
	env := e.env(args...)
	env.Stdout, env.Stderr = &stdout, &stderr
	code := Run(context.Background(), env)
	return code, stdout.String(), stderr.String()
}

func planJSONOf(t *testing.T, out string) report.PlanDoc {
	t.Helper()
	var p report.PlanDoc
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return p
}

func changesOf(p report.PlanDoc) []string {
	var out []string
	for _, a := range p.Accounts {
		for _, c := range a.Changes {
			out = append(out, c.Action+" "+c.Email)
		}
	}
	return out
}

func TestE2EPlanApplyConverge(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	code, out, errOut := e.run("plan", "--repo", e.Repo, "--format", "json", "--detailed-exitcode")
	if code != ExitChanges {
		t.Fatalf("plan exit %d, want 2\n%s\n%s", code, out, errOut)
	}
	p := planJSONOf(t, out)
	want := []string{"remove stranger@example.com", "update carol@example.com", "invite dave@example.com", "invite erin@example.com"}
	if diff := cmp.Diff(want, changesOf(p)); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
	if len(p.Revision) != 40 {
		t.Errorf("revision %q, want the commit", p.Revision)
	}
	if w := e.Writes(); len(w) != 0 {
		t.Fatalf("plan wrote: %v", w)
	}

	code, out, errOut = e.run("apply", "--repo", e.Repo)
	if code != ExitOK {
		t.Fatalf("apply exit %d\n%s\n%s", code, out, errOut)
	}
	wantMembers := map[string]string{
		"owner@example.com": "accepted: Super Administrator - All Privileges on account:*",
		"alice@example.com": "accepted: Domain DNS on zone:example.com",
		"bob@example.com":   "accepted: Domain DNS on zone:example.com",
		"carol@example.com": "accepted: Domain DNS on zone:example.com",
		"pat@example.com":   "pending: Domain DNS on zone:example.com",
		"dave@example.com":  "pending: Administrator Read Only on account:*",
		"erin@example.com":  "pending: Administrator Read Only on account:*",
	}
	if diff := cmp.Diff(wantMembers, e.Members()); diff != "" {
		t.Errorf("after apply (-want +got):\n%s", diff)
	}

	e.Fake.ResetRequests()
	if code, out, _ := e.run("plan", "--repo", e.Repo, "--detailed-exitcode"); code != ExitOK || !strings.Contains(out, "Plan: 0 to invite, 0 to update, 0 to remove.") {
		t.Errorf("second plan: exit %d\n%s", code, out)
	}

	// The incident grant expires: the next run revokes it, with no commit.
	e.now = time.Date(2026, 11, 24, 0, 0, 1, 0, time.UTC)
	// The plan says why erin goes: her grant expired, where and when.
	if _, out, _ := e.run("plan", "--repo", e.Repo); !strings.Contains(out, "from grants.yaml:4: grant expired 2026-11-24T00:00:00Z (INC-3 incident)") {
		t.Errorf("the plan does not say the grant expired:\n%s", out)
	}
	code, out, _ = e.run("apply", "--repo", e.Repo, "--format", "json")
	if code != ExitOK || !cmp.Equal(changesOf(planJSONOf(t, out)), []string{"remove erin@example.com"}) {
		t.Errorf("apply after expiry: exit %d, %v", code, changesOf(planJSONOf(t, out)))
	}
	// frank's grant starts on 2026-12-01: nobody invited before.
	if _, ok := e.Members()["frank@example.com"]; ok {
		t.Error("frank invited before not_before")
	}
	e.now = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	// (dave's and pat's invitations are a week old by their audit-log
	// entries: --reinvite-after would send them again.)
	if code, out, _ := e.run("apply", "--repo", e.Repo, "--format", "json", "--reinvite-after", "0"); code != ExitOK || !cmp.Equal(changesOf(planJSONOf(t, out)), []string{"invite frank@example.com"}) {
		t.Errorf("apply at not_before: exit %d, %v", code, changesOf(planJSONOf(t, out)))
	}
}

func TestE2EGuardrailDenialWritesNothing(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.Commit("give root", map[string]string{"root.yaml": `roles:
  root: {providers: [prod], inherits: [Super Administrator - All Privileges], resources: {allow: ["*"]}}
grants:
  - {users: [mallory@example.com], roles: [root], reason: "trust me"}
`})
	code, out, _ := e.run("apply", "--repo", e.Repo)
	if code != ExitDenied || !strings.Contains(out, "denied by guardrails: 1 denial") {
		t.Errorf("exit %d, want 3\n%s", code, out)
	}
	if w := e.Writes(); len(w) != 0 {
		t.Errorf("wrote %v", w)
	}
}

// TestE2ELiveGuardrail: a repository policy that looks at the plan denies
// more than one invite at once; it sees live and plan in its input, and
// who would lose access.
func TestE2ELiveGuardrail(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	if err := os.MkdirAll(filepath.Join(e.Repo, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.Commit("limit invites", map[string]string{"policies/invites.rego": `package cfaccess.local.invites

deny contains sprintf("%d invites at once; at most 1 (live members: %d)", [count(input.plan.prod.invite), count(input.live.prod.members)]) if {
	count(input.plan.prod.invite) > 1
}

warn contains sprintf("losing access: %v", [input.plan.prod.losing_access])
`})
	code, out, _ := e.run("apply", "--repo", e.Repo)
	if code != ExitDenied || !strings.Contains(out, "2 invites at once; at most 1 (live members: 6)") ||
		!strings.Contains(out, `losing access: ["carol@example.com", "stranger@example.com"]`) {
		t.Errorf("exit %d\n%s", code, out)
	}
	if w := e.Writes(); len(w) != 0 {
		t.Errorf("wrote %v", w)
	}
}

func TestE2EServerErrorWritesNothing(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.Fake.Fail(fake.Failure{Path: "/accounts/" + e.Fake.AccountID() + "/iam/permission_groups", Status: 503})
	code, out, _ := e.run("apply", "--repo", e.Repo, "--cloudflare-max-retries", "0")
	if code != ExitError || !strings.Contains(out, "503 Service Unavailable") || !strings.Contains(out, "nothing was applied") {
		t.Errorf("exit %d\n%s", code, out)
	}
	if w := e.Writes(); len(w) != 0 {
		t.Errorf("wrote %v", w)
	}
}

func TestE2EMassRemovalRefused(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.Commit("empty the account", map[string]string{"grants.yaml": "grants: []\n"})
	code, out, _ := e.run("apply", "--repo", e.Repo)
	if code != ExitError || !strings.Contains(out, "mass removal refused: the plan removes 5 members, more than max_removals (3)") {
		t.Errorf("exit %d\n%s", code, out)
	}
	if w := e.Writes(); len(w) != 0 {
		t.Errorf("wrote %v", w)
	}
	code, out, _ = e.run("apply", "--repo", e.Repo, "--allow-mass-removal")
	if code != ExitOK {
		t.Errorf("with --allow-mass-removal: exit %d\n%s", code, out)
	}
	if diff := cmp.Diff(map[string]string{"owner@example.com": "accepted: Super Administrator - All Privileges on account:*"}, e.Members()); diff != "" {
		t.Errorf("after (-want +got):\n%s", diff)
	}
}

// TestE2ECrashHalfway: the invite's response is lost after Cloudflare made
// the member (a crash, a dropped connection). The run reports a failure; a
// re-run finds the member and updates it instead of inviting twice.
func TestE2ECrashHalfway(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.Fake.Fail(fake.Failure{Method: "POST", Path: "/accounts/" + e.Fake.AccountID() + "/members", Status: 502, AfterProcessing: true, Times: 10})
	code, out, _ := e.run("apply", "--repo", e.Repo, "--format", "json", "--cloudflare-max-retries", "0")
	if code != ExitError {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	e.Fake.ClearFailures()
	code, out, _ = e.run("apply", "--repo", e.Repo, "--format", "json")
	if code != ExitOK {
		t.Fatalf("re-run: exit %d\n%s", code, out)
	}
	posts := 0
	for _, r := range e.Fake.Requests() {
		if r.Method == "POST" && strings.HasSuffix(r.Path, "/members") {
			posts++
		}
	}
	count := map[string]int{}
	for _, m := range e.Fake.Members() {
		count[m.Email]++
	}
	if count["dave@example.com"] != 1 || count["erin@example.com"] != 1 {
		t.Errorf("members after re-run: %v", count)
	}
	if code, _, _ := e.run("plan", "--repo", e.Repo, "--detailed-exitcode"); code != ExitOK {
		t.Errorf("plan after re-run: exit %d, want no changes", code)
	}
}

func TestE2EPlanFromGitURL(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	code, out, errOut := e.run("plan", "--repo", "file://"+e.Repo, "--ref", "main", "--format", "markdown")
	if code != ExitOK || !strings.Contains(out, "### cfaccess plan: 2 to invite, 1 to update, 1 to remove") {
		t.Errorf("exit %d\n%s\n%s", code, out, errOut)
	}
}

// TestE2ERetriedInviteIsNotDoubled: the SDK retries a POST whose answer
// was a 502 although Cloudflare made the member; the retry is told "already
// a member", which becomes an update — one run, no duplicate.
func TestE2ERetriedInviteIsNotDoubled(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.Fake.Fail(fake.Failure{Method: "POST", Path: "/accounts/" + e.Fake.AccountID() + "/members", Status: 502, AfterProcessing: true, Times: 1})
	code, out, _ := e.run("apply", "--repo", e.Repo)
	if code != ExitOK || !strings.Contains(out, "✓ applied (already a member: updated instead)") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if code, _, _ := e.run("plan", "--repo", e.Repo, "--detailed-exitcode"); code != ExitOK {
		t.Errorf("plan after: exit %d, want no changes", code)
	}
}

// TestE2EReinviteAfter: an invitation pending longer than --reinvite-after
// is withdrawn and sent again, once; without a state file nothing is.
func TestE2EReinviteAfter(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	state := filepath.Join(t.TempDir(), "state.json")
	if code, out, _ := e.run("apply", "--repo", e.Repo, "--state-file", state); code != ExitOK {
		t.Fatalf("apply: %d\n%s", code, out)
	}
	e.now = e.now.Add(10 * time.Hour)
	if code, _, _ := e.run("plan", "--repo", e.Repo, "--state-file", state, "--detailed-exitcode"); code != ExitOK {
		t.Errorf("10 h later: exit %d, want no changes", code)
	}
	e.now = e.now.Add(70 * time.Hour)
	code, out, _ := e.run("apply", "--repo", e.Repo, "--state-file", state, "--format", "json")
	if got := changesOf(planJSONOf(t, out)); code != ExitOK || !cmp.Equal(got, []string{"remove erin@example.com", "reinvite dave@example.com", "reinvite pat@example.com"}) {
		t.Errorf("80 h later: exit %d, %v", code, got)
	}
	if code, _, _ := e.run("plan", "--repo", e.Repo, "--state-file", state, "--detailed-exitcode"); code != ExitOK {
		t.Errorf("right after re-inviting: exit %d, want no changes", code)
	}
	if code, _, _ := e.run("plan", "--repo", e.Repo, "--detailed-exitcode"); code != ExitOK {
		t.Errorf("without --state-file: exit %d, want no changes", code)
	}
}
