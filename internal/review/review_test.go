package review_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/gitsource"
	"github.com/cfaccess/reconciler/internal/golden"
	"github.com/cfaccess/reconciler/internal/report"
	"github.com/cfaccess/reconciler/internal/review"
	"github.com/cfaccess/reconciler/internal/testkit"
)

// reviewNow is when the review story's review is made.
var reviewNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// reviewStory is the review's story: a real Git repository of two commits
// (March: alice and bob's grant, due for review on 2026-10-01; September:
// carol and pat's, due 2027-01-15, dave's and erin's, erin's expired on
// 2026-11-01), and the story's fake account (testkit.Story: owner, alice,
// bob, carol with Billing too, pat pending, stranger with Firewall), where
// alice turns on 2FA, dave (2FA) and erin are added, carol is put in a
// user group "Contractors" (Analytics) in July — her last activity, outside
// the 90 days — and alice edits stranger in the dashboard on 2026-11-20.
type reviewStory struct {
	*testkit.Story
	dir string
	// commits are the repository's commits, oldest first.
	commits []string
	dates   []time.Time
}

func newReviewStory(t *testing.T) *reviewStory {
	t.Helper()
	var clock atomic.Int64
	at := func(t time.Time) { clock.Store(t.UnixNano()) }
	at(time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC))
	s := testkit.NewStoryWith(t, fake.Options{Token: testkit.Token, AccountName: "Production",
		Now: func() time.Time { return time.Unix(0, clock.Load()).UTC() }})
	e := &reviewStory{Story: s, dir: t.TempDir()}
	dns := desired.Access{Role: "Domain DNS", Resource: testkit.Zone}
	ro := desired.Access{Role: "Administrator Read Only", Resource: testkit.WholeAccount}

	at(time.Date(2026, 7, 1, 8, 0, 0, 0, time.UTC))
	s.Fake.SetDashboardUser("carol@example.com")
	if _, err := s.Fake.PutUserGroup(fake.UserGroupSpec{Name: "Contractors", Members: []string{"carol@example.com"},
		Access: []desired.Access{{Role: "Analytics", Resource: testkit.WholeAccount}}}); err != nil {
		t.Fatal(err)
	}
	at(time.Date(2026, 9, 2, 9, 0, 0, 0, time.UTC))
	s.Fake.SetDashboardUser(fake.DashboardUser)
	for _, m := range []fake.MemberSpec{
		{Email: "alice@example.com", TwoFactor: true, Access: []desired.Access{dns}},
		{Email: "dave@example.com", TwoFactor: true, Access: []desired.Access{ro}},
		{Email: "erin@example.com", Access: []desired.Access{ro}},
	} {
		if _, err := s.Fake.PutMember(m); err != nil {
			t.Fatal(err)
		}
	}
	at(time.Date(2026, 11, 20, 10, 15, 0, 0, time.UTC))
	s.Fake.SetDashboardUser("alice@example.com")
	s.Put("stranger@example.com", false, desired.Access{Role: "Firewall", Resource: testkit.WholeAccount})
	at(reviewNow)

	e.commit(t, time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC), "alice and bob on call", map[string]string{
		"providers.yaml": `providers:
  prod:
    provider: cloudflare
    config: {account_id: ` + s.Fake.AccountID() + `}
    reconcile: {protected: [owner@example.com]}
`,
		"roles.yaml": `roles:
  dns: {providers: [prod], inherits: [Domain DNS], resources: {allow: [zone:example.com]}}
  ro: {providers: [prod], inherits: [Administrator Read Only], resources: {allow: ["account:*"]}}
`,
		"grants.yaml": `grants:
  - users: [alice@example.com, bob@example.com]
    roles: [dns]
    reason: OPS-1 on-call rotation
    review_after: 2026-10-01
`,
	})
	e.commit(t, time.Date(2026, 9, 1, 14, 30, 0, 0, time.UTC), "DNS migration, audit, incident", map[string]string{
		"grants.yaml": `grants:
  - users: [alice@example.com, bob@example.com]
    roles: [dns]
    reason: OPS-1 on-call rotation
    review_after: 2026-10-01
  - users: [carol@example.com, pat@example.com]
    roles: [dns]
    reason: OPS-7 DNS migration
    review_after: 2027-01-15
  - users: [dave@example.com]
    roles: [ro]
    reason: SEC-2 audit
    expires: 2026-12-31
  - users: [erin@example.com]
    roles: [ro]
    reason: INC-3 incident
    expires: 2026-11-01
`,
	})
	return e
}

