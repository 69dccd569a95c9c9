package app

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/review"
	"github.com/cfaccess/reconciler/internal/testkit"
)

// reviewE2E is the story (testkit.Story) with a clock the fake's audit
// log follows, and the repository's grants rewritten in commits of known
// dates: alice and bob's grant due for review on 2026-10-01 and carol and
// pat's on 2027-01-15 (1 September), frank's (1 November). Carol and pat's
// line is then changed in the working tree and not committed. Bob edits
// stranger in the dashboard on 2026-11-20.
type reviewE2E struct {
	*e2e
	clock *atomic.Int64
}

func newReviewE2E(t *testing.T) *reviewE2E {
	t.Helper()
	clock := &atomic.Int64{}
	clock.Store(time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC).UnixNano())
	e := &reviewE2E{e2e: newE2EWith(t, fake.Options{Token: testkit.Token, AccountName: "Production",
		Now: func() time.Time { return time.Unix(0, clock.Load()).UTC() }}), clock: clock}
	e.commitAt(time.Date(2026, 9, 1, 10, 0, 0, 0, time.UTC), "grants.yaml", `grants:
  - {users: [alice@example.com, bob@example.com], roles: [dns], reason: OPS-1 on-call, review_after: 2026-10-01}
  - {users: [carol@example.com, pat@example.com], roles: [dns], reason: OPS-7 migration, review_after: 2027-01-15}
`)
	e.commitAt(time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC), "grants.yaml", e.ReadFile("grants.yaml")+
		"  - {users: [frank@example.com], roles: [ro], reason: HR-4 new joiner}\n")
	uncommitted := strings.Replace(e.ReadFile("grants.yaml"), "OPS-7 migration", "OPS-7 DNS migration", 1)
	if err := os.WriteFile(filepath.Join(e.Repo, "grants.yaml"), []byte(uncommitted), 0o644); err != nil {
		t.Fatal(err)
	}
	e.at(time.Date(2026, 11, 20, 10, 15, 0, 0, time.UTC))
	e.Fake.SetDashboardUser("bob@example.com")
	e.Put("stranger@example.com", false, desired.Access{Role: "Firewall", Resource: testkit.WholeAccount})
	e.at(e.now)
	e.Fake.ResetRequests()
	return e
}

func (e *reviewE2E) at(t time.Time) { e.clock.Store(t.UnixNano()) }

// commitAt writes one file and commits it, authored and committed at
// date.
func (e *reviewE2E) commitAt(date time.Time, name, content string) {
	e.T.Helper()
	if err := os.WriteFile(filepath.Join(e.Repo, name), []byte(content), 0o644); err != nil {
		e.T.Fatal(err)
	}
	d := date.Format(time.RFC3339)
	for _, args := range [][]string{{"add", "-A"}, {"commit", "-q", "-m", "grants of " + d}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = e.Repo
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com", "GIT_COMMITTER_NAME=Ada",
			"GIT_COMMITTER_EMAIL=ada@example.com", "GIT_AUTHOR_DATE="+d, "GIT_COMMITTER_DATE="+d,
			"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			e.T.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
}

// review runs `reconciler review --format json` and decodes it.
func (e *reviewE2E) review(wantCode int, args ...string) review.Doc {
	e.T.Helper()
	code, out, errOut := e.run(append([]string{"review", "--repo", e.Repo, "--format", "json"}, args...)...)
	if code != wantCode {
		e.T.Fatalf("review: exit %d, want %d\n%s%s", code, wantCode, out, errOut)
	}
	var doc review.Doc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		e.T.Fatalf("%v\n%s", err, out)
	}
	return doc
}

// reviewMember finds a member of the review's only account.
func reviewMember(t *testing.T, doc review.Doc, email string) review.MemberDoc {
	t.Helper()
	for _, m := range doc.Accounts[0].Members {
		if m.Email == email {
			return m
		}
	}
	t.Fatalf("no member %s in the review", email)
	return review.MemberDoc{}
}

