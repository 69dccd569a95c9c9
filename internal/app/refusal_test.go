package app

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
)

// loopingPolicy passes CI today and, after a date (here already past),
// spins: 10^10 iterations with nothing to find.
const loopingPolicy = `package cfaccess.local.spin

deny contains "never" if {
	input.now > "2026-01-01"
	some i in numbers.range(1, 100000)
	some j in numbers.range(1, 100000)
	i + j < 0
}
`

// A revision whose guardrails loop is refused within --policy-timeout; the
// last good revision stays enforced and a just-in-time grant still expires
// on time.
func TestDaemonRefusesALoopingPolicy(t *testing.T) {
	e := newE2E(t)
	expiry := e.clock().Add(5 * time.Second).UTC().Truncate(time.Second).Add(time.Second)
	e.commit("jit", map[string]string{"jit.yaml": "grants:\n  - {users: [jit@example.com], roles: [ro], reason: INC-7, expires: " + expiry.Format(time.RFC3339) + "}\n"})
	de := startDaemon(t, e, 300*time.Millisecond, "--policy-timeout", "1s")
	de.waitReady()
	good := de.status().Revision.SHA
	if !de.hasMember("jit@example.com") {
		t.Fatal("jit not invited")
	}
	if err := os.MkdirAll(e.repo+"/policies", 0o755); err != nil {
		t.Fatal(err)
	}
	committed := time.Now()
	e.commit("a policy that loops after a date", map[string]string{"policies/spin.rego": loopingPolicy})
	var took time.Duration
	eventually(t, 10*time.Second, "the looping revision refused", func() bool {
		st := de.status()
		if st.BadRevision != nil && st.BadRevision.Result == "invalid" {
			took = time.Since(committed)
			return true
		}
		return false
	})
	st := de.status()
	if st.Revision == nil || st.Revision.SHA != good {
		t.Errorf("enforcing %v, want the last good revision %s", st.Revision, good)
	}
	if msg := st.BadRevision.Findings[0].Message; !strings.Contains(msg, "did not finish within --policy-timeout 1s") {
		t.Errorf("finding %q", msg)
	}
	t.Logf("the looping revision was refused %v after its commit (--policy-timeout 1s, interval 300 ms)", took.Round(time.Millisecond))
	eventually(t, expiry.Sub(e.clock())+3*time.Second, "jit revoked", func() bool { return !de.hasMember("jit@example.com") })
	if late := e.clock().Sub(expiry); late > 3*time.Second {
		t.Errorf("revoked %v after its instant", late)
	}
	if !strings.Contains(de.logs.String(), `"msg":"revision not applied"`) {
		t.Error("no log line for the refused revision")
	}
}

// A revision that passes validation but fails to plan because of the
// repository (a zone the account does not have) is refused like an
// invalid one, at its file and line; the last good one stays enforced and
// drift is still corrected.
func TestDaemonRefusesARevisionThatCannotBePlanned(t *testing.T) {
	e := newE2E(t)
	de := startDaemon(t, e, 300*time.Millisecond)
	de.waitReady()
	good := de.status().Revision.SHA
	e.commit("a zone that is not there", map[string]string{
		"typo.yaml": "roles:\n  typo: {providers: [prod], inherits: [Domain DNS], resources: {allow: [zone:exmaple.com]}}\ngrants:\n  - {users: [zed@example.com], roles: [typo], reason: T-1}\n",
	})
	eventually(t, 5*time.Second, "the revision refused", func() bool {
		st := de.status()
		return st.BadRevision != nil && st.BadRevision.Result == "invalid"
	})
	st := de.status()
	if st.Revision.SHA != good {
		t.Errorf("enforcing %s, want %s", st.Revision.SHA, good)
	}
	f := st.BadRevision.Findings[0]
	if f.Source != "typo.yaml:2" || !strings.Contains(f.Message, "zone exmaple.com is not in account") || !strings.Contains(f.Message, `did you mean "example.com"`) {
		t.Errorf("finding %+v", f)
	}
	if de.hasMember("zed@example.com") {
		t.Error("the refused revision was applied")
	}
	for _, a := range st.Accounts {
		if a.Result != "success" {
			t.Errorf("account %s: %s %s; the last good revision should still apply", a.Account, a.Result, a.Error)
		}
	}
}

