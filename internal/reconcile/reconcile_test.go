package reconcile

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/gitsource"
	"github.com/cfaccess/reconciler/internal/testkit"
)

// TestPlanAndApply plans and applies the story's account in situations a
// reconcile meets, and checks the plan and the account after.
func TestPlanAndApply(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// setup changes the story before the plan; now is when it runs.
		setup func(*testkit.Story)
		now   time.Time
		opts  PlanOptions
		// want are the planned changes, members the account after apply
		// (emails, sorted), err a planning failure.
		want    []string
		members []string
		err     string
	}{
		{name: "the story's drift",
			want:    []string{"remove stranger@example.com", "update carol@example.com", "invite dave@example.com", "invite erin@example.com"},
			members: []string{"alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com", "erin@example.com", "owner@example.com", "pat@example.com"}},
		{name: "after the incident grant expired", now: time.Date(2026, 11, 24, 0, 0, 1, 0, time.UTC),
			want:    []string{"remove stranger@example.com", "update carol@example.com", "invite dave@example.com"},
			members: []string{"alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com", "owner@example.com", "pat@example.com"}},
		{name: "on the day a grant starts", now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
			want:    []string{"remove stranger@example.com", "update carol@example.com", "invite dave@example.com", "invite frank@example.com"},
			members: []string{"alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com", "frank@example.com", "owner@example.com", "pat@example.com"}},
		{name: "too many removals trip the breaker",
			setup: func(s *testkit.Story) {
				s.Commit("nobody", map[string]string{"grants.yaml": "grants: []\n"})
			},
			err: "mass-removal"},
		{name: "the breaker, confirmed", opts: PlanOptions{AllowMassRemoval: true},
			setup: func(s *testkit.Story) {
				s.Commit("nobody", map[string]string{"grants.yaml": "grants: []\n"})
			},
			want:    []string{"remove alice@example.com", "remove bob@example.com", "remove carol@example.com", "remove pat@example.com", "remove stranger@example.com"},
			members: []string{"owner@example.com"}},
		{name: "a zone the account lacks",
			setup: func(s *testkit.Story) {
				s.Commit("typo", map[string]string{"typo.yaml": "roles:\n  typo: {providers: [prod], inherits: [Domain DNS], resources: {allow: [zone:exmaple.com]}}\ngrants:\n  - {users: [zed@example.com], roles: [typo], reason: T-1}\n"})
			},
			err: "zone exmaple.com is not in account"},
		{name: "the account cannot be read",
			setup: func(s *testkit.Story) {
				s.Fake.Fail(fake.Failure{Path: "*", Status: http.StatusForbidden})
			},
			err: "403"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			story := testkit.NewStory(t)
			if tc.setup != nil {
				tc.setup(story)
			}
			now := tc.now
			if now.IsZero() {
				now = story.Now
			}
			src, diags, err := desired.ReadDir(story.Repo, "")
			if err != nil {
				t.Fatal(err)
			}
			c, err := check.Check(t.Context(), src, diags, now, check.Options{})
			if err != nil || !c.Valid() || c.Denied() {
				t.Fatalf("check: %v %v", err, c.Findings())
			}
			p := NewPlanner(&cloudflare.Clients{BaseURL: testkit.APIURL, Getenv: story.Getenv(testkit.APIURL), RateLimit: 1200,
				Timeout: time.Minute, Transport: story.Transport()}, nil)
			o, err := p.Plan(t.Context(), c, gitsource.Revision{}, now, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			ap := o.Accounts[0]
			if tc.err != "" {
				if ap.Err == nil || !contains(ap.Err.Error(), tc.err) {
					t.Fatalf("plan error %v, want %q", ap.Err, tc.err)
				}
				if w := story.Writes(); len(w) != 0 {
					t.Errorf("a failed plan wrote: %v", w)
				}
				return
			}
			if ap.Err != nil {
				t.Fatal(ap.Err)
			}
			var got []string
			for _, ch := range ap.Plan.Changes {
				got = append(got, string(ch.Action)+" "+ch.Email)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("changes %q, want %q", got, tc.want)
			}
			p.Apply(t.Context(), o, nil)
			if n := o.FailedChanges(); n > 0 {
				t.Fatalf("%d changes failed: %+v", n, ap.Results)
			}
			var members []string
			for email := range story.Members() {
				members = append(members, email)
			}
			slices.Sort(members)
			if !slices.Equal(members, tc.members) {
				t.Errorf("members after apply %q, want %q", members, tc.members)
			}
			// Applied, the account is in sync: the next plan is empty.
			o2, err := p.Plan(t.Context(), c, gitsource.Revision{}, now, tc.opts)
			if err != nil || o2.Accounts[0].Err != nil || o2.Changes() != 0 {
				t.Errorf("second plan: %v %v, %d changes", err, o2.Accounts[0].Err, o2.Changes())
			}
		})
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// Each plan says how it had the account and why: (with change detection)
// read in full first, and after cfaccess's own changes, the last read
// reused while the log shows nothing, read in full again when the zones to
// read change; without change detection, always in full.
func TestReadReasons(t *testing.T) {
	t.Parallel()
	story := testkit.NewStory(t)
	now := story.Now.Add(time.Hour) // the story's seeding is older than the log's margin
	story.Clock = func() time.Time { return now }
	plan := func(p *Planner) *AccountPlan {
		t.Helper()
		src, diags, err := desired.ReadDir(story.Repo, "")
		if err != nil {
			t.Fatal(err)
		}
		c, err := check.Check(t.Context(), src, diags, now, check.Options{})
		if err != nil || !c.Valid() {
			t.Fatal(err, c.Findings())
		}
		o, err := p.Plan(t.Context(), c, gitsource.Revision{}, now, PlanOptions{})
		if err != nil || o.Accounts[0].Err != nil {
			t.Fatal(err, o.Accounts[0].Err)
		}
		p.Apply(t.Context(), o, nil)
		now = now.Add(time.Minute)
		return o.Accounts[0]
	}
	clients := &cloudflare.Clients{BaseURL: testkit.APIURL, Getenv: story.Getenv(testkit.APIURL), RateLimit: 1200,
		Timeout: time.Minute, Transport: story.Transport()}
	p := NewPlanner(clients, NewState(func() time.Time { return now }))
	p.Detect = &Detection{FullReadInterval: time.Hour, Margin: time.Minute}
	for i, want := range []struct {
		read   ReadMode
		reason ReadReason
	}{{ReadFull, ReasonFirst}, {ReadFull, ReasonApplied}, {ReadReused, ""}} {
		if r := plan(p).ReadInfo; r.Read != want.read || r.Reason != want.reason {
			t.Errorf("plan %d: %s (%s), want %s (%s)", i+1, r.Read, r.Reason, want.read, want.reason)
		}
	}
	story.Fake.AddZone("example.org")
	story.Commit("a zone more", map[string]string{"more.yaml": "roles:\n  org: {providers: [prod], inherits: [Domain DNS], resources: {allow: [zone:example.org]}}\n"})
	if r := plan(p).ReadInfo; r.Read != ReadFull || r.Reason != ReasonScope {
		t.Errorf("another zone named: %s (%s), want a full read (scope)", r.Read, r.Reason)
	}
	if r := plan(NewPlanner(clients, nil)).ReadInfo; r.Read != ReadFull || r.Reason != ReasonDisabled {
		t.Errorf("without change detection: %+v", r)
	}
}
