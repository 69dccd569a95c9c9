package app

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/gitsource"
)

// TestSecretsNeverShown runs every command that holds a credential — with
// the right token, a wrong one, an API key — and the daemon, and looks for
// the secrets (and their first 12 characters) in everything the program
// prints or serves: outputs of every format, errors, logs, /metrics,
// /status. /metrics carries no email either.
func TestSecretsNeverShown(t *testing.T) {
	e := newE2E(t)
	const wrong = "wrong-token-Zq8sV1xY2wK3"
	secrets := []string{e2eToken, wrong, webhookSecret}
	var seen strings.Builder
	record := func(what string, code int, out, errOut string) {
		seen.WriteString(out + errOut)
		if code == ExitOK && strings.Contains(what, "wrong") {
			t.Errorf("%s: exit 0 with a wrong token", what)
		}
	}
	for _, format := range []string{"text", "json", "markdown", "sarif"} {
		code, out, errOut := e.run("plan", "--repo", e.repo, "--format", format)
		record("plan "+format, code, out, errOut)
	}
	code, out, errOut := e.run("apply", "--repo", e.repo, "--format", "json")
	record("apply", code, out, errOut)
	code, out, errOut = e.run("members", "list", "--account-id", e.fake.AccountID(), "--format", "json")
	record("members list", code, out, errOut)
	code, out, errOut = e.run("roles", "list", "--account-id", e.fake.AccountID())
	record("roles list", code, out, errOut)

	// A wrong token from each source: environment, file, API key.
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(wrong+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, env := range map[string]map[string]string{
		"wrong env token":  {"CLOUDFLARE_API_TOKEN": wrong},
		"wrong token file": {"CFACCESS_CLOUDFLARE_TOKEN_FILE": tokenFile},
		"wrong api key":    {"CLOUDFLARE_API_KEY": wrong, "CLOUDFLARE_EMAIL": "ops@example.com"},
	} {
		env["CLOUDFLARE_API_URL"] = e.url
		for _, args := range [][]string{
			{"plan", "--repo", e.repo, "--format", "json"},
			{"apply", "--repo", e.repo},
			{"members", "list", "--account-id", e.fake.AccountID()},
		} {
			var stdout, stderr strings.Builder
			code := Run(t.Context(), Env{Args: args, Getenv: func(k string) string { return env[k] }, Stdout: &stdout, Stderr: &stderr, Now: func() time.Time { return e.now }})
			record(name+" "+args[0], code, stdout.String(), stderr.String())
		}
	}

	// The daemon: /metrics and /status after applying
	// a change announced by a webhook.
	de := startDaemon(t, e, time.Hour)
	de.waitReady()
	de.commit("zoe", map[string]string{"zoe.yaml": "grants:\n  - {users: [zoe@example.com], roles: [ro], reason: OPS-9}\n"})
	body := `{"ref":"refs/heads/main"}`
	if code := de.hook(body, gitsource.SignGitHub([]byte(webhookSecret), []byte(body))); code != http.StatusAccepted {
		t.Fatalf("webhook: %d", code)
	}
	eventually(t, 3*time.Second, "zoe invited", func() bool { return de.hasMember("zoe@example.com") })
	eventually(t, 3*time.Second, "the audit record for zoe", func() bool { return strings.Contains(de.logs.String(), `"email":"zoe@example.com"`) })
	if _, err := de.fake.PutMember(fake.MemberSpec{Email: "drift@example.com", Access: []desired.Access{{Role: "Billing", Resource: wholeAcct}}}); err != nil {
		t.Fatal(err)
	}
	_, metricsText := de.get("/metrics")
	_, status := de.get("/status")
	seen.WriteString(de.logs.String() + metricsText + status)
	for _, path := range []string{"/healthz", "/readyz", "/nothing"} {
		res, err := http.Get(de.base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		seen.WriteString(string(b))
	}

	all := seen.String()
	if len(all) < 5000 {
		t.Fatalf("only %d bytes of output: the commands did not run", len(all))
	}
	for _, secret := range secrets {
		if strings.Contains(all, secret[:12]) {
			i := strings.Index(all, secret[:12])
			t.Errorf("a secret appears: …%s…", all[max(0, i-80):min(len(all), i+40)])
		}
	}
	if !strings.Contains(de.logs.String(), "zoe@example.com") {
		t.Error("the audit log lacks the change (is the log captured?)")
	}
	if strings.Contains(metricsText, "@") {
		for line := range strings.SplitSeq(metricsText, "\n") {
			if strings.Contains(line, "@") {
				t.Errorf("an email on /metrics: %s", line)
			}
		}
	}
}

// TestRepoURLCredentialsNeverShown: a token written into the repository
// URL (GitHub's https://TOKEN@github.com/… form), and a malformed URL
// holding one, appear in no log, /status, metric or error — for the daemon
// on a host that refuses connections, and for validate.
func TestRepoURLCredentialsNeverShown(t *testing.T) {
	const token = "ghp_Secret0123456789abcdefTOKEN"
	for _, repo := range []string{
		"https://" + token + "@127.0.0.1:1/org/access.git",
		"https://x-access-token:" + token + "@127.0.0.1:1/org/access.git",
		"https://user:" + token + "%zz@127.0.0.1:99999/org/access.git",
	} {
		t.Run(gitsource.Redact(repo), func(t *testing.T) {
			var seen strings.Builder
			var stdout, stderr strings.Builder
			Run(t.Context(), Env{Args: []string{"validate", "--repo", repo}, Getenv: func(string) string { return "" }, Stdout: &stdout, Stderr: &stderr, Now: time.Now})
			seen.WriteString(stdout.String() + stderr.String())

			logs := &syncBuffer{}
			env := &Env{Getenv: func(string) string { return "" }, Stdout: io.Discard, Stderr: logs, Now: time.Now}
			f := &runFlags{}
			cmd := newRunWith(env, f)
			if err := cmd.ParseFlags([]string{"--repo", repo, "--listen", "127.0.0.1:0", "--interval", "1h"}); err != nil {
				t.Fatal(err)
			}
			d, err := newDaemon(f, env)
			if err != nil {
				seen.WriteString(err.Error())
			} else {
				d.reconcileOnce(t.Context())
				d.mu.Lock()
				doc := d.status
				d.mu.Unlock()
				for _, details := range []bool{false, true} {
					d.f.statusDetails = details
					rec := httptest.NewRecorder()
					d.mux(true).ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
					seen.WriteString(rec.Body.String())
					rec = httptest.NewRecorder()
					d.mux(true).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
					seen.WriteString(rec.Body.String())
				}
				if doc.SourceError == "" {
					t.Error("no source error recorded: did the fetch run?")
				}
			}
			seen.WriteString(logs.String())
			if all := seen.String(); strings.Contains(all, token[:12]) || len(all) < 100 {
				i := max(0, strings.Index(all, token[:12]))
				t.Errorf("the token appears (or nothing ran): …%s…", all[max(0, i-100):min(len(all), i+60)])
			}
		})
	}
}
