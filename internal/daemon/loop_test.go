package daemon

import (
	"bytes"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/reconcile"

	"github.com/cfaccess/reconciler/internal/gitsource"
	"github.com/cfaccess/reconciler/internal/metrics"
	"github.com/cfaccess/reconciler/internal/testkit"
)

// harness runs the loop over the story: its Git repository followed
// through file://, the fake account reached in-process. Inside a synctest
// bubble its clock starts at the story's Now.
type harness struct {
	*testkit.Story
	loop *Loop
	logs *testkit.Buffer
	reg  *prometheus.Registry
	// metrics are the loop's metrics, on reg.
	metrics *metrics.Metrics
	// start is when the harness was made, in the bubble's time.
	start time.Time
	// state is the planner's state (read from the state file, with one).
	state *reconcile.State
}

func newHarness(t *testing.T, story *testkit.Story, tune func(*LoopConfig)) *harness {
	t.Helper()
	return newHarnessFrom(t, story, time.Now(), tune)
}

// newHarnessFrom is newHarness whose story clock started at start (a
// second process on the story of a first).
func newHarnessFrom(t *testing.T, story *testkit.Story, start time.Time, tune func(*LoopConfig)) *harness {
	t.Helper()
	h := &harness{Story: story, logs: &testkit.Buffer{}, reg: prometheus.NewRegistry(), start: start}
	story.Clock = h.now // the fake's audit log keeps the bubble's time
	m := metrics.New(h.reg, "test")
	clients := &cloudflare.Clients{BaseURL: testkit.APIURL, Getenv: story.Getenv(testkit.APIURL), RateLimit: 1200, MaxRetries: 1,
		Timeout: 30 * time.Second, Transport: story.Transport(), Observe: m.ObserveRequest}
	h.state = reconcile.NewState(h.now)
	p := reconcile.NewPlanner(clients, h.state)
	cfg := LoopConfig{
		Source:     &gitsource.Remote{URL: "file://" + story.Repo, Work: t.TempDir()},
		Planner:    p,
		Checks:     check.Options{Reuse: true}, // as run does
		Interval:   time.Hour,
		TriggerGap: 2 * time.Second,
		Timeout:    15 * time.Minute,
		Metrics:    m,
		Log:        slog.New(slog.NewJSONHandler(h.logs, nil)),
		Now:        h.now,
		Rand:       rand.New(rand.NewPCG(1, 2)),
	}
	if tune != nil {
		tune(&cfg)
	}
	if cfg.StateFile != "" {
		var err error
		if h.state, err = reconcile.LoadState(cfg.StateFile, h.now); err != nil {
			t.Fatal(err)
		}
		p := reconcile.NewPlanner(clients, h.state)
		p.Detect, p.AttributionWindow = cfg.Planner.Detect, cfg.Planner.AttributionWindow
		cfg.Planner = p
	}
	h.loop = NewLoop(cfg)
	h.metrics = m
	return h
}

// once runs one reconcile.
func (h *harness) once(t *testing.T) error {
	t.Helper()
	return h.loop.RunOnce(t.Context())
}

// reconciles counts the reconciles of the account with result.
func (h *harness) reconciles(result string) int {
	return int(testutil.ToFloat64(h.metrics.ReconcileTotal.WithLabelValues("prod", result)))
}

// now is the story's clock: its Now plus the time passed in the bubble.
func (h *harness) now() time.Time { return h.Story.Now.Add(time.Since(h.start)) }

// run runs the loop until the test ends.
func (h *harness) run(t *testing.T) { testkit.Background(t, h.loop.Run) }

