package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/golden"
	"github.com/cfaccess/reconciler/internal/report"
	"github.com/cfaccess/reconciler/internal/testkit"
)

// TestReportGolden: two months of an account — applies of two revisions,
// changes made in the dashboard (reverted by cfaccess, one still
// present), an apply of uncommitted changes, an insider's forged
// additions and removals (cfaccess's User-Agent, her own token), and a
// write with cfaccess's token that its revision does not explain —
// reported in every format, with the time each change not approved
// stood.
func TestReportGolden(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	at := func(s string) time.Time { return mustTime(t, s) }
	apply := func(when string) { t.Helper(); e.applyAt(when, "--reinvite-after", "0") }
	first := e.Head()
	apply("2026-12-01T09:00:00Z")
	e.Fake.SetDashboardUser("mallory@example.com")
	e.now = at("2026-12-05T10:00:00Z")
	e.Put("intruder@example.com", false, desired.Access{Role: "Administrator", Resource: testkit.WholeAccount})
	apply("2026-12-05T12:30:00Z")
	e.Commit("add zoe", map[string]string{"zoe.yaml": "grants:\n  - {users: [zoe@example.com], roles: [ro], reason: OPS-9 new SRE}\n"})
	second := e.Head()
	apply("2026-12-20T09:00:00Z")
	e.now = at("2027-01-02T14:00:00Z")
	e.Put("alice@example.com", false, desired.Access{Role: "Domain DNS", Resource: testkit.Zone}, desired.Access{Role: "Billing", Resource: testkit.WholeAccount})
	apply("2027-01-03T14:00:00Z")
	// carol removed in the dashboard: cfaccess invites her again.
	e.now = at("2027-01-10T10:00:00Z")
	e.Fake.RemoveMember("carol@example.com")
	apply("2027-01-10T10:10:00Z")
	// An apply from a checkout with an uncommitted grant: cfaccess's
	// marker, but no approval; then the grant is gone again.
	sneak := filepath.Join(e.Repo, "sneak.yaml")
	if err := os.WriteFile(sneak, []byte("grants:\n  - {users: [sneak@example.com], roles: [ro], reason: none}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	apply("2027-01-15T10:00:00Z")
	if err := os.Remove(sneak); err != nil {
		t.Fatal(err)
	}
	apply("2027-01-15T12:00:00Z")
	// An insider with her own token claims to be cfaccess at $REV2: she
	// adds someone, and removes bob. Both are out of band.
	e.Fake.AddToken("insider-token-0123456789abcdef", "mallory@example.com", "mallory's token")
	insider := func(token string) testkit.Insider {
		return testkit.Insider{BaseURL: testkit.APIURL, AccountID: e.Fake.AccountID(), Token: token,
			UserAgent: "cfaccess/v0.1.0 (revision " + second + ")", Transport: e.Transport()}
	}
	e.now = at("2027-01-20T09:00:00Z")
	insider("insider-token-0123456789abcdef").Invite(t, "forged@example.com", "Administrator")
	apply("2027-01-20T10:00:00Z")
	e.now = at("2027-01-21T09:00:00Z")
	insider("insider-token-0123456789abcdef").Remove(t, "bob@example.com")
	apply("2027-01-21T09:30:00Z")
	// cfaccess's own token, making dave Administrator, which $REV2 does
	// not grant: unverified.
	e.now = at("2027-01-22T09:00:00Z")
	insider(testkit.Token).SetRole(t, "dave@example.com", "Administrator")
	apply("2027-01-22T10:00:00Z")
	e.now = at("2027-01-28T08:15:00Z")
	e.Put("late@example.com", false, desired.Access{Role: "Analytics", Resource: testkit.WholeAccount})
	e.now = at("2027-02-01T00:00:00Z")

	scrub := func(s string) string {
		for name, sha := range map[string]string{"$REV1": first, "$REV2": second} {
			s = strings.ReplaceAll(s, sha, name)
			s = strings.ReplaceAll(s, sha[:12], name)
		}
		return s
	}
	for _, format := range []string{"markdown", "json", "csv"} {
		code, out, errOut := e.run("report", "--repo", e.Repo, "--since", "2026-12-01", "--until", "2027-01-31", "--format", format)
		if code != ExitOK {
			t.Fatalf("report --format %s: exit %d\n%s", format, code, errOut)
		}
		golden.Compare(t, filepath.Join("testdata/golden", "report."+map[string]string{"markdown": "md", "json": "json", "csv": "csv"}[format]), scrub(out))
		if format != "json" {
			continue
		}
		var doc report.EvidenceDoc
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatal(err)
		}
		s := doc.Accounts[0].Summary
		if s.OutOfBand != 6 || s.Unverified != 2 || s.Corrected != 7 || s.StillPresent != 1 || s.MaxCorrectionSec != 86400 || s.MedianCorrectionSec != 3600 {
			t.Errorf("summary %+v: want 6 out of band, 2 unverified, 7 corrected (10m, 30m, 1h, 1h, 2h, 2h30m and 24h), 1 still present", s)
		}
		if a := doc.Accounts[0]; a.NoApproval != "" || !strings.Contains(a.Credentials, e.Fake.TokenID()) {
			t.Errorf("cfaccess's token: %q, no approval: %q", a.Credentials, a.NoApproval)
		}
		for _, c := range doc.Accounts[0].Changes {
			if c.Subject == "sneak@example.com" && c.Type == "create" && (c.Approval != "unverified" || !strings.Contains(c.Unapproved, "uncommitted")) {
				t.Errorf("an apply of uncommitted changes counts as approved: %+v", c)
			}
			if (c.Subject == "forged@example.com" && c.Type == "create" || c.Subject == "bob@example.com" && c.Type == "delete") &&
				(c.Approval != "out_of_band" || !strings.Contains(c.Unapproved, "another token made it") || c.Actor != "token mallory's token of mallory@example.com") {
				t.Errorf("a forged change is not out of band, named: %+v", c)
			}
			if c.Subject == "dave@example.com" && c.At.Equal(at("2027-01-22T09:00:00Z")) && (c.Approval != "unverified" ||
				!strings.Contains(c.Unapproved, "grants dave@example.com Administrator Read Only on account:*, not what was written: Administrator on account:*")) {
				t.Errorf("a write its revision does not explain: %+v", c)
			}
			if c.Subject == "carol@example.com" && c.Type == "delete" && (c.CorrectionSeconds == nil || *c.CorrectionSeconds != 600) {
				t.Errorf("carol's removal in the dashboard is not tied to her re-invitation 10 minutes later: %+v", c)
			}
			if c.Approval == "git" && c.Subject == "zoe@example.com" && (c.Revision != second || len(c.Grants) != 1 || !strings.Contains(c.Grants[0], "zoe.yaml:2 OPS-9")) {
				t.Errorf("zoe's invitation is not tied to its commit and grant: %+v", c)
			}
		}
	}
	if code, _, errOut := e.run("report", "--repo", e.Repo, "--since", "2027-02-01", "--until", "2027-01-01"); code != ExitError || !strings.Contains(errOut, "is not before") {
		t.Errorf("an empty period: exit %d %s", code, errOut)
	}
}

// With no way to learn cfaccess's token id — the report's token may not
// verify itself, and --cfaccess-token-id is not given — nothing is
// approved, the report says so before anything else, and exits 1; given
// the id, cfaccess's changes are approved again.
func TestReportWithoutCfaccessToken(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.now = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	if code, out, _ := e.run("apply", "--repo", e.Repo); code != ExitOK {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	e.now = time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	for _, path := range []string{"/user/tokens/verify", "/accounts/" + e.Fake.AccountID() + "/tokens/verify"} {
		e.Fake.Fail(fake.Failure{Path: path, Status: http.StatusForbidden})
	}
	code, out, _ := e.run("report", "--repo", e.Repo, "--since", "2026-12-01")
	head, _, _ := strings.Cut(out, "## prod")
	if code != ExitError || !strings.Contains(head, "**prod: nothing is marked approved through Git**: cfaccess's token id could not be learned from the token this report runs with") ||
		strings.Contains(out, "✅") || !strings.Contains(out, "| 6 | 0 | 6 | 0 |") {
		t.Errorf("exit %d, want 1, nothing approved, said first:\n%s", code, out)
	}
	code, out, _ = e.run("report", "--repo", e.Repo, "--since", "2026-12-01", "--cfaccess-token-id", e.Fake.TokenID())
	if code != ExitOK || !strings.Contains(out, "| 6 | 6 | 0 | 0 |") || !strings.Contains(out, "given by --cfaccess-token-id") {
		t.Errorf("with --cfaccess-token-id: exit %d\n%s", code, out)
	}
}

// A member added long before the period and removed through Git in it:
// the log's removal names the member by id only, and the report finds the
// email from the member's own entries, however old, to check and approve
// the removal (it used to be "unverified: the member's email is unknown").
func TestReportRemovalOfALongStandingMember(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.now = time.Date(2026, 7, 1, 9, 0, 0, 0, time.UTC)
	if code, out, _ := e.run("apply", "--repo", e.Repo); code != ExitOK {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	e.Commit("dave leaves", map[string]string{"grants.yaml": strings.Replace(e.ReadFile("grants.yaml"), "  - {users: [dave@example.com], roles: [ro], reason: SEC-2 audit}\n", "", 1)})
	e.now = time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	if code, out, _ := e.run("apply", "--repo", e.Repo); code != ExitOK || !strings.Contains(out, "remove dave@example.com") {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	e.now = time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	code, out, errOut := e.run("report", "--repo", e.Repo, "--since", "2026-12-01", "--format", "json")
	if code != ExitOK {
		t.Fatalf("report: exit %d %s", code, errOut)
	}
	var doc report.EvidenceDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range doc.Accounts[0].Changes {
		if c.Type == "delete" && c.Subject == "dave@example.com" {
			found = true
			if c.Approval != "git" {
				t.Errorf("dave's removal: %+v", c)
			}
		}
	}
	if !found {
		t.Errorf("no removal of dave@example.com by email:\n%s", out)
	}
}

// With a GitHub token, report names the pull request that merged each
// approved change's commit and who approved it (a test server of GitHub's
// REST API); a commit pushed directly, and one approved only by its own
// author, are "not reviewed", and the summary counts them. An approval of
// an earlier head of the pull request does not count.
func TestReportApprovals(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	at := func(s string) time.Time { return mustTime(t, s) }
	apply := func(when string) { t.Helper(); e.applyAt(when) }
	direct := e.Head()
	apply("2026-12-01T09:00:00Z")
	e.Commit("add zoe", map[string]string{"zoe.yaml": "grants:\n  - {users: [zoe@example.com], roles: [ro], reason: OPS-9 new SRE}\n"})
	reviewed := e.Head()
	apply("2026-12-02T09:00:00Z")
	e.Commit("add yan", map[string]string{"yan.yaml": "grants:\n  - {users: [yan@example.com], roles: [ro], reason: OPS-10}\n"})
	self := e.Head()
	apply("2026-12-03T09:00:00Z")
	// Break-glass during an outage: pushed to the branch, applied before
	// review, listed on its own.
	e.Commit("break-glass: INC-11", map[string]string{"bg.yaml": `roles:
  bg: {providers: [prod], inherits: [Administrator Read Only], resources: {allow: ["account:*"]}, break_glass: {max_duration: 1h}}
grants:
  - {users: [brk@example.com], roles: [bg], reason: INC-11 outage, break_glass: true, expires: 2026-12-04T09:30:00Z}
`})
	glass := e.Head()
	apply("2026-12-04T09:00:00Z")
	e.now = at("2026-12-10T00:00:00Z")

	type pr struct {
		number          int
		author, commits string
		reviews         string
	}
	prs := map[string]pr{
		// frank approved an earlier head of the pull request: the commits
		// pushed after that were not approved by him.
		reviewed: {12, "alice", "alice", `[{"user":{"login":"carol"},"state":"COMMENTED","commit_id":"head12"},{"user":{"login":"bob"},"state":"APPROVED","commit_id":"head12"},` +
			`{"user":{"login":"erin"},"state":"APPROVED","commit_id":"head12"},{"user":{"login":"erin"},"state":"CHANGES_REQUESTED","commit_id":"head12"},` +
			`{"user":{"login":"frank"},"state":"APPROVED","commit_id":"older12"}]`},
		self: {13, "dave", "dave", `[{"user":{"login":"dave"},"state":"APPROVED","commit_id":"head13"}]`},
	}
	var calls []string
	var mu sync.Mutex
	gh := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls = append(calls, r.URL.Path)
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer ghp_report" {
			http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		const base = "/api/v3/repos/example/access/"
		switch p := strings.TrimPrefix(r.URL.Path, base); {
		case strings.HasPrefix(p, "commits/") && strings.HasSuffix(p, "/pulls"):
			sha := strings.TrimSuffix(strings.TrimPrefix(p, "commits/"), "/pulls")
			x, ok := prs[sha]
			if !ok {
				_, _ = w.Write([]byte(`[]`))
				return
			}
			fmt.Fprintf(w, `[{"number":%d,"html_url":"https://github.com/example/access/pull/%d","user":{"login":%q},"merged_at":"2026-11-30T10:00:00Z","base":{"ref":"main"},"head":{"sha":"head%d"}}]`,
				x.number, x.number, x.author, x.number)
		case strings.HasPrefix(p, "commits/"):
			x := prs[strings.TrimPrefix(p, "commits/")]
			fmt.Fprintf(w, `{"sha":%q,"author":{"login":%q}}`, strings.TrimPrefix(p, "commits/"), x.commits)
		case strings.HasPrefix(p, "pulls/") && strings.HasSuffix(p, "/reviews"):
			for _, x := range prs {
				if p == fmt.Sprintf("pulls/%d/reviews", x.number) {
					_, _ = w.Write([]byte(x.reviews))
					return
				}
			}
			_, _ = w.Write([]byte(`[]`))
		default:
			http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
		}
	}))
	t.Cleanup(gh.Close)
	scrub := func(s string) string {
		for name, sha := range map[string]string{"$DIRECT": direct, "$REVIEWED": reviewed, "$SELF": self, "$GLASS": glass} {
			s = strings.ReplaceAll(s, sha, name)
			s = strings.ReplaceAll(s, sha[:12], name)
		}
		return s
	}
	for _, format := range []string{"markdown", "json", "csv"} {
		env := e.env("report", "--repo", e.Repo, "--since", "2026-12-01", "--until", "2026-12-05", "--format", format,
			"--github-api-url", gh.URL+"/api/v3/", "--github-repo", "example/access")
		getenv := env.Getenv
		env.Getenv = func(k string) string {
			if k == "GITHUB_TOKEN" {
				return "ghp_report"
			}
			return getenv(k)
		}
		var stdout, stderr strings.Builder
		env.Stdout, env.Stderr = &stdout, &stderr
		if code := Run(context.Background(), env); code != ExitOK {
			t.Fatalf("report --format %s: exit %d\n%s", format, code, stderr.String())
		}
		golden.Compare(t, filepath.Join("testdata/golden", "report-approvals."+map[string]string{"markdown": "md", "json": "json", "csv": "csv"}[format]), scrub(stdout.String()))
		if format != "json" {
			continue
		}
		var doc report.EvidenceDoc
		if err := json.Unmarshal([]byte(stdout.String()), &doc); err != nil {
			t.Fatal(err)
		}
		notReviewed := map[string]string{}
		for _, c := range doc.Accounts[0].Changes {
			if c.Approval != "git" {
				continue
			}
			switch c.Revision {
			case reviewed:
				if c.PullRequest == nil || c.PullRequest.Number != 12 || !slices.Equal(c.PullRequest.Approvers, []string{"bob"}) || c.NotReviewed != "" {
					t.Errorf("the reviewed change: %+v %+v", c, c.PullRequest)
				}
			case direct, self:
				notReviewed[c.Revision] = c.NotReviewed
			}
		}
		if !strings.Contains(notReviewed[direct], "pushed to the branch directly") || !strings.Contains(notReviewed[self], "no approving review by someone other than its authors") {
			t.Errorf("not reviewed: %q", notReviewed)
		}
		if n := doc.Accounts[0].Summary.NotReviewed; n == nil || *n < 2 {
			t.Errorf("summary not_reviewed %v", n)
		}
		if doc.Accounts[0].Summary.BreakGlass != 1 || !slices.ContainsFunc(doc.Accounts[0].Changes, func(c report.EvidenceChangeDoc) bool {
			return c.Subject == "brk@example.com" && c.BreakGlass && c.Revision == glass
		}) {
			t.Errorf("the break-glass change is not marked: %+v", doc.Accounts[0].Summary)
		}
	}
}

// mustTime parses a test's RFC 3339 instant.
func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// applyAt applies the story's repository at when, with extra flags.
func (e *e2e) applyAt(when string, extra ...string) {
	e.T.Helper()
	e.now = mustTime(e.T, when)
	if code, out, errOut := e.run(append([]string{"apply", "--repo", e.Repo}, extra...)...); code != ExitOK {
		e.T.Fatalf("apply at %s: exit %d\n%s%s", when, code, out, errOut)
	}
}
