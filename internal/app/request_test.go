package app

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/desired"
)

// requestRepo is a clone of an access repository with a bare origin.
type requestRepo struct {
	t            *testing.T
	work, remote string
}

func (r *requestRepo) git(dir string, args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_SYSTEM=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func newRequestRepo(t *testing.T) *requestRepo {
	t.Helper()
	root := t.TempDir()
	r := &requestRepo{t: t, work: filepath.Join(root, "work"), remote: filepath.Join(root, "remote.git")}
	r.git(root, "init", "-q", "--bare", "-b", "main", r.remote)
	r.git(root, "init", "-q", "-b", "main", r.work)
	for k, v := range map[string]string{"user.name": "Ada", "user.email": "ada@example.com", "commit.gpgsign": "false"} {
		r.git(r.work, "config", k, v)
	}
	files := map[string]string{
		"providers.yaml": "providers:\n  prod:\n    provider: cloudflare\n    config: {account_id: 023e105f4ecef8ad9ca31a8372d0c353}\n",
		"roles.yaml": `roles:
  dns: {providers: [prod], inherits: [Domain DNS], resources: {allow: ["zone:example.com"]}}
  oncall-admin:
    providers: [prod]
    inherits: [Administrator]
    resources: {allow: ["account:*"]}
    max_duration: 8h
    break_glass: {max_duration: 1h}
`,
		"grants.yaml": `grants:
  - {users: [bob@example.com], roles: [dns], reason: OPS-1 on-call}
  - {users: [carol@example.com], roles: [dns], reason: OPS-2}
# the end
`,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(r.work, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r.git(r.work, "add", ".")
	r.git(r.work, "commit", "-q", "-m", "initial")
	r.git(r.work, "remote", "add", "origin", r.remote)
	r.git(r.work, "push", "-q", "origin", "main")
	return r
}

func (r *requestRepo) run(env map[string]string, args ...string) (int, string, string) {
	r.t.Helper()
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), Env{Args: append([]string{"request", "--repo", r.work}, args...), Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string { return env[k] }, Now: func() time.Time { return time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC) }})
	return code, stdout.String(), stderr.String()
}

// grantsAt loads the repository as a revision of the remote holds it.
func (r *requestRepo) grantsAt(rev string) []*desired.Grant {
	r.t.Helper()
	var files []desired.File
	for _, name := range []string{"providers.yaml", "roles.yaml", "grants.yaml"} {
		files = append(files, desired.File{Path: name, Data: []byte(r.git(r.remote, "show", rev+":"+name) + "\n")})
	}
	repo, diags := check.Load(files, check.Options{})
	if repo == nil || len(diags.Errors()) > 0 {
		r.t.Fatalf("%s does not load: %v", rev, diags)
	}
	return repo.Grants
}