func TestLoopCorrectsDriftAndExpiresOnTime(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		story := testkit.NewStory(t)
		h := newHarness(t, story, func(c *LoopConfig) { c.Interval = 5 * time.Minute })
		expiry := h.now().Add(90 * time.Second)
		story.Commit("jit", map[string]string{"jit.yaml": "grants:\n  - {users: [jit@example.com], roles: [ro], reason: INC-7, expires: " + expiry.Format(time.RFC3339) + "}\n"})
		h.run(t)
		synctest.Wait()
		if !h.loop.Board.Ready() || !story.HasMember("jit@example.com") {
			t.Fatalf("first reconcile: ready %v, members %v", h.loop.Board.Ready(), story.Members())
		}
		// The grant expires: revoked at its instant, with no commit and
		// long before the interval.
		testkit.Advance(expiry.Sub(h.now()) - time.Second)
		if !story.HasMember("jit@example.com") {
			t.Fatal("jit revoked early")
		}
		testkit.Advance(time.Second + 10*time.Millisecond)
		if story.HasMember("jit@example.com") {
			t.Fatalf("jit not revoked at %v (expiry %v)", h.now(), expiry)
		}
		// Someone adds a member in the dashboard: removed at the next
		// interval (±10%), not before.
		last := h.loop.Board.Status().LastReconcile
		story.Put("sneaky@example.com", false)
		testkit.Advance(4*time.Minute + 29*time.Second)
		if !story.HasMember("sneaky@example.com") {
			t.Fatal("a reconcile before the interval")
		}
		testkit.Advance(62 * time.Second)
		if story.HasMember("sneaky@example.com") {
			t.Errorf("drift not corrected within the interval after %v", last)
		}
	})
}

const (
	zoeGrant  = "grants:\n  - {users: [zoe@example.com], roles: [ro], reason: OPS-9}\n"
	typoGrant = "grants:\n  - {users: [zed@example.com], roles: [no-such-role], reason: T-1}\n"
)

// A poke (a webhook, a watched directory) reconciles the new commit at
// once; pokes within the trigger gap coalesce into one reconcile at its
// end.
func TestLoopPokeAndTriggerGap(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		story := testkit.NewStory(t)
		h := newHarness(t, story, nil)
		h.run(t)
		synctest.Wait()
		story.Commit("add zoe", map[string]string{"zoe.yaml": zoeGrant})
		testkit.Advance(3 * time.Second) // past the trigger gap
		h.loop.Poke()
		synctest.Wait()
		if !story.HasMember("zoe@example.com") {
			t.Fatal("zoe not invited after the poke")
		}
		if logs := h.logs.String(); !strings.Contains(logs, `"audit":true`) || !strings.Contains(logs, `"email":"zoe@example.com"`) {
			t.Errorf("no audit record for zoe:\n%s", logs)
		}
		// A flood of pokes: one reconcile at once, one more at the end of
		// the gap for those that came meanwhile, then nothing.
		testkit.Advance(3 * time.Second)
		before := h.reconciles("success")
		for range 100 {
			h.loop.Poke()
			testkit.Advance(10 * time.Millisecond)
		}
		if got := h.reconciles("success") - before; got != 1 {
			t.Errorf("%d reconciles during the first second of pokes, want 1", got)
		}
		testkit.Advance(10 * time.Second)
		if got := h.reconciles("success") - before; got != 2 {
			t.Errorf("%d reconciles for 100 pokes in 1 s with a 2 s gap, want 2", got)
		}
	})
}

// A revision that fails to load is refused: the last good one stays
// enforced, drift is still corrected, and the status, the metrics and the
// logs say so.
func TestLoopKeepsLastGoodRevision(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		story := testkit.NewStory(t)
		h := newHarness(t, story, func(c *LoopConfig) { c.Interval = time.Minute })
		h.run(t)
		synctest.Wait()
		good := story.Head()
		story.Commit("broken", map[string]string{"grants.yaml": "grants:\n  - {users: [nobody@], roles: [dns]\n"})
		story.Put("sneaky@example.com", false)
		testkit.Advance(70 * time.Second)
		st := h.loop.Board.Status()
		if st.Revision == nil || st.Revision.SHA != good || st.BadRevision == nil || st.BadRevision.Result != VerdictInvalid ||
			st.BadRevision.Revision.SHA != story.Head() || len(st.BadRevision.Findings) == 0 {
			t.Fatalf("status = %+v", st)
		}
		if story.HasMember("sneaky@example.com") {
			t.Error("drift not corrected under the last good revision")
		}
		if !strings.Contains(h.logs.String(), `"msg":"revision not applied"`) {
			t.Error("the refusal is not logged")
		}
		want := `
# HELP cfaccess_revision_refused 1 while the newest revision of the repository is refused (the last good one is enforced).
# TYPE cfaccess_revision_refused gauge
cfaccess_revision_refused 1
# HELP cfaccess_revisions_refused_total Revisions not applied, by result: invalid (including guardrails that failed or ran out of time, and plans refused for the repository's sake), denied, unverified, non_fast_forward.
# TYPE cfaccess_revisions_refused_total counter
cfaccess_revisions_refused_total{result="denied"} 0
cfaccess_revisions_refused_total{result="invalid"} 1
cfaccess_revisions_refused_total{result="non_fast_forward"} 0
cfaccess_revisions_refused_total{result="unverified"} 0
# HELP cfaccess_source_revision_info 1 for the revision being enforced.
# TYPE cfaccess_source_revision_info gauge
cfaccess_source_revision_info{revision="` + good + `"} 1
`
		if err := testutil.GatherAndCompare(h.reg, strings.NewReader(want), "cfaccess_revision_refused", "cfaccess_revisions_refused_total", "cfaccess_source_revision_info"); err != nil {
			t.Error(err)
		}
		// A fixed revision is accepted and clears the refusal.
		story.Commit("fixed", map[string]string{"grants.yaml": story.ReadFile("grants.yaml")[:0] + "grants:\n  - {users: [dave@example.com], roles: [ro], reason: SEC-2 audit}\n"})
		h.loop.Poke()
		synctest.Wait()
		if st := h.loop.Board.Status(); st.BadRevision != nil || st.Revision.SHA != story.Head() {
			t.Errorf("after the fix: %+v", st)
		}
	})
}

