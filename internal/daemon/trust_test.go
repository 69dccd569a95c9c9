package daemon

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cfaccess/reconciler/internal/reconcile"
	"github.com/cfaccess/reconciler/internal/testkit"
)

// Issue 19: cfaccess's own writes are known by what it wrote, never by
// what a request claims. An insider who sends cfaccess's User-Agent with
// her own token, and someone who holds cfaccess's own token, each make
// alice Super Administrator while the next full read is an hour away:
// the daemon corrects it within an interval plus the audit log's delay,
// names who did it, and counts it; the second is reported as cfaccess's
// credentials used by someone else (its own actor type, an ERROR line,
// /status). The daemon's own writes raise no such report.
func TestOwnWritesKnownByWhatWasWritten(t *testing.T) {
	t.Parallel()
	const insiderToken = "insider-token-0123456789abcdef"
	for _, tc := range []struct {
		name, token, userAgent string
		actorType, actor       string
	}{
		{name: "a forged cfaccess User-Agent, from another token", token: insiderToken, userAgent: "cfaccess/v0.1.0 (revision HEAD)",
			actorType: "user", actor: "token alice's token of alice@example.com"},
		{name: "cfaccess's own token, not written by this cfaccess", token: testkit.Token, userAgent: "curl/8.11.1",
			actorType: reconcile.OurCredentialsActor, actor: "token cfaccess reconciler, cfaccess's own credentials, not this cfaccess"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				story := testkit.NewStory(t)
				story.Fake.AddToken(insiderToken, "alice@example.com", "alice's token")
				const delay = 90 * time.Second
				h := newHarness(t, story, func(c *LoopConfig) {
					c.Interval = time.Minute
					c.Planner.Detect = &reconcile.Detection{FullReadInterval: time.Hour, Margin: 2 * time.Minute}
				})
				story.Fake.SetAuditDelay(delay)
				h.run(t)
				synctest.Wait()
				for readStatus(h).Read != reconcile.ReadReused && h.now().Sub(story.Now) < 10*time.Minute {
					testkit.Advance(time.Second)
				}
				if r := readStatus(h); r.Read != reconcile.ReadReused {
					t.Fatalf("never steady: %+v", r)
				}
				elsewhere := func() float64 {
					return testutil.ToFloat64(h.metrics.OutOfBandChanges.WithLabelValues("prod", reconcile.OurCredentialsActor, "api_token"))
				}
				if n := elsewhere(); n != 0 || len(h.loop.Board.Status().Accounts[0].CredentialsElsewhere) != 0 {
					t.Fatalf("cfaccess's own writes reported as someone else's: %v", n)
				}
				counted := func() float64 {
					return testutil.ToFloat64(h.metrics.OutOfBandChanges.WithLabelValues("prod", tc.actorType, "api_token"))
				}
				before := counted()

				userAgent := strings.ReplaceAll(tc.userAgent, "HEAD", story.Head())
				testkit.Insider{BaseURL: testkit.APIURL, AccountID: story.Fake.AccountID(), Token: tc.token, UserAgent: userAgent,
					Transport: story.Transport()}.SetRole(t, "alice@example.com", "Super Administrator - All Privileges")
				made := h.now()
				escalated := func() bool { return strings.Contains(story.Members()["alice@example.com"], "Super Administrator") }
				if !escalated() {
					t.Fatal("the insider's change did not take")
				}
				for escalated() && h.now().Sub(made) < 10*time.Minute {
					testkit.Advance(time.Second)
				}
				// One interval (+10% jitter) and the log's delay: the full read
				// is an hour away.
				if took, bound := h.now().Sub(made), 66*time.Second+delay+time.Second; escalated() || took > bound {
					t.Fatalf("corrected after %v (still escalated: %v), want within %v", took, escalated(), bound)
				}
				st := h.loop.Board.Status()
				a := st.Accounts[0]
				if a.Read == nil || a.Read.Reason != reconcile.ReasonChanges {
					t.Errorf("read %+v, want a full read for the change the log shows", a.Read)
				}
				if len(a.Drift) != 1 || a.Drift[0].Actor != tc.actor || a.Drift[0].Change != "update" || !a.Drift[0].Applied {
					t.Errorf("/status drift %+v, want the update correcting %s", a.Drift, tc.actor)
				}
				if got := counted() - before; got != 1 {
					t.Errorf("out_of_band_changes_total{actor_type=%q} +%v, want +1", tc.actorType, got)
				}
				logs := h.logs.String()
				reported := strings.Contains(logs, "a change was made with cfaccess's own credentials that this cfaccess did not make")
				if tc.actorType == reconcile.OurCredentialsActor {
					if len(a.CredentialsElsewhere) != 1 || a.CredentialsElsewhere[0].Subject != "alice@example.com" || a.CredentialsElsewhere[0].UserAgent != userAgent {
						t.Errorf("/status credentials_used_elsewhere %+v", a.CredentialsElsewhere)
					}
					if !reported || !strings.Contains(logs, `"level":"ERROR"`) {
						t.Errorf("no ERROR line for the use of cfaccess's credentials:\n%s", logs)
					}
				} else if reported || elsewhere() != 0 || len(a.CredentialsElsewhere) != 0 {
					t.Errorf("another token's change reported as cfaccess's credentials used elsewhere")
				}
				// And cfaccess's own correction is not itself reported.
				testkit.Advance(5 * time.Minute)
				if got := elsewhere(); tc.actorType != reconcile.OurCredentialsActor && got != 0 || tc.actorType == reconcile.OurCredentialsActor && got != 1 {
					t.Errorf("after the correction: %v changes with cfaccess's credentials by someone else", got)
				}
			})
		})
	}
}

