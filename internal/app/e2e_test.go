package app

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
)

// e2e is a story: a real Git repository on disk, the fake Cloudflare
// account over real HTTP, and the reconciler run in-process.
type e2e struct {
	t    *testing.T
	fake *fake.Server
	url  string
	repo string
	now  time.Time
	// clock is the daemon tests' clock: it starts at now and runs at wall
	// speed, so the story's dates do not depend on the day the tests run.
	clock func() time.Time
}

const e2eToken = "e2e-token-0123456789abcdef"

var (
	exampleZone = desired.Resource{Kind: desired.ZoneName, Zone: "example.com"}
	wholeAcct   = desired.Resource{Kind: desired.WholeAccount}
)

func newE2E(t *testing.T) *e2e {
	t.Helper()
	s := fake.New(fake.Options{Token: e2eToken, AccountName: "Production"})
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	e := &e2e{t: t, fake: s, url: ts.URL + fake.BasePath, repo: t.TempDir(), now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	start, base := time.Now(), e.now
	e.clock = func() time.Time { return base.Add(time.Since(start)) }
	e.git("init", "-q", "-b", "main")
	e.commit("initial", map[string]string{
		"providers.yaml": `providers:
  prod:
    provider: cloudflare
    config: {account_id: ` + s.AccountID() + `}
    reconcile: {protected: [owner@example.com], max_removals: 3}
`,
		"roles.yaml": `roles:
  dns: {providers: [prod], inherits: [Domain DNS], resources: {allow: [zone:example.com]}}
  ro: {providers: [prod], inherits: [Administrator Read Only], resources: {allow: ["account:*"]}}
`,
		"grants.yaml": `grants:
  - {users: [alice@example.com, bob@example.com, carol@example.com, pat@example.com], roles: [dns], reason: OPS-1 on-call}
  - {users: [dave@example.com], roles: [ro], reason: SEC-2 audit}
  - {users: [erin@example.com], roles: [ro], reason: INC-3 incident, expires: 2026-11-24T00:00:00Z}
  - {users: [frank@example.com], roles: [ro], reason: HR-4 joins next month, not_before: 2026-12-01}
`,
	})
	put := func(email string, pending bool, access ...desired.Access) {
		if _, err := s.PutMember(fake.MemberSpec{Email: email, Pending: pending, Access: access}); err != nil {
			t.Fatal(err)
		}
	}
	dns := desired.Access{Role: "Domain DNS", Resource: exampleZone}
	put("owner@example.com", false, desired.Access{Role: "Super Administrator - All Privileges", Resource: wholeAcct})
	put("alice@example.com", false, dns)
	put("Bob@Example.com", false, dns) // differs only in case: left alone
	put("carol@example.com", false, dns, desired.Access{Role: "Billing", Resource: wholeAcct})
	put("pat@example.com", true, dns) // pending counts as present
	put("stranger@example.com", false, desired.Access{Role: "Firewall", Resource: wholeAcct})
	s.ResetRequests()
	return e
}

func (e *e2e) git(args ...string) {
	e.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = e.repo
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com", "GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
	if out, err := cmd.CombinedOutput(); err != nil {
		e.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

func (e *e2e) commit(msg string, files map[string]string) {
	e.t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(e.repo, name), []byte(content), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	e.git("add", "-A")
	e.git("commit", "-q", "-m", msg)
}

// run runs the reconciler with the fake's URL and token in its environment.
func (e *e2e) run(args ...string) (int, string, string) {
	e.t.Helper()
	var stdout, stderr bytes.Buffer
	envVars := map[string]string{"CLOUDFLARE_API_URL": e.url, "CLOUDFLARE_API_TOKEN": e2eToken}
	code := Run(context.Background(), Env{
		Args: args, Getenv: func(k string) string { return envVars[k] },
		Stdout: &stdout, Stderr: &stderr, Now: func() time.Time { return e.now },
	})
	return code, stdout.String(), stderr.String()
}

// writes returns the requests that changed the account.
func (e *e2e) writes() []string {
	var out []string
	for _, r := range e.fake.Requests() {
		if r.Method != "GET" {
			out = append(out, r.Method+" "+r.Path)
		}
	}
	return out
}

func (e *e2e) members() map[string]string {
	out := map[string]string{}
	for _, m := range e.fake.Members() {
		var parts []string
		for _, a := range m.Access {
			parts = append(parts, a.String())
		}
		out[m.Email] = m.Status + ": " + strings.Join(parts, ", ")
	}
	return out
}

func planJSONOf(t *testing.T, out string) planJSON {
	t.Helper()
	var p planJSON
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return p
}

func changesOf(p planJSON) []string {
	var out []string
	for _, a := range p.Accounts {
		for _, c := range a.Changes {
			out = append(out, c.Action+" "+c.Email)
		}
	}
	return out
}

func TestE2EPlanApplyConverge(t *testing.T) {
	e := newE2E(t)
	code, out, errOut := e.run("plan", "--repo", e.repo, "--format", "json", "--detailed-exitcode")
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
	if w := e.writes(); len(w) != 0 {
		t.Fatalf("plan wrote: %v", w)
	}

	code, out, errOut = e.run("apply", "--repo", e.repo)
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
	if diff := cmp.Diff(wantMembers, e.members()); diff != "" {
		t.Errorf("after apply (-want +got):\n%s", diff)
	}

	e.fake.ResetRequests()
	if code, out, _ := e.run("plan", "--repo", e.repo, "--detailed-exitcode"); code != ExitOK || !strings.Contains(out, "Plan: 0 to invite, 0 to update, 0 to remove.") {
		t.Errorf("second plan: exit %d\n%s", code, out)
	}

	// The incident grant expires: the next run revokes it, with no commit.
	e.now = time.Date(2026, 11, 24, 0, 0, 1, 0, time.UTC)
	// The plan says why erin goes: her grant expired, where and when.
	if _, out, _ := e.run("plan", "--repo", e.repo); !strings.Contains(out, "from grants.yaml:4: grant expired 2026-11-24T00:00:00Z (INC-3 incident)") {
		t.Errorf("the plan does not say the grant expired:\n%s", out)
	}
	code, out, _ = e.run("apply", "--repo", e.repo, "--format", "json")
	if code != ExitOK || !cmp.Equal(changesOf(planJSONOf(t, out)), []string{"remove erin@example.com"}) {
		t.Errorf("apply after expiry: exit %d, %v", code, changesOf(planJSONOf(t, out)))
	}
	// frank's grant starts on 2026-12-01: nobody invited before.
	if _, ok := e.members()["frank@example.com"]; ok {
		t.Error("frank invited before not_before")
	}
	e.now = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if code, out, _ := e.run("apply", "--repo", e.repo, "--format", "json"); code != ExitOK || !cmp.Equal(changesOf(planJSONOf(t, out)), []string{"invite frank@example.com"}) {
		t.Errorf("apply at not_before: exit %d, %v", code, changesOf(planJSONOf(t, out)))
	}
}

func TestE2EGuardrailDenialWritesNothing(t *testing.T) {
	e := newE2E(t)
	e.commit("give root", map[string]string{"root.yaml": `roles:
  root: {providers: [prod], inherits: [Super Administrator - All Privileges], resources: {allow: ["*"]}}
grants:
  - {users: [mallory@example.com], roles: [root], reason: "trust me"}
`})
	code, out, _ := e.run("apply", "--repo", e.repo)
	if code != ExitDenied || !strings.Contains(out, "denied by guardrails: 1 denial") {
		t.Errorf("exit %d, want 3\n%s", code, out)
	}
	if w := e.writes(); len(w) != 0 {
		t.Errorf("wrote %v", w)
	}
}

// TestE2ELiveGuardrail: a repository policy that looks at the plan denies
// more than three invites at once; it sees live and plan in its input.
func TestE2ELiveGuardrail(t *testing.T) {
	e := newE2E(t)
	if err := os.MkdirAll(filepath.Join(e.repo, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.commit("limit invites", map[string]string{"policies/invites.rego": `package cfaccess.local.invites

deny contains sprintf("%d invites at once; at most 1 (live members: %d)", [count(input.plan.prod.invite), count(input.live.prod.members)]) if {
	count(input.plan.prod.invite) > 1
}
`})
	code, out, _ := e.run("apply", "--repo", e.repo)
	if code != ExitDenied || !strings.Contains(out, "2 invites at once; at most 1 (live members: 6)") {
		t.Errorf("exit %d\n%s", code, out)
	}
	if w := e.writes(); len(w) != 0 {
		t.Errorf("wrote %v", w)
	}
}

func TestE2EServerErrorWritesNothing(t *testing.T) {
	e := newE2E(t)
	e.fake.Fail(fake.Failure{Path: "/accounts/" + e.fake.AccountID() + "/iam/permission_groups", Status: 503})
	code, out, _ := e.run("apply", "--repo", e.repo, "--cloudflare-max-retries", "0")
	if code != ExitError || !strings.Contains(out, "503 Service Unavailable") || !strings.Contains(out, "nothing was applied") {
		t.Errorf("exit %d\n%s", code, out)
	}
	if w := e.writes(); len(w) != 0 {
		t.Errorf("wrote %v", w)
	}
}

func TestE2EMassRemovalRefused(t *testing.T) {
	e := newE2E(t)
	e.commit("empty the account", map[string]string{"grants.yaml": "grants: []\n"})
	code, out, _ := e.run("apply", "--repo", e.repo)
	if code != ExitError || !strings.Contains(out, "mass removal refused: the plan removes 5 members, more than max_removals (3)") {
		t.Errorf("exit %d\n%s", code, out)
	}
	if w := e.writes(); len(w) != 0 {
		t.Errorf("wrote %v", w)
	}
	code, out, _ = e.run("apply", "--repo", e.repo, "--allow-mass-removal")
	if code != ExitOK {
		t.Errorf("with --allow-mass-removal: exit %d\n%s", code, out)
	}
	if diff := cmp.Diff(map[string]string{"owner@example.com": "accepted: Super Administrator - All Privileges on account:*"}, e.members()); diff != "" {
		t.Errorf("after (-want +got):\n%s", diff)
	}
}

// TestE2ECrashHalfway: the invite's response is lost after Cloudflare made
// the member (a crash, a dropped connection). The run reports a failure; a
// re-run finds the member and updates it instead of inviting twice.
func TestE2ECrashHalfway(t *testing.T) {
	e := newE2E(t)
	e.fake.Fail(fake.Failure{Method: "POST", Path: "/accounts/" + e.fake.AccountID() + "/members", Status: 502, AfterProcessing: true, Times: 10})
	code, out, _ := e.run("apply", "--repo", e.repo, "--format", "json", "--cloudflare-max-retries", "0")
	if code != ExitError {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	e.fake.ClearFailures()
	code, out, _ = e.run("apply", "--repo", e.repo, "--format", "json")
	if code != ExitOK {
		t.Fatalf("re-run: exit %d\n%s", code, out)
	}
	posts := 0
	for _, r := range e.fake.Requests() {
		if r.Method == "POST" && strings.HasSuffix(r.Path, "/members") {
			posts++
		}
	}
	count := map[string]int{}
	for _, m := range e.fake.Members() {
		count[m.Email]++
	}
	if count["dave@example.com"] != 1 || count["erin@example.com"] != 1 {
		t.Errorf("members after re-run: %v", count)
	}
	if code, _, _ := e.run("plan", "--repo", e.repo, "--detailed-exitcode"); code != ExitOK {
		t.Errorf("plan after re-run: exit %d, want no changes", code)
	}
}

func TestE2EPlanFromGitURL(t *testing.T) {
	e := newE2E(t)
	code, out, errOut := e.run("plan", "--repo", "file://"+e.repo, "--ref", "main", "--format", "markdown")
	if code != ExitOK || !strings.Contains(out, "### cfaccess plan: 2 to invite, 1 to update, 1 to remove") {
		t.Errorf("exit %d\n%s\n%s", code, out, errOut)
	}
}

// TestE2ERetriedInviteIsNotDoubled: the SDK retries a POST whose answer
// was a 502 although Cloudflare made the member; the retry is told "already
// a member", which becomes an update — one run, no duplicate.
func TestE2ERetriedInviteIsNotDoubled(t *testing.T) {
	e := newE2E(t)
	e.fake.Fail(fake.Failure{Method: "POST", Path: "/accounts/" + e.fake.AccountID() + "/members", Status: 502, AfterProcessing: true, Times: 1})
	code, out, _ := e.run("apply", "--repo", e.repo)
	if code != ExitOK || !strings.Contains(out, "✓ applied (already a member: updated instead)") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if code, _, _ := e.run("plan", "--repo", e.repo, "--detailed-exitcode"); code != ExitOK {
		t.Errorf("plan after: exit %d, want no changes", code)
	}
}

// TestE2EReinviteAfter: an invitation pending longer than --reinvite-after
// is withdrawn and sent again, once; without a state file nothing is.
func TestE2EReinviteAfter(t *testing.T) {
	e := newE2E(t)
	state := filepath.Join(t.TempDir(), "state.json")
	if code, out, _ := e.run("apply", "--repo", e.repo, "--state-file", state); code != ExitOK {
		t.Fatalf("apply: %d\n%s", code, out)
	}
	e.now = e.now.Add(10 * time.Hour)
	if code, _, _ := e.run("plan", "--repo", e.repo, "--state-file", state, "--detailed-exitcode"); code != ExitOK {
		t.Errorf("10 h later: exit %d, want no changes", code)
	}
	e.now = e.now.Add(70 * time.Hour)
	code, out, _ := e.run("apply", "--repo", e.repo, "--state-file", state, "--format", "json")
	if got := changesOf(planJSONOf(t, out)); code != ExitOK || !cmp.Equal(got, []string{"remove erin@example.com", "reinvite dave@example.com", "reinvite pat@example.com"}) {
		t.Errorf("80 h later: exit %d, %v", code, got)
	}
	if code, _, _ := e.run("plan", "--repo", e.repo, "--state-file", state, "--detailed-exitcode"); code != ExitOK {
		t.Errorf("right after re-inviting: exit %d, want no changes", code)
	}
	if code, _, _ := e.run("plan", "--repo", e.repo, "--detailed-exitcode"); code != ExitOK {
		t.Errorf("without --state-file: exit %d, want no changes", code)
	}
}