// The metrics after the first reconcile of the story, compared whole.
func TestLoopMetrics(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		story := testkit.NewStory(t)
		h := newHarness(t, story, nil)
		if err := h.once(t); err != nil {
			t.Fatal(err)
		}
		at := h.now().Unix()
		want := `
# HELP cfaccess_account_failing_since_timestamp_seconds Unix time of the first of the account's reconciles failing in a row; 0 while they succeed.
# TYPE cfaccess_account_failing_since_timestamp_seconds gauge
cfaccess_account_failing_since_timestamp_seconds{account="prod"} 0
# HELP cfaccess_changes_applied_total Changes applied to Cloudflare by action and result (success, error).
# TYPE cfaccess_changes_applied_total counter
cfaccess_changes_applied_total{account="prod",action="invite",result="success"} 2
cfaccess_changes_applied_total{account="prod",action="remove",result="success"} 1
cfaccess_changes_applied_total{account="prod",action="update",result="success"} 1
# HELP cfaccess_drift_members Members differing from the declarations at the last plan, by kind: invite, update, remove, unmanaged.
# TYPE cfaccess_drift_members gauge
cfaccess_drift_members{account="prod",kind="invite"} 2
cfaccess_drift_members{account="prod",kind="remove"} 1
cfaccess_drift_members{account="prod",kind="unmanaged"} 0
cfaccess_drift_members{account="prod",kind="update"} 1
# HELP cfaccess_grants_expiring Active grants of the account expiring within 1h, 24h or 7d.
# TYPE cfaccess_grants_expiring gauge
cfaccess_grants_expiring{account="prod",within="1h"} 0
cfaccess_grants_expiring{account="prod",within="24h"} 1
cfaccess_grants_expiring{account="prod",within="7d"} 1
# HELP cfaccess_last_success_timestamp_seconds Unix time of the last successful reconcile of the account.
# TYPE cfaccess_last_success_timestamp_seconds gauge
cfaccess_last_success_timestamp_seconds{account="prod"} ` + itoa(at) + `
# HELP cfaccess_pending_invites Members invited and not yet accepted.
# TYPE cfaccess_pending_invites gauge
cfaccess_pending_invites{account="prod"} 3
# HELP cfaccess_reconcile_total Reconciles per account by result: success, error, denied.
# TYPE cfaccess_reconcile_total counter
cfaccess_reconcile_total{account="prod",result="success"} 1
# HELP cfaccess_removal_breaker_tripped 1 while the account's plan is refused by the mass-removal breaker: a person must look.
# TYPE cfaccess_removal_breaker_tripped gauge
cfaccess_removal_breaker_tripped{account="prod"} 0
`
		names := []string{"cfaccess_account_failing_since_timestamp_seconds", "cfaccess_changes_applied_total", "cfaccess_drift_members",
			"cfaccess_grants_expiring", "cfaccess_last_success_timestamp_seconds", "cfaccess_pending_invites", "cfaccess_reconcile_total",
			"cfaccess_removal_breaker_tripped"}
		if err := testutil.GatherAndCompare(h.reg, strings.NewReader(want), names...); err != nil {
			t.Error(err)
		}
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// A revision removing everyone is never applied by the loop: the account
// reports the breaker and waits for a person.
func TestLoopStopsAtTheBreaker(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		story := testkit.NewStory(t)
		h := newHarness(t, story, func(c *LoopConfig) { c.Interval = time.Minute })
		h.run(t)
		synctest.Wait()
		before := len(story.Members())
		story.Commit("empty", map[string]string{"grants.yaml": "grants: []\n"})
		testkit.Advance(5 * time.Minute)
		st := h.loop.Board.Status()
		if len(st.Accounts) != 1 || st.Accounts[0].Breaker == "" {
			t.Fatalf("status = %+v", st)
		}
		if got := len(story.Members()); got != before {
			t.Errorf("%d members, want %d: the loop passed the breaker", got, before)
		}
		if got := testutil.ToFloat64(h.metrics.BreakerTripped.WithLabelValues("prod")); got != 1 {
			t.Errorf("breaker metric %v", got)
		}
		if KindOf(h.once(t)) != Breaker {
			t.Errorf("kind %q, want breaker", KindOf(h.once(t)))
		}
	})
}