// A restart raises no false alarm: without a state file, the entries of
// the earlier process's writes are older than the new one and are not
// judged; with one, its journal knows them as cfaccess's own.
func TestRestartRaisesNoFalseAlarm(t *testing.T) {
	t.Parallel()
	for _, stateFile := range []bool{false, true} {
		t.Run(map[bool]string{false: "no state file", true: "state file"}[stateFile], func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				story := testkit.NewStory(t)
				path := ""
				if stateFile {
					path = t.TempDir() + "/state.json"
				}
				tune := func(c *LoopConfig) {
					c.Interval, c.StateFile = time.Minute, path
					c.Planner.Detect = &reconcile.Detection{FullReadInterval: time.Hour, Margin: 5 * time.Minute}
				}
				first := newHarness(t, story, tune)
				first.reconcileEvery(t, 2, time.Minute) // the first applies the story's drift
				if len(story.Fake.AuditLog()) < 5 {
					t.Fatalf("the first process wrote %d entries", len(story.Fake.AuditLog()))
				}
				second := newHarnessFrom(t, story, first.start, tune) // the same story clock, running on
				second.reconcileEvery(t, 4, time.Minute)
				st := second.loop.Board.Status().Accounts[0]
				if n := testutil.ToFloat64(second.metrics.OutOfBandChanges.WithLabelValues("prod", reconcile.OurCredentialsActor, "api_token")); n != 0 || len(st.CredentialsElsewhere) != 0 {
					t.Errorf("the first process's writes reported as someone else's: %v %+v", n, st.CredentialsElsewhere)
				}
				if logs := second.logs.String(); strings.Contains(logs, "did not make") {
					t.Errorf("false alarm:\n%s", logs)
				}
				if r := st.Read; r == nil || r.Read != reconcile.ReadReused {
					t.Errorf("after the restart: %+v, want the read reused", r)
				}
				if stateFile {
					judged := 0
					for _, w := range second.state.Journal.Writes() {
						if w.Entry != "" {
							judged++
						}
					}
					if judged == 0 {
						t.Error("the journal read back explains none of the first process's writes")
					}
				}
			})
		})
	}
}