// commit writes files and commits them at date, as Ada: the commit ids
// are the same at every run.
func (e *reviewStory) commit(t *testing.T, date time.Time, msg string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(e.dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if len(e.commits) == 0 {
		e.git(t, date, "init", "-q", "-b", "main")
	}
	e.git(t, date, "add", "-A")
	e.git(t, date, "commit", "-q", "-m", msg)
	out, err := exec.Command("git", "-C", e.dir, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	e.commits = append(e.commits, strings.TrimSpace(string(out)))
	e.dates = append(e.dates, date)
}

func (e *reviewStory) git(t *testing.T, date time.Time, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = e.dir
	d := date.Format(time.RFC3339)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com", "GIT_COMMITTER_NAME=Ada",
		"GIT_COMMITTER_EMAIL=ada@example.com", "GIT_AUTHOR_DATE="+d, "GIT_COMMITTER_DATE="+d,
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// input reads the story as the review command does: the repository
// checked at reviewNow, the account and its audit log over 90 days read
// through the real client. Grants are dated by the commit that added them
// (the command's git blame is tested in internal/app).
func (e *reviewStory) input(t *testing.T) review.Input {
	t.Helper()
	ctx := context.Background()
	src, diags, err := desired.ReadDir(e.dir, "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := check.Check(ctx, src, diags, reviewNow, check.Options{})
	if err != nil || !c.Valid() {
		t.Fatalf("check: %v %v", err, c.Diags)
	}
	rev, _ := gitsource.Head(e.dir)
	clients := &cloudflare.Clients{BaseURL: testkit.APIURL, Getenv: e.Getenv(testkit.APIURL),
		RateLimit: 1200, Timeout: time.Minute, Transport: e.Transport()}
	client, _, err := clients.For("", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	pv := c.Repo.Providers["prod"]
	live, err := client.ReadAccount(ctx, pv.AccountID, cloudflare.ReadOptions{AllZones: true})
	if err != nil {
		t.Fatal(err)
	}
	window := 90 * 24 * time.Hour
	since := reviewNow.Add(-window)
	res, err := client.AuditLog(ctx, pv.AccountID, cloudflare.AuditQuery{Since: since, Before: reviewNow, All: true})
	if err != nil || res.Truncated {
		t.Fatalf("audit log: %v (truncated %v)", err, res.Truncated)
	}
	added := func(p desired.Pos) (review.GrantAdded, bool) {
		i := 1 // the second commit added every grant but the first
		if p.Line == 2 {
			i = 0
		}
		return review.GrantAdded{Time: e.dates[i], Commit: e.commits[i]}, p.File == "grants.yaml"
	}
	return review.Input{Checked: c, Revision: rev, Now: reviewNow, Window: window, Added: added,
		Accounts: []review.Account{{Provider: "prod", AccountID: pv.AccountID, Live: live, Protected: pv.Protected,
			Activity: review.Activity{Since: since, Before: reviewNow, Last: review.LastActions(res.Entries, cloudflare.Identity{TokenID: e.Fake.TokenID()})}}}}
}

// TestGolden renders the story's review in every format and
// compares it with testdata/review.* (go test -update refreshes).
func TestGolden(t *testing.T) {
	t.Parallel()
	e := newReviewStory(t)
	doc := review.New(e.input(t))
	for _, format := range report.ReviewFormats {
		t.Run(format, func(t *testing.T) {
			var b bytes.Buffer
			if err := report.Review(&b, format, doc); err != nil {
				t.Fatal(err)
			}
			ext := map[string]string{"markdown": "md", "csv": "csv", "json": "json"}[format]
			golden.Compare(t, "testdata/review."+ext, b.String())
		})
	}
	if w := e.Writes(); len(w) != 0 {
		t.Errorf("the review wrote: %v", w)
	}
}

// The review's facts, as a specification: what each member holds and
// from which grant, what is not in Git, what is overdue, who did what.
func TestFacts(t *testing.T) {
	t.Parallel()
	e := newReviewStory(t)
	doc := review.New(e.input(t))
	type row struct{ email, access, grants, activity string }
	var got []row
	for _, m := range doc.Accounts[0].Members {
		activity := ""
		if m.LastActivity != nil {
			activity = m.LastActivity.Time + " " + m.LastActivity.Action
		}
		for _, a := range m.Access {
			var gs []string
			for _, g := range a.Grants {
				s := g.Source
				if g.ReviewOverdue {
					s += " overdue"
				}
				if !g.Active {
					s += " inactive"
				}
				gs = append(gs, s)
			}
			access := a.Role + " on " + a.Resource
			if a.UserGroup != "" {
				access += " via " + a.UserGroup
			}
			got = append(got, row{m.Email, access, strings.Join(gs, ","), activity})
		}
	}
	alice := "2026-11-20T10:15:00Z Edit Member"
	want := []row{
		{"alice@example.com", "Domain DNS on zone:example.com", "grants.yaml:2 overdue", alice},
		{"bob@example.com", "Domain DNS on zone:example.com", "grants.yaml:2 overdue", ""},
		{"carol@example.com", "Billing on account:*", "", ""},
		{"carol@example.com", "Domain DNS on zone:example.com", "grants.yaml:6", ""},
		{"carol@example.com", "Analytics on account:* via Contractors", "", ""},
		{"dave@example.com", "Administrator Read Only on account:*", "grants.yaml:10", ""},
		{"erin@example.com", "Administrator Read Only on account:*", "grants.yaml:14 inactive", ""},
		{"owner@example.com", "Super Administrator - All Privileges on account:*", "", ""},
		{"pat@example.com", "Domain DNS on zone:example.com", "grants.yaml:6", ""},
		{"stranger@example.com", "Firewall on account:*", "", ""},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(row{})); diff != "" {
		t.Errorf("review (-want +got):\n%s", diff)
	}
	wantSum := review.SummaryDoc{Accounts: 1, Counts: review.Counts{Members: 8, Pending: 1, WithoutTwoFactor: 5, NotInGit: 5, OverdueGrants: 1}}
	if diff := cmp.Diff(wantSum, doc.Summary); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
}

// The audit log unreadable, or read in part: the members are listed, and
// their last activity is said to be unknown rather than none.
func TestActivityUnknown(t *testing.T) {
	t.Parallel()
	e := newReviewStory(t)
	in := e.input(t)
	in.Accounts[0].Activity = review.Activity{Since: reviewNow.Add(-time.Hour), Before: reviewNow, NotReadable: true,
		Unknown: "audit log not readable with this token (needs Account Settings Read): last activity unknown"}
	doc := review.New(in)
	if got := doc.Accounts[0].Activity.Status; got != "not_readable" {
		t.Errorf("activity status %q, want not_readable", got)
	}
	for _, m := range doc.Accounts[0].Members {
		if m.LastActivity != nil {
			t.Errorf("%s: last activity %v, want none", m.Email, m.LastActivity)
		}
	}
	var md, cs bytes.Buffer
	if err := report.Review(&md, "markdown", doc); err != nil {
		t.Fatal(err)
	}
	if err := report.Review(&cs, "csv", doc); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "❔ audit log not readable with this token (needs Account Settings Read)") {
		t.Errorf("markdown does not say the log is unreadable:\n%s", md.String())
	}
	rows, err := csv.NewReader(&cs).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows[1:] {
		if r[17] != "unknown" {
			t.Errorf("csv last_activity %q, want unknown: %v", r[17], r)
		}
	}
}

// A break-glass grant is listed for an after-the-fact look, ended or not.
func TestBreakGlassListed(t *testing.T) {
	t.Parallel()
	e := newReviewStory(t)
	e.commit(t, time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC), "break-glass: INC-12", map[string]string{"bg.yaml": `roles:
  bg: {providers: [prod], inherits: [Administrator Read Only], resources: {allow: ["account:*"]}, break_glass: {max_duration: 1h}}
grants:
  - {users: [night@example.com], roles: [bg], reason: INC-12 outage, break_glass: true, not_before: 2026-11-20T03:00:00Z, expires: 2026-11-20T04:00:00Z}
`})
	doc := review.New(e.input(t))
	if len(doc.BreakGlassGrants) != 1 {
		t.Fatalf("break-glass grants: %+v", doc.BreakGlassGrants)
	}
	g := doc.BreakGlassGrants[0]
	if g.Source != "bg.yaml:4" || !g.BreakGlass || g.Users[0] != "night@example.com" || g.Active {
		t.Errorf("%+v", g)
	}
	var md strings.Builder
	if err := report.Review(&md, "markdown", doc); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "## Break-glass grants, not reviewed before use") || !strings.Contains(md.String(), "INC-12 outage") {
		t.Errorf("the markdown review:\n%s", md.String())
	}
}