func TestLoopDryRunNeverWrites(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		story := testkit.NewStory(t)
		h := newHarness(t, story, func(c *LoopConfig) { c.DryRun = true; c.Interval = time.Minute })
		h.run(t)
		testkit.Advance(5 * time.Minute)
		if w := story.Writes(); len(w) != 0 {
			t.Errorf("dry run wrote: %v", w)
		}
		st := h.loop.Board.Status()
		if !st.DryRun || !st.Ready || len(st.Accounts) != 1 || st.Accounts[0].Plan == nil || st.Accounts[0].Plan.Invite != 2 {
			t.Errorf("status = %+v", st)
		}
	})
}

// A directory is read as it is at every reconcile, and a token file fixed
// while the loop runs is picked up; until a reconcile succeeds the loop is
// not ready.
func TestLoopDirectoryAndTokenFile(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		story := testkit.NewStory(t)
		tokenFile := filepath.Join(t.TempDir(), "token")
		write(t, tokenFile, "wrong-token-value-xyz\n")
		h := newHarness(t, story, func(c *LoopConfig) {
			c.Source = gitsource.Directory{Path: story.Repo}
			c.Planner = reconcile.NewPlanner(&cloudflare.Clients{BaseURL: testkit.APIURL, TokenFile: tokenFile, RateLimit: 1200, Timeout: time.Minute,
				Transport: story.Transport()}, reconcile.NewState(c.Now))
		})
		h.run(t)
		synctest.Wait()
		st := h.loop.Board.Status()
		if len(st.Accounts) != 1 || st.Accounts[0].Result != "error" || st.Ready || st.Revision == nil || st.Revision.SHA != story.Head() {
			t.Fatalf("status with a wrong token = %+v", st)
		}
		write(t, tokenFile, testkit.Token+"\n")
		write(t, filepath.Join(story.Repo, "zoe.yaml"), zoeGrant) // not committed
		testkit.Advance(3 * time.Second)
		h.loop.Poke()
		synctest.Wait()
		if !story.HasMember("zoe@example.com") || !h.loop.Board.Ready() {
			t.Fatalf("after the fix: ready %v, members %v", h.loop.Board.Ready(), story.Members())
		}
		// An invalid edit is refused, and applied once fixed: a directory
		// has no revisions to remember as refused.
		write(t, filepath.Join(story.Repo, "zoe.yaml"), "grants: [\n")
		testkit.Advance(3 * time.Second)
		h.loop.Poke()
		synctest.Wait()
		if st := h.loop.Board.Status(); st.BadRevision == nil || !story.HasMember("zoe@example.com") {
			t.Fatalf("invalid edit: %+v", st.BadRevision)
		}
		write(t, filepath.Join(story.Repo, "zoe.yaml"), strings.Replace(zoeGrant, "zoe@", "zoey@", 1))
		testkit.Advance(3 * time.Second)
		h.loop.Poke()
		synctest.Wait()
		if st := h.loop.Board.Status(); st.BadRevision != nil || !story.HasMember("zoey@example.com") || story.HasMember("zoe@example.com") {
			t.Errorf("fixed edit: %+v, members %v", st.BadRevision, story.Members())
		}
		if strings.Contains(h.logs.String(), "wrong-token-value") || strings.Contains(h.logs.String(), testkit.Token) {
			t.Error("a token appears in the logs")
		}
	})
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A revision that passes validation but cannot be planned because of the
// repository (a zone the account lacks) is refused at its file and line;
// the last good one stays enforced.
func TestLoopRefusesARevisionThatCannotBePlanned(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		story := testkit.NewStory(t)
		h := newHarness(t, story, nil)
		if err := h.once(t); err != nil {
			t.Fatal(err)
		}
		good := story.Head()
		story.Commit("a zone that is not there", map[string]string{
			"typo.yaml": "roles:\n  typo: {providers: [prod], inherits: [Domain DNS], resources: {allow: [zone:exmaple.com]}}\ngrants:\n  - {users: [zed@example.com], roles: [typo], reason: T-1}\n",
		})
		if err := h.once(t); err != nil {
			t.Fatalf("the last good revision should apply: %v", err)
		}
		st := h.loop.Board.Status()
		if st.Revision.SHA != good || st.BadRevision == nil || st.BadRevision.Result != VerdictInvalid {
			t.Fatalf("status = %+v", st)
		}
		f := st.BadRevision.Findings[0]
		if f.Source != "typo.yaml:2" || !strings.Contains(f.Message, "zone exmaple.com is not in account") || !strings.Contains(f.Message, `did you mean "example.com"`) {
			t.Errorf("finding %+v", f)
		}
		if story.HasMember("zed@example.com") {
			t.Error("the refused revision was applied")
		}
	})
}

