package testkit

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
)

// Token is the story's Cloudflare token (not a real one).
const Token = "e2e-token-0123456789abcdef"

// APIURL is the fake's address for the in-memory Transport: nothing
// listens there.
const APIURL = "http://cloudflare.test" + fake.BasePath

var (
	// Zone is zone:example.com, WholeAccount account:*.
	Zone         = desired.Resource{Kind: desired.ZoneName, Zone: "example.com"}
	WholeAccount = desired.Resource{Kind: desired.WholeAccount}
)

// Story is the end-to-end story: a real Git repository on disk declaring
// an account, and the fake account having drifted from it.
//
// The repository declares alice, bob, carol and pat (Domain DNS on
// example.com), dave (read only), erin (read only, expired
// 2026-11-24T00:00:00Z) and frank (read only from 2026-12-01); owner is
// protected and max_removals is 3. The account holds owner (Super
// Administrator), alice, Bob (another case), carol (with Billing too), pat
// (pending) and stranger (Firewall). Now is 2026-11-23T12:00:00Z.
type Story struct {
	T    testing.TB
	Fake *fake.Server
	Repo string
	Now  time.Time
	// Clock is the fake's clock, which stamps its audit log (nil: Now).
	Clock func() time.Time
}

// NewStory makes the story's repository and account.
func NewStory(t testing.TB) *Story {
	t.Helper()
	return NewStoryWith(t, fake.Options{Token: Token, AccountName: "Production"})
}

// NewStoryWith makes the story with an account of the given options.
func NewStoryWith(t testing.TB, opts fake.Options) *Story {
	t.Helper()
	e := &Story{T: t, Repo: t.TempDir(), Now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	if opts.Now == nil {
		opts.Now = func() time.Time {
			if e.Clock != nil {
				return e.Clock()
			}
			return e.Now
		}
	}
	s := fake.New(opts)
	e.Fake = s
	e.Git("init", "-q", "-b", "main")
	e.Commit("initial", map[string]string{
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
	dns := desired.Access{Role: "Domain DNS", Resource: Zone}
	e.Put("owner@example.com", false, desired.Access{Role: "Super Administrator - All Privileges", Resource: WholeAccount})
	e.Put("alice@example.com", false, dns)
	e.Put("Bob@Example.com", false, dns) // differs only in case: left alone
	e.Put("carol@example.com", false, dns, desired.Access{Role: "Billing", Resource: WholeAccount})
	e.Put("pat@example.com", true, dns) // pending counts as present
	e.Put("stranger@example.com", false, desired.Access{Role: "Firewall", Resource: WholeAccount})
	s.ResetRequests()
	return e
}

// Put adds or changes a member behind the reconciler's back.
func (e *Story) Put(email string, pending bool, access ...desired.Access) {
	e.T.Helper()
	if _, err := e.Fake.PutMember(fake.MemberSpec{Email: email, Pending: pending, Access: access}); err != nil {
		e.T.Fatal(err)
	}
}

// Transport reaches the fake in-process (at APIURL).
func (e *Story) Transport() http.RoundTripper { return Transport(e.Fake) }

// Serve serves the fake over TCP until the test ends and returns its API
// URL, for the tests of the real wiring.
func (e *Story) Serve() string {
	ts := httptest.NewServer(e.Fake)
	e.T.Cleanup(ts.Close)
	return ts.URL + fake.BasePath
}

// Getenv is the environment with the story's token, and the API at url.
func (e *Story) Getenv(url string) func(string) string {
	vars := map[string]string{"CLOUDFLARE_API_URL": url, "CLOUDFLARE_API_TOKEN": Token}
	return func(k string) string { return vars[k] }
}

// Git runs git in the repository, as Ada.
func (e *Story) Git(args ...string) {
	e.T.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = e.Repo
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com", "GIT_COMMITTER_NAME=Ada",
		"GIT_COMMITTER_EMAIL=ada@example.com", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		e.T.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// Commit writes files (creating directories) and commits them all.
func (e *Story) Commit(msg string, files map[string]string) {
	e.T.Helper()
	for name, content := range files {
		path := filepath.Join(e.Repo, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			e.T.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			e.T.Fatal(err)
		}
	}
	e.Git("add", "-A")
	e.Git("commit", "-q", "-m", msg)
}

// Head is the repository's head commit.
func (e *Story) Head() string {
	e.T.Helper()
	out, err := exec.Command("git", "-C", e.Repo, "rev-parse", "HEAD").Output()
	if err != nil {
		e.T.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// ReadFile reads a file of the repository.
func (e *Story) ReadFile(name string) string {
	e.T.Helper()
	b, err := os.ReadFile(filepath.Join(e.Repo, name))
	if err != nil {
		e.T.Fatal(err)
	}
	return string(b)
}

// Writes returns the requests that changed the account.
func (e *Story) Writes() []string {
	var out []string
	for _, r := range e.Fake.Requests() {
		if r.Method != "GET" {
			out = append(out, r.Method+" "+r.Path)
		}
	}
	return out
}

// Members maps each member's email to "status: access, access".
func (e *Story) Members() map[string]string {
	out := map[string]string{}
	for _, m := range e.Fake.Members() {
		var parts []string
		for _, a := range m.Access {
			parts = append(parts, a.String())
		}
		out[m.Email] = m.Status + ": " + strings.Join(parts, ", ")
	}
	return out
}

// HasMember reports whether email is a member.
func (e *Story) HasMember(email string) bool {
	_, ok := e.Members()[email]
	return ok
}
