package daemon

import (
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/reconcile"
	"github.com/cfaccess/reconciler/internal/testkit"
)

// reconcileEvery runs n reconciles, d apart (d after the last too).
func (h *harness) reconcileEvery(t *testing.T, n int, d time.Duration) {
	t.Helper()
	for range n {
		if err := h.once(t); err != nil {
			t.Fatal(err)
		}
		testkit.Advance(d)
	}
}

// requests counts the fake's requests since the last reset, and resets.
func requests(s *fake.Server) (n int, paths []string) {
	for _, r := range s.Requests() {
		paths = append(paths, r.Method+" "+r.Path)
	}
	s.ResetRequests()
	return len(paths), paths
}

func readStatus(h *harness) ReadStatus {
	st := h.loop.Board.Status()
	if len(st.Accounts) == 0 || st.Accounts[0].Read == nil {
		return ReadStatus{}
	}
	return *st.Accounts[0].Read
}

// With the audit log, a reconcile where nothing changed asks the log and
// reads nothing else; a change made in the dashboard is corrected within
// the interval plus the log's delay, and named; an entry the log lost is
// corrected by the next full read, once per FullReadInterval; a log that
// cannot be read means a full read, said on /status.
func TestChangeDetection(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		story := testkit.NewStory(t)
		const delay = 90 * time.Second
		h := newHarness(t, story, func(c *LoopConfig) {
			c.Interval = time.Minute
			c.Planner.Detect = &reconcile.Detection{FullReadInterval: 10 * time.Minute, Margin: 2 * time.Minute}
		})
		story.Fake.SetAuditDelay(delay)
		h.run(t)
		synctest.Wait()
		if r := readStatus(h); r.Read != reconcile.ReadFull || r.Reason != reconcile.ReasonFirst {
			t.Fatalf("first read: %+v", r)
		}
		// The first apply changed the account (and the story's seeding is
		// in the log): read in full once more.
		testkit.Advance(66 * time.Second)
		if r := readStatus(h); r.Read != reconcile.ReadFull || r.Reason != reconcile.ReasonApplied && r.Reason != reconcile.ReasonChanges {
			t.Fatalf("after the first apply: %+v", r)
		}
		requests(story.Fake)
		testkit.Advance(66 * time.Second)
		n, paths := requests(story.Fake)
		if r := readStatus(h); r.Read != reconcile.ReadReused || n > 3 {
			t.Fatalf("steady state: %+v after %d requests %v", r, n, paths)
		}

		// A member added in the dashboard: removed within an interval
		// (+10% jitter) plus the log's delay, and named.
		story.Fake.SetDashboardUser("mallory@example.com")
		oob := func() float64 {
			return testutil.ToFloat64(h.metrics.OutOfBandChanges.WithLabelValues("prod", "user", "dash"))
		}
		before := oob()
		added := h.now()
		story.Put("sneaky@example.com", false, desired.Access{Role: "Domain DNS", Resource: testkit.Zone})
		for story.HasMember("sneaky@example.com") && h.now().Sub(added) < 5*time.Minute {
			testkit.Advance(time.Second)
		}
		if took := h.now().Sub(added); story.HasMember("sneaky@example.com") || took > 66*time.Second+delay+time.Second {
			t.Fatalf("sneaky removed after %v (present: %v), want within %v", took, story.HasMember("sneaky@example.com"), 66*time.Second+delay)
		}
		st := h.loop.Board.Status()
		if d := st.Accounts[0].Drift; len(d) != 1 || d[0].Actor != "mallory@example.com" || d[0].Context != "dash" || !d[0].Applied || d[0].Change != "remove" {
			t.Errorf("/status drift: %+v", d)
		}
		if r := readStatus(h); r.Reason != reconcile.ReasonChanges {
			t.Errorf("read %+v, want a full read for the changes", r)
		}
		if got := oob() - before; got != 1 {
			t.Errorf("out-of-band changes metric +%v, want +1", got)
		}
		if logs := h.logs.String(); !strings.Contains(logs, `"drift_actor":"mallory@example.com"`) || !strings.Contains(logs, `"drift_context":"dash"`) {
			t.Errorf("the audit record does not name who drifted:\n%s", logs)
		}

		// An entry the log loses: only the next full read finds it.
		testkit.Advance(3 * time.Minute) // the removal's full read done
		story.Fake.LoseAuditEntries(1)
		story.Put("ghost@example.com", false, desired.Access{Role: "Domain DNS", Resource: testkit.Zone})
		lost := h.now()
		for story.HasMember("ghost@example.com") && h.now().Sub(lost) < 15*time.Minute {
			testkit.Advance(time.Second)
		}
		if story.HasMember("ghost@example.com") {
			t.Fatal("the lost change was never corrected")
		}
		if r := readStatus(h); r.Reason != reconcile.ReasonInterval {
			t.Errorf("the lost change was corrected by a %q read, want interval", r.Reason)
		}

		// The log refuses: a full read every time, said on /status.
		story.Fake.Fail(fake.Failure{Path: "/accounts/" + story.Fake.AccountID() + "/logs/audit", Status: 403})
		testkit.Advance(66 * time.Second)
		if r := readStatus(h); r.Read != reconcile.ReadFull || r.Reason != reconcile.ReasonAuditLog || !strings.Contains(r.AuditLogError, "403") {
			t.Errorf("with the log refused: %+v", r)
		}
	})
}