// A reconcile that runs past the timeout is cancelled, logged, counted,
// and the loop is not ready until one succeeds.
func TestLoopStall(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		story := testkit.NewStory(t)
		h := newHarness(t, story, func(c *LoopConfig) { c.Timeout = 2 * time.Second })
		h.run(t)
		synctest.Wait()
		if !h.loop.Board.Ready() {
			t.Fatal("not ready")
		}
		story.Fake.SetLatency(time.Second) // a reconcile now takes longer than 2 s
		testkit.Advance(3 * time.Second)
		h.loop.Poke()
		testkit.Advance(2500 * time.Millisecond)
		if h.loop.Board.Ready() || testutil.ToFloat64(h.metrics.ReconcileStalls) != 1 || !strings.Contains(h.logs.String(), "ran longer than --reconcile-timeout") {
			t.Fatalf("stall not reported: ready %v, stalls %v", h.loop.Board.Ready(), testutil.ToFloat64(h.metrics.ReconcileStalls))
		}
		story.Fake.SetLatency(0)
		testkit.Advance(5 * time.Second) // the backoff after a stall
		if !h.loop.Board.Ready() {
			t.Error("not ready after a reconcile succeeded")
		}
	})
}

// After transient failures the loop retries at 1 s, 2 s, 4 s…, not at the
// interval; once they pass it returns to the interval.
func TestLoopBacksOff(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		story := testkit.NewStory(t)
		h := newHarness(t, story, func(c *LoopConfig) {
			c.Planner = reconcile.NewPlanner(&cloudflare.Clients{BaseURL: testkit.APIURL, Getenv: story.Getenv(testkit.APIURL), RateLimit: 1200,
				Timeout: time.Minute, Transport: story.Transport()}, reconcile.NewState(c.Now)) // no retries
		})
		story.Fake.Fail(fake.Failure{Path: "*", Status: http.StatusServiceUnavailable})
		h.run(t)
		var at []int
		for s := range 16 {
			synctest.Wait()
			for len(at) < h.reconciles("error") {
				at = append(at, s)
			}
			testkit.Advance(time.Second)
		}
		if want := []int{0, 1, 3, 7, 15}; !slices.Equal(at, want) {
			t.Errorf("failed reconciles at %v s, want %v", at, want)
		}
		story.Fake.ClearFailures()
		testkit.Advance(16 * time.Second)
		if h.reconciles("success") != 1 {
			t.Fatalf("%d successes", h.reconciles("success"))
		}
		testkit.Advance(50 * time.Minute)
		if n := h.reconciles("success"); n != 1 {
			t.Errorf("%d successes in 50 min after recovering: the backoff did not reset to the interval", n)
		}
	})
}