// The review end to end: the command reads the Git repository (grants
// dated by git blame), the account and its audit log, and never writes.
func TestReviewCommand(t *testing.T) {
	t.Parallel()
	e := newReviewE2E(t)
	doc := e.review(ExitOK)
	if w := e.Writes(); len(w) != 0 {
		t.Errorf("review wrote: %v", w)
	}

	type grant struct {
		Source, Added string
		Age           int
		Overdue       bool
	}
	grantsOf := func(email string) []grant {
		var out []grant
		for _, a := range reviewMember(t, doc, email).Access {
			for _, g := range a.Grants {
				gr := grant{Source: g.Source, Added: g.Added, Overdue: g.ReviewOverdue, Age: -1}
				if g.AgeDays != nil {
					gr.Age = *g.AgeDays
				}
				out = append(out, gr)
			}
		}
		return out
	}
	for _, tc := range []struct {
		email string
		want  []grant
	}{
		{"alice@example.com", []grant{{"grants.yaml:2", "2026-09-01T10:00:00Z", 83, true}}},
		{"bob@example.com", []grant{{"grants.yaml:2", "2026-09-01T10:00:00Z", 83, true}}},
		// The line differs from the commit's: no date rather than a wrong one.
		{"pat@example.com", []grant{{"grants.yaml:3", "", -1, false}}},
		{"stranger@example.com", nil},
	} {
		if diff := cmp.Diff(tc.want, grantsOf(tc.email)); diff != "" {
			t.Errorf("%s: grants (-want +got):\n%s", tc.email, diff)
		}
	}
	if got := reviewMember(t, doc, "stranger@example.com").Access[0].InGit; got {
		t.Error("stranger's Firewall is in Git")
	}
	if la := reviewMember(t, doc, "bob@example.com").LastActivity; la == nil || la.Time != "2026-11-20T10:15:00Z" || la.Context != "dash" {
		t.Errorf("bob's last activity %+v, want the dashboard edit of 2026-11-20", la)
	}
	if la := reviewMember(t, doc, "alice@example.com").LastActivity; la != nil {
		t.Errorf("alice's last activity %+v, want none", la)
	}
	if got, want := doc.Accounts[0].Activity, (review.ActivityDoc{Status: "read", Since: "2026-08-25T12:00:00Z", Before: "2026-11-23T12:00:00Z"}); got != want {
		t.Errorf("activity %+v, want %+v", got, want)
	}
	wantSum := review.SummaryDoc{Accounts: 1, Counts: review.Counts{Members: 6, Pending: 1, WithoutTwoFactor: 5, NotInGit: 3, OverdueGrants: 1}}
	if diff := cmp.Diff(wantSum, doc.Summary); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}

	// The same review in the other formats.
	code, out, errOut := e.run("review", "--repo", e.Repo)
	if code != ExitOK || !strings.HasPrefix(out, "<!-- cfaccess-review -->\n") || !strings.Contains(out, "⚠️ **review overdue**") {
		t.Errorf("markdown: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = e.run("review", "--repo", e.Repo, "--format", "csv")
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if code != ExitOK || err != nil || len(rows) != 1+7 {
		t.Errorf("csv: exit %d, %v, %d rows, want a header and 7\n%s", code, err, len(rows), out)
	}

	// validate shows the built-in guardrail's warning, offline.
	code, out, _ = e.run("validate", "--repo", e.Repo)
	want := "grants.yaml:2: warning: grant at grants.yaml:2 for alice@example.com, bob@example.com was due for review on 2026-10-01: confirm it is still needed and move review_after on, or remove the grant [cfaccess.builtin.review_after]"
	if code != ExitOK || !strings.Contains(out, want) {
		t.Errorf("validate: exit %d, want the review_after warning:\n%s", code, out)
	}
}

// An audit log the token may not read, one that fails, or one longer than
// the pages allowed: the members are still listed, and the account says
// why their last activity is unknown.
func TestReviewActivityUnknown(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		setup  func(e *reviewE2E)
		args   []string
		status string
		note   string
	}{
		{"forbidden", func(e *reviewE2E) {
			e.Fake.Fail(fake.Failure{Path: "/accounts/" + e.Fake.AccountID() + "/logs/audit", Status: 403})
		}, nil, "not_readable", "audit log not readable with this token (needs Account Settings Read): last activity unknown"},
		{"failing", func(e *reviewE2E) {
			e.Fake.Fail(fake.Failure{Path: "/accounts/" + e.Fake.AccountID() + "/logs/audit", Status: 400})
		}, nil, "unknown", "last activity unknown: read the audit log of account 023e105f4ecef8ad9ca31a8372d0c353: 400 Bad Request"},
		{"truncated", func(e *reviewE2E) {
			e.at(e.now.Add(-time.Hour))
			for range 1000 {
				e.Put("stranger@example.com", false, desired.Access{Role: "Firewall", Resource: testkit.WholeAccount})
			}
			e.at(e.now)
		}, []string{"--activity-max-pages", "1"}, "unknown",
			"last activity unknown: the audit log holds more than 1000 entries (or 64 MiB) in the window; raise --activity-max-pages or shorten --activity-window"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newReviewE2E(t)
			tc.setup(e)
			doc := e.review(ExitOK, tc.args...)
			a := doc.Accounts[0]
			if a.Activity.Status != tc.status || !strings.HasPrefix(a.Activity.Note, tc.note) {
				t.Errorf("activity %+v, want %s: %s", a.Activity, tc.status, tc.note)
			}
			if a.Summary.Members != 6 {
				t.Errorf("%d members listed, want 6", a.Summary.Members)
			}
			for _, m := range a.Members {
				if m.LastActivity != nil {
					t.Errorf("%s: last activity %+v, want unknown", m.Email, m.LastActivity)
				}
			}
		})
	}
}