// A reconcile that runs past --reconcile-timeout is cancelled, logged at
// ERROR, counted, and /readyz answers 503 until one succeeds.
func TestDaemonStall(t *testing.T) {
	e := newE2E(t)
	de := startDaemon(t, e, time.Hour, "--reconcile-timeout", "2s")
	de.waitReady()
	// Every request now takes a second: a reconcile (the account, then
	// the lists, then the owner...) takes longer than 2 s.
	e.fake.SetLatency(time.Second)
	de.d.poke()
	eventually(t, 10*time.Second, "the stall reported", func() bool {
		code, _ := de.get("/readyz")
		return code == 503 && strings.Contains(de.logs.String(), "ran longer than --reconcile-timeout")
	})
	_, metricsText := de.get("/metrics")
	if strings.Contains(metricsText, "cfaccess_reconcile_stalls_total 0") {
		t.Errorf("stall counter not set:\n%s", grepLines(metricsText, "stalls"))
	}
	e.fake.SetLatency(0)
	de.d.poke()
	de.waitReady()
}

func grepLines(text, sub string) string {
	var out []string
	for line := range strings.SplitSeq(text, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// A daemon restarted while the branch head is refused enforces the
// previous good revision within one reconcile (walking history back), and
// reports both.
func TestDaemonRestartWithRefusedHead(t *testing.T) {
	e := newE2E(t)
	first := startDaemon(t, e, time.Hour)
	first.waitReady()
	good := first.status().Revision.SHA
	first.stop()
	e.commit("a typo", map[string]string{"typo.yaml": "grants:\n  - {users: [zed@example.com], roles: [no-such-role], reason: T-1}\n"})
	// Drift while the daemon is down: corrected by the restarted daemon,
	// with the last good revision.
	if _, err := e.fake.PutMember(fake.MemberSpec{Email: "sneaky@example.com", Access: []desired.Access{{Role: "Administrator", Resource: wholeAcct}}}); err != nil {
		t.Fatal(err)
	}
	second := startDaemon(t, e, time.Hour)
	second.waitReady()
	st := second.status()
	if st.Revision == nil || st.Revision.SHA != good {
		t.Errorf("enforcing %v, want the last good revision %s", st.Revision, good)
	}
	if st.BadRevision == nil || st.BadRevision.Result != "invalid" || !strings.Contains(st.BadRevision.Findings[0].Message, "no-such-role") {
		t.Errorf("bad revision %+v, want the head refused", st.BadRevision)
	}
	if second.hasMember("sneaky@example.com") || second.hasMember("zed@example.com") {
		t.Errorf("members after the restart: %v", second.members())
	}
	if !strings.Contains(second.logs.String(), "enforcing the newest good revision before it") {
		t.Error("the walk back is not logged")
	}
}

// A force-push that puts an older commit back as the head is refused: the
// member the newer commit revoked is not re-invited — in the running
// daemon, and after a restart with --state-file.
func TestDaemonRefusesAForcePush(t *testing.T) {
	e := newE2E(t)
	state := t.TempDir() + "/state.json"
	de := startDaemon(t, e, time.Hour, "--state-file", state)
	de.waitReady()
	if !de.hasMember("dave@example.com") {
		t.Fatal("dave not invited")
	}
	old := de.status().Revision.SHA
	e.commit("revoke dave", map[string]string{"grants.yaml": strings.Replace(readFile(t, e.repo+"/grants.yaml"), "  - {users: [dave@example.com], roles: [ro], reason: SEC-2 audit}\n", "", 1)})
	de.d.poke()
	eventually(t, 5*time.Second, "dave removed", func() bool { return !de.hasMember("dave@example.com") })
	e.git("reset", "-q", "--hard", old) // the force-push
	de.d.poke()
	eventually(t, 5*time.Second, "the force-push refused", func() bool {
		st := de.status()
		return st.BadRevision != nil && st.BadRevision.Result == "non_fast_forward"
	})
	if de.hasMember("dave@example.com") {
		t.Error("dave re-invited by the force-push")
	}
	de.stop()
	again := startDaemon(t, e, time.Hour, "--state-file", state)
	eventually(t, 5*time.Second, "the force-push refused after a restart", func() bool {
		st := again.status()
		return st.BadRevision != nil && st.BadRevision.Result == "non_fast_forward"
	})
	if again.hasMember("dave@example.com") {
		t.Error("dave re-invited after the restart")
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