// A loop restarted while the head is refused enforces the newest good
// revision before it (walking back), and reports the head.
func TestLoopRestartWithRefusedHead(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		story := testkit.NewStory(t)
		first := newHarness(t, story, nil)
		if err := first.once(t); err != nil {
			t.Fatal(err)
		}
		good := story.Head()
		story.Commit("a typo", map[string]string{"typo.yaml": typoGrant})
		story.Put("sneaky@example.com", false, desired.Access{Role: "Administrator", Resource: testkit.WholeAccount})
		second := newHarness(t, story, nil)
		if err := second.once(t); err != nil {
			t.Fatal(err)
		}
		st := second.loop.Board.Status()
		if st.Revision == nil || st.Revision.SHA != good {
			t.Errorf("enforcing %v, want the last good revision %s", st.Revision, good)
		}
		if st.BadRevision == nil || st.BadRevision.Result != VerdictInvalid || !strings.Contains(st.BadRevision.Findings[0].Message, "no-such-role") {
			t.Errorf("bad revision %+v, want the head refused", st.BadRevision)
		}
		if story.HasMember("sneaky@example.com") || story.HasMember("zed@example.com") {
			t.Errorf("members after the restart: %v", story.Members())
		}
		if !strings.Contains(second.logs.String(), "enforcing the newest good revision before it") {
			t.Error("the walk back is not logged")
		}
	})
}

// A force-push putting an older commit back is refused — in the running
// loop, and after a restart with a state file.
func TestLoopRefusesAForcePush(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		story := testkit.NewStory(t)
		state := filepath.Join(t.TempDir(), "state.json")
		withState := func(c *LoopConfig) { c.StateFile = state }
		h := newHarness(t, story, withState)
		if err := h.once(t); err != nil || !story.HasMember("dave@example.com") {
			t.Fatalf("first reconcile: %v", err)
		}
		old := story.Head()
		story.Commit("revoke dave", map[string]string{"grants.yaml": strings.Replace(story.ReadFile("grants.yaml"), "  - {users: [dave@example.com], roles: [ro], reason: SEC-2 audit}\n", "", 1)})
		if err := h.once(t); err != nil || story.HasMember("dave@example.com") {
			t.Fatalf("dave not removed: %v", err)
		}
		story.Git("reset", "-q", "--hard", old) // the force-push
		check := func(h *harness, restarted bool) {
			t.Helper()
			// After a restart nothing can be enforced: every revision
			// not below the one last applied is refused.
			if err := h.once(t); (err != nil) != restarted {
				t.Fatalf("reconcile: %v", err)
			}
			if st := h.loop.Board.Status(); st.BadRevision == nil || st.BadRevision.Result != VerdictNonFastForward {
				t.Errorf("bad revision %+v", st.BadRevision)
			}
			if story.HasMember("dave@example.com") {
				t.Error("dave re-invited by the force-push")
			}
		}
		check(h, false)
		check(newHarness(t, story, withState), true)
	})
}

// A protected member stays protected by its id once seen, even when a
// later read shows another email for it.
func TestLoopProtectedByID(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		story := testkit.NewStory(t)
		var ownerID string
		for _, m := range story.Fake.Members() {
			if m.Email == "owner@example.com" {
				ownerID = m.ID
			}
		}
		h := newHarness(t, story, nil)
		if err := h.once(t); err != nil {
			t.Fatal(err)
		}
		story.Fake.Fail(fake.Failure{Method: "GET", Path: "/accounts/" + story.Fake.AccountID() + "/members",
			Mutate: func(b []byte) []byte {
				return bytes.ReplaceAll(b, []byte(`"email":"owner@example.com"`), []byte(`"email":"renamed-owner@example.com"`))
			}})
		story.Fake.ResetRequests()
		_ = h.once(t)
		for _, r := range story.Fake.Requests() {
			if r.Method != "GET" && strings.Contains(r.Path, ownerID) {
				t.Errorf("the protected owner was written to: %s %s", r.Method, r.Path)
			}
		}
	})
}

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