// After a restart with no state file, the age of pending invitations and
// --reinvite-after come from the invitations' "Add Member" entries in the
// audit log: the invitation sent before the restart is re-sent on time,
// and the oldest-pending metric counts from when it was sent.
func TestInvitationAgeSurvivesRestart(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		story := testkit.NewStory(t)
		tune := func(c *LoopConfig) {
			c.Interval = time.Hour
			c.Plans.ReinviteAfter = 72 * time.Hour
		}
		first := newHarness(t, story, tune)
		if err := first.once(t); err != nil {
			t.Fatal(err)
		}
		invited := first.now()
		// A day later the process restarts: a new planner, no state file.
		testkit.Advance(24 * time.Hour)
		second := newHarness(t, story, tune)
		second.start = first.start // the same clock
		story.Clock = second.now
		if err := second.once(t); err != nil {
			t.Fatal(err)
		}
		age := testutil.ToFloat64(second.metrics.OldestPendingInvite.WithLabelValues("prod"))
		if want := second.now().Sub(story.Now).Seconds(); age < 24*3600 || age > want+1 {
			t.Errorf("oldest pending invitation %v s after the restart, want about %v s (pat, pending since the story began)", age, want)
		}
		if strings.Contains(second.logs.String(), `"action":"reinvite"`) {
			t.Fatal("re-invited a day after the invitation")
		}
		// 72 hours after dave's invitation: re-sent, by the new process.
		testkit.Advance(invited.Add(72*time.Hour).Sub(second.now()) + time.Minute)
		if err := second.once(t); err != nil {
			t.Fatal(err)
		}
		if logs := second.logs.String(); !strings.Contains(logs, `"action":"reinvite","email":"dave@example.com"`) {
			t.Errorf("dave's invitation was not re-sent 72 h after it was sent:\n%s", logs)
		}
	})
}

// An invitation accepted while the daemon reuses an older read (accepting
// leaves no audit entry the daemon follows) is not withdrawn for a
// re-invitation: the member is read before.
func TestReinviteChecksTheMemberFirst(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		story := testkit.NewStory(t)
		h := newHarness(t, story, func(c *LoopConfig) {
			c.Interval = time.Hour
			c.Plans.ReinviteAfter = 72 * time.Hour
			c.Planner.Detect = &reconcile.Detection{FullReadInterval: 1000 * time.Hour, Margin: time.Minute}
		})
		h.reconcileEvery(t, 3, time.Hour) // first read, the read after applying, then reused
		if r := readStatus(h); r.Read != reconcile.ReadReused {
			t.Fatalf("read %+v, want reused", r)
		}
		story.Fake.Accept("dave@example.com")
		testkit.Advance(72 * time.Hour)
		if err := h.once(t); err != nil {
			t.Fatal(err)
		}
		if got := story.Members()["dave@example.com"]; !strings.HasPrefix(got, "accepted") {
			t.Errorf("dave, who accepted, is now %q", got)
		}
		if !strings.Contains(h.logs.String(), "accepted meanwhile: not re-sent") {
			t.Errorf("the audit record does not say why dave was not re-invited:\n%s", h.logs.String())
		}
	})
}