func TestReviewRefusals(t *testing.T) {
	t.Parallel()
	e := newReviewE2E(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--format", "text"}, `--format "text": choose markdown, csv or json`},
		{[]string{"--provider", "staging"}, `--provider "staging" is not defined in the repository`},
		{[]string{"--activity-window", "ninety"}, `--activity-window "ninety": give a number of days (90d) or a positive duration (720h)`},
		{[]string{"--activity-max-pages", "0"}, "--activity-max-pages 0: give at least 1"},
	} {
		code, out, errOut := e.run(append([]string{"review", "--repo", e.Repo}, tc.args...)...)
		if code != ExitError || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, want 1 and %q\n%s%s", tc.args, code, tc.want, out, errOut)
		}
	}
	if w := e.Writes(); len(w) != 0 {
		t.Errorf("review wrote: %v", w)
	}
}

// A plain directory has no history: the review says grant ages are
// unknown, and shows the rest.
func TestReviewDirectoryWithoutGit(t *testing.T) {
	t.Parallel()
	e := newReviewE2E(t)
	dir := t.TempDir()
	for _, name := range []string{"providers.yaml", "roles.yaml", "grants.yaml"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(e.ReadFile(name)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	doc := e.review(ExitOK, "--repo", dir, "--activity-window", "720h")
	if doc.GrantAges != "the repository is not a Git checkout" || doc.Revision != "" {
		t.Errorf("grant ages %q, revision %q: want unknown, none", doc.GrantAges, doc.Revision)
	}
	if doc.ActivityWindowDays != 30 {
		t.Errorf("activity window %d days, want 30", doc.ActivityWindowDays)
	}
	if g := reviewMember(t, doc, "alice@example.com").Access[0].Grants[0]; g.Added != "" || !g.ReviewOverdue {
		t.Errorf("alice's grant %+v: want no age, overdue", g)
	}
}
