package app

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/gitsource"
	"github.com/cfaccess/reconciler/internal/testkit"
)

// TestSecretsNeverShown runs every command that holds a credential — with
// the right token, a wrong one, an API key — and the daemon, and looks for
// the secrets (and their first 12 characters) in everything the program
// prints or serves: outputs of every format, errors, logs, /metrics,
// /status. /metrics carries no email either.
func TestSecretsNeverShown(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	const wrong = "wrong-token-Zq8sV1xY2wK3"
	secrets := []string{testkit.Token, wrong, webhookSecret}
	var seen strings.Builder
	record := func(what string, code int, out, errOut string) {
		seen.WriteString(out + errOut)
		if code == ExitOK && strings.Contains(what, "wrong") {
			t.Errorf("%s: exit 0 with a wrong token", what)
		}
	}
	for _, format := range []string{"text", "json", "markdown", "sarif"} {
		code, out, errOut := e.run("plan", "--repo", e.Repo, "--format", format)
		record("plan "+format, code, out, errOut)
	}
	code, out, errOut := e.run("apply", "--repo", e.Repo, "--format", "json")
	record("apply", code, out, errOut)
	code, out, errOut = e.run("members", "list", "--account-id", e.Fake.AccountID(), "--format", "json")
	record("members list", code, out, errOut)
	code, out, errOut = e.run("roles", "list", "--account-id", e.Fake.AccountID())
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
		env["CLOUDFLARE_API_URL"] = testkit.APIURL
		for _, args := range [][]string{
			{"plan", "--repo", e.Repo, "--format", "json"},
			{"apply", "--repo", e.Repo},
			{"members", "list", "--account-id", e.Fake.AccountID()},
		} {
			var stdout, stderr strings.Builder
			run := e.env(args...)
			run.Getenv, run.Stdout, run.Stderr = func(k string) string { return env[k] }, &stdout, &stderr
			code := Run(t.Context(), run)
			record(name+" "+args[0], code, stdout.String(), stderr.String())
		}
	}

	// The daemon: /metrics and /status after applying
	// a change announced by a webhook.
	// The real daemon over TCP (daemon_test.go): what it serves and logs.
	de := startDaemon(t, e)
	de.waitReady()
	de.Commit("zoe", map[string]string{"zoe.yaml": "grants:\n  - {users: [zoe@example.com], roles: [ro], reason: OPS-9}\n"})
	if code := de.hook(de.base, webhookSecret); code != http.StatusAccepted {
		t.Fatalf("webhook: %d", code)
	}
	eventually(t, 5*time.Second, "the audit record for zoe", func() bool {
		return de.HasMember("zoe@example.com") && strings.Contains(de.logs.String(), `"email":"zoe@example.com"`)
	})
	if _, err := de.Fake.PutMember(fake.MemberSpec{Email: "drift@example.com", Access: []desired.Access{{Role: "Billing", Resource: testkit.WholeAccount}}}); err != nil {
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
	t.Parallel()
	const token = "ghp_Secret0123456789abcdefTOKEN"
	for _, repo := range []string{
		"https://" + token + "@127.0.0.1:1/org/access.git",
		"https://x-access-token:" + token + "@127.0.0.1:1/org/access.git",
		"https://user:" + token + "%zz@127.0.0.1:99999/org/access.git",
		"https://127.0.0.1:1/org/access.git?private_token=" + token,
		"https://127.0.0.1:1/org/access.git?a=1;private_token=" + token,
		"https://127.0.0.1:1/org/access.git?" + token,
	} {
		t.Run(gitsource.Redact(repo), func(t *testing.T) {
			var seen strings.Builder
			var stdout, stderr strings.Builder
			Run(t.Context(), Env{Args: []string{"validate", "--repo", repo}, Getenv: func(string) string { return "" }, Stdout: &stdout, Stderr: &stderr, Now: time.Now})
			seen.WriteString(stdout.String() + stderr.String())

			// The daemon, on a host that refuses connections: its logs,
			// /status (masked and detailed) and /metrics after a fetch.
			for _, details := range []bool{false, true} {
				e := newE2E(t)
				args := []string{"--repo", repo}
				if details {
					args = append(args, "--status-details")
				}
				d := startDaemon(t, e, args...) // real TCP (daemon_test.go)
				eventually(t, 10*time.Second, "the source error", func() bool {
					_, status := d.get("/status")
					return strings.Contains(status, "source_error")
				})
				_, status := d.get("/status")
				_, metrics := d.get("/metrics")
				d.stop()
				seen.WriteString(status + metrics + d.logs.String())
			}
			if all := seen.String(); strings.Contains(all, token[:12]) || len(all) < 100 {
				i := max(0, strings.Index(all, token[:12]))
				t.Errorf("the token appears (or nothing ran): …%s…", all[max(0, i-100):min(len(all), i+60)])
			}
		})
	}
}