// Who made a drift stays known while it is not corrected (here a dry
// run), and each out-of-band entry is counted once; a candidate revision
// refused in the same reconcile takes none of it away.
func TestAttributionOutlivesTheQueryWindow(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		story := testkit.NewStory(t)
		h := newHarness(t, story, func(c *LoopConfig) {
			c.Interval = time.Minute
			c.DryRun = true
			c.Planner.Detect = &reconcile.Detection{FullReadInterval: time.Hour, Margin: time.Minute}
		})
		h.reconcileEvery(t, 2, time.Minute) // the first read, then the story's seeding counted
		oob := func() float64 {
			return testutil.ToFloat64(h.metrics.OutOfBandChanges.WithLabelValues("prod", "user", "dash"))
		}
		before := oob()
		story.Fake.SetDashboardUser("mallory@example.com")
		story.Put("sneaky@example.com", false, desired.Access{Role: "Domain DNS", Resource: testkit.Zone})
		for i := range 5 {
			testkit.Advance(time.Minute)
			if i == 2 { // a revision that fails to plan: refused, the good one planned again
				story.Commit("bad zone", map[string]string{"bad.yaml": "roles:\n  bad: {providers: [prod], inherits: [Domain DNS], resources: {allow: [zone:missing.example]}}\ngrants:\n  - {users: [zed@example.com], roles: [bad], reason: T-1}\n"})
			}
			if err := h.once(t); err != nil {
				t.Fatal(err)
			}
			st := h.loop.Board.Status()
			var who []string
			for _, d := range st.Accounts[0].Drift {
				if d.Email == "sneaky@example.com" {
					who = append(who, d.Actor)
				}
			}
			if len(who) != 1 || who[0] != "mallory@example.com" {
				t.Errorf("reconcile %d: sneaky's drift attributed to %v", i, who)
			}
		}
		if got := oob() - before; got != 1 {
			t.Errorf("out-of-band changes counted %v times, want once", got)
		}
	})
}