// A request is one grant on a branch of its own, pushed: in the file and
// style the repository uses, with its reason and an expiry of start + the
// duration, valid; the clone is back on its branch, clean. One past the
// role's max_duration is refused with nothing written, committed or
// pushed; one for a role without break-glass too.
func TestRequest(t *testing.T) {
	t.Parallel()
	r := newRequestRepo(t)
	code, out, errOut := r.run(nil, "--user", "Alice@Example.com", "--role", "oncall-admin", "--for", "4h", "--reason", `INC-4521 "db" failover`,
		"--now", "2026-12-05T09:00:00Z", "--push")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	branch := r.git(r.remote, "for-each-ref", "--format=%(refname:short)", "refs/heads/access/")
	if branch != "access/alice-oncall-admin-20261205-090000" {
		t.Fatalf("pushed branches %q\n%s", branch, out)
	}
	before, after := r.grantsAt("main"), r.grantsAt(branch)
	if len(after) != len(before)+1 {
		t.Fatalf("%d grants, then %d", len(before), len(after))
	}
	g := after[len(after)-1]
	want := time.Date(2026, 12, 5, 13, 0, 0, 0, time.UTC)
	if g.Users[0] != "alice@example.com" || g.Roles[0] != "oncall-admin" || g.Reason != `INC-4521 "db" failover` || g.Expires.Sub(want).Abs() > time.Minute || g.BreakGlass {
		t.Errorf("the new grant %+v", g)
	}
	diff := r.git(r.remote, "diff", "main", branch)
	if added := strings.Count(diff, "\n+  - {users: [alice@example.com], roles: [oncall-admin], reason: \"INC-4521 \\\"db\\\" failover\", expires: 2026-12-05T13:00:00Z}"); added != 1 ||
		strings.Count(diff, "\n+") != 2 || strings.Count(diff, "\n-") != 1 {
		t.Errorf("the branch's diff:\n%s", diff)
	}
	if !strings.Contains(r.git(r.work, "show", "-s", "--format=%B", branch), "Cfaccess-Request: alice@example.com oncall-admin until 2026-12-05T13:00:00Z") {
		t.Error("the commit message has no trailer")
	}
	if cur := r.git(r.work, "symbolic-ref", "--short", "HEAD"); cur != "main" || r.git(r.work, "status", "--porcelain") != "" {
		t.Errorf("the clone is on %s, status %q", cur, r.git(r.work, "status", "--porcelain"))
	}
	// The branch as pushed validates.
	clone := filepath.Join(t.TempDir(), "clone")
	r.git(filepath.Dir(clone), "clone", "-q", "-b", branch, r.remote, clone)
	if code, out, _ := (&requestRepo{t: t, work: clone}).runCmd("validate", "--repo", clone, "--now", "2026-12-05T09:00:00Z"); code != 0 {
		t.Errorf("the pushed branch does not validate: %d\n%s", code, out)
	}

	// Refused: longer than the role's max_duration; break-glass for a role
	// without it. Nothing written, no branch, nothing pushed.
	for _, args := range [][]string{
		{"--user", "dave@example.com", "--role", "oncall-admin", "--for", "12h", "--reason", "INC-2", "--push"},
		{"--user", "dave@example.com", "--role", "dns", "--for", "30m", "--reason", "INC-3", "--break-glass", "--push"},
	} {
		code, out, errOut := r.run(nil, append(args, "--now", "2026-12-05T09:00:00Z")...)
		if code != ExitError {
			t.Errorf("%v: exit %d\n%s\n%s", args, code, out, errOut)
		}
		if !strings.Contains(out, "grants.yaml:4: error") || !strings.Contains(errOut, "nothing was written") {
			t.Errorf("%v: no error at the grant's line:\n%s\n%s", args, out, errOut)
		}
		if refs := r.git(r.remote, "for-each-ref", "--format=%(refname:short)"); refs != "access/alice-oncall-admin-20261205-090000\nmain" {
			t.Errorf("%v: the remote has %q", args, refs)
		}
		if refs := r.git(r.work, "branch", "--format=%(refname:short)"); refs != "access/alice-oncall-admin-20261205-090000\nmain" ||
			r.git(r.work, "status", "--porcelain") != "" {
			t.Errorf("%v: the clone has branches %q, status %q", args, refs, r.git(r.work, "status", "--porcelain"))
		}
	}
}

func (r *requestRepo) runCmd(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), Env{Args: args, Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }})
	return code, stdout.String(), stderr.String()
}