// A revision whose guardrails loop is refused within the policy timeout;
// the last good revision stays enforced and grants still expire. (Not in
// a synctest bubble: the timeout must interrupt a goroutine that computes,
// which a bubble's clock, advancing only when all goroutines wait, never
// would. It takes the timeout, 1 s.)
func TestLoopRefusesALoopingPolicy(t *testing.T) {
	t.Parallel()
	story := testkit.NewStory(t)
	clock := story.Now
	h := newHarness(t, story, func(c *LoopConfig) {
		c.Checks.PolicyTimeout = 100 * time.Millisecond
		c.Now = func() time.Time { return clock }
	})
	expiry := clock.Add(time.Hour)
	story.Commit("jit", map[string]string{"jit.yaml": "grants:\n  - {users: [jit@example.com], roles: [ro], reason: INC-7, expires: " + expiry.Format(time.RFC3339) + "}\n"})
	if err := h.once(t); err != nil || !story.HasMember("jit@example.com") {
		t.Fatalf("first reconcile: %v", err)
	}
	good := story.Head()
	story.Commit("a policy that loops after a date", map[string]string{"policies/spin.rego": loopingPolicy})
	start := time.Now()
	if err := h.once(t); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	st := h.loop.Board.Status()
	if st.Revision == nil || st.Revision.SHA != good || st.BadRevision == nil || st.BadRevision.Result != VerdictInvalid {
		t.Fatalf("status = %+v", st)
	}
	if msg := st.BadRevision.Findings[0].Message; !strings.Contains(msg, "did not finish within --policy-timeout 100ms") {
		t.Errorf("finding %q", msg)
	}
	t.Logf("the looping revision was refused in %v (policy timeout 100 ms)", took.Round(time.Millisecond))
	clock = expiry.Add(time.Second)
	if err := h.once(t); err != nil || story.HasMember("jit@example.com") {
		t.Errorf("jit not revoked under the last good revision: %v", err)
	}
}

// Each revision is loaded and its guardrails compiled once, then only
// evaluated again at each reconcile: from Git (a new commit compiles
// anew) and from a directory (the same files, the same compilation; an
// edit compiles anew).
func TestRevisionCompiledOnce(t *testing.T) {
	t.Parallel()
	for _, dir := range []bool{false, true} {
		t.Run(fmt.Sprint("directory ", dir), func(t *testing.T) {
			t.Parallel()
			story := testkit.NewStory(t)
			h := newHarness(t, story, func(c *LoopConfig) {
				if dir {
					c.Source = gitsource.Directory{Path: story.Repo}
				}
			})
			if err := h.once(t); err != nil {
				t.Fatal(err)
			}
			first := h.loop.good.compiled
			for range 3 {
				story.Put("sneaky@example.com", false) // drift: planned and corrected each time
				if err := h.once(t); err != nil {
					t.Fatal(err)
				}
				if h.loop.good.compiled != first {
					t.Fatal("the same revision compiled again")
				}
			}
			story.Commit("more", map[string]string{"more.yaml": "grants:\n  - {users: [zed@example.com], roles: [ro], reason: T-9}\n"})
			if err := h.once(t); err != nil {
				t.Fatal(err)
			}
			if h.loop.good.compiled == first || !story.HasMember("zed@example.com") {
				t.Errorf("a new revision: compiled anew %v, applied %v", h.loop.good.compiled != first, story.HasMember("zed@example.com"))
			}
		})
	}
}

// unsigned is a source whose commits fail verification.
type unsigned struct{ Source }

func (unsigned) Verify(sha string) error {
	return fmt.Errorf("commit %s is not signed by a trusted key", gitsource.Short(sha))
}

// An unverified head is refused as such, and with nothing enforced yet
// nothing is written.
func TestLoopRefusesAnUnverifiedRevision(t *testing.T) {
	t.Parallel()
	story := testkit.NewStory(t)
	h := newHarness(t, story, func(c *LoopConfig) { c.Source = unsigned{c.Source} })
	err := h.once(t)
	if KindOf(err) != Transient {
		t.Errorf("RunOnce = %v (%s), want a transient failure: nothing to enforce", err, KindOf(err))
	}
	if st := h.loop.Board.Status(); st.BadRevision == nil || st.BadRevision.Result != VerdictUnverified ||
		!strings.Contains(st.BadRevision.Findings[0].Message, "not signed") {
		t.Errorf("status %+v", st.BadRevision)
	}
	if w := story.Writes(); len(w) != 0 {
		t.Errorf("an unverified revision wrote %v", w)
	}
}