// Changes the log names by member id are settled by reading those
// members: an edit and a removal in the dashboard cost a request each,
// not a read of the account. A member id the account does not know (the
// log's resource id is not documented to be the member's) gives the
// partial read up for a full one.
func TestPartialRead(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		story := testkit.NewStory(t)
		h := newHarness(t, story, func(c *LoopConfig) {
			c.Interval = time.Minute
			c.Planner.Detect = &reconcile.Detection{FullReadInterval: time.Hour, Margin: time.Minute}
		})
		h.reconcileEvery(t, 4, time.Minute) // converge, then steady
		if r := readStatus(h); r.Read != reconcile.ReadReused {
			t.Fatalf("steady read %+v", r)
		}
		story.Fake.SetDashboardUser("mallory@example.com")
		story.Put("alice@example.com", false, desired.Access{Role: "Domain DNS", Resource: testkit.Zone}, desired.Access{Role: "Billing", Resource: testkit.WholeAccount})
		story.Fake.RemoveMember("carol@example.com")
		testkit.Advance(time.Minute)
		requests(story.Fake)
		if err := h.once(t); err != nil {
			t.Fatal(err)
		}
		_, paths := requests(story.Fake)
		reads := 0
		for _, p := range paths {
			if strings.HasPrefix(p, "GET ") && strings.Contains(p, "/members/") {
				reads++
			}
		}
		if r := readStatus(h); r.Read != reconcile.ReadPartial || r.Reason != reconcile.ReasonChanges {
			t.Fatalf("read %+v, want partial", r)
		}
		// alice and carol read, then alice's update and carol's invitation
		// read back: four member reads, no member list (the resource-group
		// list, one request, is what an invitation reads when its group is
		// not known from the members).
		if reads != 4 || slices.ContainsFunc(paths, func(p string) bool { return strings.HasSuffix(p, "/members") && strings.HasPrefix(p, "GET") }) {
			t.Errorf("requests %v: want two member reads and two read-backs, no list", paths)
		}
		if m := story.Members(); !strings.Contains(m["carol@example.com"], "pending") || strings.Contains(m["alice@example.com"], "Billing") {
			t.Errorf("not corrected: %v", m)
		}
		drift := h.loop.Board.Status().Accounts[0].Drift
		if len(drift) != 2 || drift[0].Actor != "mallory@example.com" || drift[1].Actor != "mallory@example.com" {
			t.Errorf("drift %+v", drift)
		}

		// The log names an id the account does not hold: read whole.
		for range 2 {
			testkit.Advance(time.Minute)
			if err := h.once(t); err != nil {
				t.Fatal(err)
			}
		}
		story.Fake.Fail(fake.Failure{Path: "/accounts/" + story.Fake.AccountID() + "/logs/audit", Times: 1,
			Mutate: func(b []byte) []byte {
				return []byte(strings.Replace(string(b), `"id":"`+memberIDOf(story, "sneaky@example.com")+`"`, `"id":"0123456789abcdef0123456789abcdef"`, 1))
			}})
		story.Put("sneaky@example.com", false, desired.Access{Role: "Domain DNS", Resource: testkit.Zone})
		testkit.Advance(time.Minute)
		if err := h.once(t); err != nil {
			t.Fatal(err)
		}
		if r := readStatus(h); r.Read != reconcile.ReadFull || !strings.Contains(r.Note, "partial read was given up") {
			t.Errorf("read %+v, want a full read after a partial one was given up", r)
		}
		if story.HasMember("sneaky@example.com") {
			t.Error("sneaky not removed")
		}
	})
}

func memberIDOf(story *testkit.Story, email string) string {
	for _, m := range story.Fake.Members() {
		if m.Email == email {
			return m.ID
		}
	}
	return ""
}

// Drift cfaccess corrected is not blamed for a later change that comes
// from Git.
func TestCorrectedDriftIsNotBlamedAgain(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		story := testkit.NewStory(t)
		h := newHarness(t, story, func(c *LoopConfig) {
			c.Interval = time.Minute
			c.Planner.Detect = &reconcile.Detection{FullReadInterval: time.Hour, Margin: time.Minute}
		})
		h.reconcileEvery(t, 3, time.Minute)
		story.Fake.SetDashboardUser("mallory@example.com")
		story.Put("alice@example.com", false, desired.Access{Role: "Domain DNS", Resource: testkit.Zone}, desired.Access{Role: "Billing", Resource: testkit.WholeAccount})
		testkit.Advance(time.Minute)
		if err := h.once(t); err != nil {
			t.Fatal(err)
		}
		if d := h.loop.Board.Status().Accounts[0].Drift; len(d) != 1 || d[0].Actor != "mallory@example.com" {
			t.Fatalf("the correction is not attributed: %+v", d)
		}
		testkit.Advance(2 * time.Hour)
		story.Commit("alice reads", map[string]string{"alice.yaml": "grants:\n  - {users: [alice@example.com], roles: [ro], reason: OPS-2}\n"})
		if err := h.once(t); err != nil {
			t.Fatal(err)
		}
		st := h.loop.Board.Status().Accounts[0]
		if st.Plan == nil || st.Plan.Update != 1 || len(st.Drift) != 0 {
			t.Errorf("a change from Git is blamed on corrected drift: plan %+v, drift %+v", st.Plan, st.Drift)
		}
	})
}