// --open-pr pushes the branch and opens a pull request through GitHub's
// REST API (a test server of it), with the token, and prints its URL.
func TestRequestOpensPullRequest(t *testing.T) {
	t.Parallel()
	r := newRequestRepo(t)
	var got struct{ Title, Head, Base, Body, Auth string }
	gh := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/api/v3/repos/example/access/pulls" {
			http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
			return
		}
		_ = json.NewDecoder(req.Body).Decode(&got)
		got.Auth = req.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"number": 7, "html_url": "https://github.example.com/example/access/pull/7"}`))
	}))
	t.Cleanup(gh.Close)
	code, out, errOut := r.run(map[string]string{"GITHUB_TOKEN": "ghp_test"}, "--user", "alice@example.com", "--role", "oncall-admin", "--for", "2h",
		"--reason", "INC-7", "--open-pr", "--github-api-url", gh.URL+"/api/v3/", "--github-repo", "example/access")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "opened: https://github.example.com/example/access/pull/7") {
		t.Errorf("output:\n%s", out)
	}
	if got.Head != "access/alice-oncall-admin-20261205-090000" || got.Base != "main" || got.Auth != "Bearer ghp_test" ||
		!strings.Contains(got.Title, "oncall-admin for alice@example.com") || !strings.Contains(got.Body, "INC-7") {
		t.Errorf("the pull request asked for: %+v", got)
	}
	if r.git(r.remote, "for-each-ref", "--format=%(refname:short)", "refs/heads/access/") != got.Head {
		t.Error("the branch was not pushed")
	}
}

// --break-glass commits on the followed branch, marked for review after
// use, and pushes it there.
func TestRequestBreakGlass(t *testing.T) {
	t.Parallel()
	r := newRequestRepo(t)
	code, out, errOut := r.run(nil, "--user", "alice@example.com", "--role", "oncall-admin", "--for", "30m", "--reason", "INC-8 outage",
		"--break-glass", "--push", "--now", "2026-12-05T09:00:00Z")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	g := r.grantsAt("main")
	last := g[len(g)-1]
	if !last.BreakGlass || last.Expires != time.Date(2026, 12, 5, 9, 30, 0, 0, time.UTC) {
		t.Errorf("the grant on main: %+v", last)
	}
	if msg := r.git(r.remote, "show", "-s", "--format=%B", "main"); !strings.Contains(msg, "Cfaccess-Break-Glass: applied before review") {
		t.Errorf("the commit message:\n%s", msg)
	}
	// Longer than break_glass.max_duration: refused.
	if code, out, _ := r.run(nil, "--user", "bob@example.com", "--role", "oncall-admin", "--for", "2h", "--reason", "INC-9", "--break-glass", "--push",
		"--now", "2026-12-05T09:00:00Z"); code != ExitError || !strings.Contains(out, "break_glass.max_duration 1h") {
		t.Errorf("a 2h break-glass request: exit %d\n%s", code, out)
	}
}

// With origin on GitLab (or --gitlab-project), --open-pr opens a merge
// request through GitLab's API (a test server of it) with GITLAB_TOKEN.
func TestRequestOpensMergeRequest(t *testing.T) {
	t.Parallel()
	r := newRequestRepo(t)
	var got struct{ Title, SourceBranch, TargetBranch, Description, Token, Path string }
	gl := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		got.Path, got.Token = req.URL.EscapedPath(), req.Header.Get("Private-Token")
		var body struct {
			Title        string `json:"title"`
			SourceBranch string `json:"source_branch"`
			TargetBranch string `json:"target_branch"`
			Description  string `json:"description"`
		}
		_ = json.NewDecoder(req.Body).Decode(&body)
		got.Title, got.SourceBranch, got.TargetBranch, got.Description = body.Title, body.SourceBranch, body.TargetBranch, body.Description
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"iid": 3, "web_url": "https://gitlab.example.com/platform/access/-/merge_requests/3"}`))
	}))
	t.Cleanup(gl.Close)
	code, out, errOut := r.run(map[string]string{"GITLAB_TOKEN": "glpat-test"}, "--user", "alice@example.com", "--role", "oncall-admin", "--for", "2h",
		"--reason", "INC-7", "--open-pr", "--gitlab-url", gl.URL, "--gitlab-project", "platform/access")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "opened: https://gitlab.example.com/platform/access/-/merge_requests/3") {
		t.Errorf("output:\n%s", out)
	}
	if got.Path != "/api/v4/projects/platform%2Faccess/merge_requests" || got.Token != "glpat-test" || got.SourceBranch != "access/alice-oncall-admin-20261205-090000" ||
		got.TargetBranch != "main" || !strings.Contains(got.Description, "INC-7") {
		t.Errorf("the merge request asked for: %+v", got)
	}
}

// A reason cannot forge the commit's trailers (it is kept on one line in
// the message), nor break the YAML (it is quoted).
func TestRequestReasonIsData(t *testing.T) {
	t.Parallel()
	r := newRequestRepo(t)
	reason := "INC-1\n\nCfaccess-Break-Glass: applied before review\n}, roles: [dns"
	code, out, errOut := r.run(nil, "--user", "alice@example.com", "--role", "oncall-admin", "--for", "1h", "--reason", reason,
		"--now", "2026-12-05T09:00:00Z", "--push")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	branch := r.git(r.remote, "for-each-ref", "--format=%(refname:short)", "refs/heads/access/")
	if msg := r.git(r.remote, "show", "-s", "--format=%(trailers:key=Cfaccess-Break-Glass)", branch); msg != "" {
		t.Errorf("the reason forged a trailer: %q", msg)
	}
	g := r.grantsAt(branch)
	if last := g[len(g)-1]; last.Reason != reason || len(last.Roles) != 1 || last.Roles[0] != "oncall-admin" {
		t.Errorf("the grant: %+v", last)
	}
}
