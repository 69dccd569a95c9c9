package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/gitsource"
)

// syncBuffer collects logs written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const webhookSecret = "webhook-secret-0123456789"

// daemonEnv runs the daemon in-process against the e2e story's Git
// repository (as a file:// URL) and fake account.
type daemonEnv struct {
	*e2e
	d    *daemon
	logs *syncBuffer
	base string
	stop func()
}

func startDaemon(t *testing.T, e *e2e, interval time.Duration, extra ...string) *daemonEnv {
	t.Helper()
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(webhookSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	envVars := map[string]string{"CLOUDFLARE_API_URL": e.url, "CLOUDFLARE_API_TOKEN": e2eToken}
	env := &Env{Getenv: func(k string) string { return envVars[k] }, Stdout: io.Discard, Stderr: logs, Now: e.clock}
	f := &runFlags{}
	cmd := newRunWith(env, f)
	args := append([]string{"--repo", "file://" + e.repo, "--listen", "127.0.0.1:0", "--interval", interval.String(), "--min-trigger-interval", "200ms",
		"--webhook-secret-file", secretFile, "--cloudflare-max-retries", "1"}, extra...)
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	d, err := newDaemon(f, env)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	<-d.listening
	de := &daemonEnv{e2e: e, d: d, logs: logs, base: "http://" + d.addr}
	var once sync.Once
	de.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("daemon: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("daemon did not stop within 30 s")
			}
		})
	}
	t.Cleanup(de.stop)
	return de
}

// eventually polls cond every 20 ms until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v", what, within)
	return 0
}

func (de *daemonEnv) get(path string) (int, string) {
	res, err := http.Get(de.base + path)
	if err != nil {
		de.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func (de *daemonEnv) hook(body, signature string) int {
	req, _ := http.NewRequest("POST", de.base+"/hooks/github", strings.NewReader(body))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("d-%d", time.Now().UnixNano()))
	if signature != "" {
		req.Header.Set("X-Hub-Signature-256", signature)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		de.t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func (de *daemonEnv) hasMember(email string) bool {
	_, ok := de.members()[email]
	return ok
}

func (de *daemonEnv) waitReady() {
	de.t.Helper()
	eventually(de.t, 5*time.Second, "ready", func() bool { code, _ := de.get("/readyz"); return code == 200 })
}

func (de *daemonEnv) status() statusDoc {
	_, body := de.get("/status")
	var st statusDoc
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		de.t.Fatalf("%v\n%s", err, body)
	}
	return st
}

func TestDaemonWebhookAppliesCommit(t *testing.T) {
	de := startDaemon(t, newE2E(t), time.Hour)
	de.waitReady()
	if !de.hasMember("dave@example.com") || de.hasMember("stranger@example.com") {
		t.Fatalf("first reconcile did not converge: %v", de.members())
	}
	de.commit("add zoe", map[string]string{"zoe.yaml": "grants:\n  - {users: [zoe@example.com], roles: [ro], reason: OPS-9}\n"})
	body := `{"ref":"refs/heads/main"}`
	if code := de.hook(body, ""); code != 401 {
		t.Errorf("unsigned delivery: %d, want 401", code)
	}
	if code := de.hook(body, gitsource.SignGitHub([]byte("wrong-secret"), []byte(body))); code != 401 {
		t.Errorf("wrongly signed delivery: %d, want 401", code)
	}
	time.Sleep(100 * time.Millisecond)
	if de.hasMember("zoe@example.com") {
		t.Fatal("applied without a valid delivery")
	}
	if code := de.hook(body, gitsource.SignGitHub([]byte(webhookSecret), []byte(body))); code != 202 {
		t.Fatalf("signed delivery: %d, want 202", code)
	}
	took := eventually(t, 2*time.Second, "zoe invited", func() bool { return de.hasMember("zoe@example.com") })
	t.Logf("applied %v after the webhook", took)
	if strings.Contains(de.logs.String(), e2eToken) {
		t.Error("the token appears in the logs")
	}
	// The audit record follows the change's read-back.
	eventually(t, 2*time.Second, "an audit record for zoe", func() bool {
		return strings.Contains(de.logs.String(), `"audit":true`) && strings.Contains(de.logs.String(), `"email":"zoe@example.com"`)
	})
}

func TestDaemonCorrectsDriftAndExpires(t *testing.T) {
	e := newE2E(t)
	expiry := e.clock().Add(2 * time.Second).UTC().Truncate(time.Second).Add(time.Second)
	e.commit("jit", map[string]string{"jit.yaml": "grants:\n  - {users: [jit@example.com], roles: [ro], reason: INC-7, expires: " + expiry.Format(time.RFC3339) + "}\n"})
	de := startDaemon(t, e, 400*time.Millisecond)
	de.waitReady()
	if !de.hasMember("jit@example.com") {
		t.Fatal("jit not invited")
	}
	// Someone adds a member in the dashboard: removed on the next interval.
	if _, err := de.fake.PutMember(fake.MemberSpec{Email: "sneaky@example.com", Access: []desired.Access{{Role: "Administrator", Resource: wholeAcct}}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "sneaky removed", func() bool { return !de.hasMember("sneaky@example.com") })
	// The JIT grant expires: revoked within 3 s of its instant, no commit.
	eventually(t, expiry.Sub(e.clock())+3*time.Second, "jit revoked", func() bool { return !de.hasMember("jit@example.com") })
	if late := e.clock().Sub(expiry); late > 3*time.Second || late < 0 {
		t.Errorf("revoked %v after expiry", late)
	}
}

func TestDaemonKeepsLastGoodRevision(t *testing.T) {
	e := newE2E(t)
	de := startDaemon(t, e, 300*time.Millisecond)
	de.waitReady()
	good := de.status().Revision.SHA
	de.commit("broken", map[string]string{"grants.yaml": "grants:\n  - {users: [nobody@], roles: [dns]\n"})
	body := `{}`
	de.hook(body, gitsource.SignGitHub([]byte(webhookSecret), []byte(body)))
	eventually(t, 2*time.Second, "bad revision reported", func() bool { return de.status().BadRevision != nil })
	st := de.status()
	if st.Revision == nil || st.Revision.SHA != good || st.BadRevision.Result != "invalid" || len(st.BadRevision.Findings) == 0 {
		t.Errorf("status = %+v", st)
	}
	// Drift correction goes on under the last good revision.
	if _, err := de.fake.PutMember(fake.MemberSpec{Email: "sneaky@example.com"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "sneaky removed under the last good revision", func() bool { return !de.hasMember("sneaky@example.com") })
	_, metrics := de.get("/metrics")
	if !strings.Contains(metrics, `cfaccess_source_fetch_total{result="invalid"}`) || !strings.Contains(metrics, `cfaccess_source_revision_info{revision="`+good+`"} 1`) {
		t.Errorf("metrics lack the bad fetch or the good revision")
	}
}

// TestMetricsScrape scrapes /metrics over HTTP, parses it with the
// Prometheus text parser, and checks the names and labels of SPEC §5 and
// that no label value holds an email.
func TestMetricsScrape(t *testing.T) {
	de := startDaemon(t, newE2E(t), time.Hour)
	de.waitReady()
	res, err := http.Get(de.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"cfaccess_reconcile_total":                     {"account", "result"},
		"cfaccess_reconcile_duration_seconds":          {"account"},
		"cfaccess_last_success_timestamp_seconds":      {"account"},
		"cfaccess_drift_members":                       {"account", "kind"},
		"cfaccess_changes_applied_total":               {"account", "action", "result"},
		"cfaccess_policy_violations":                   {"account", "severity"},
		"cfaccess_source_revision_info":                {"revision"},
		"cfaccess_source_fetch_total":                  {"result"},
		"cfaccess_cloudflare_requests_total":           {"code", "endpoint", "method"},
		"cfaccess_cloudflare_request_duration_seconds": {"endpoint"},
		"cfaccess_grants_expiring":                     {"account", "within"},
		"cfaccess_pending_invites":                     {"account"},
		"cfaccess_oldest_pending_invite_age_seconds":   {"account"},
		"cfaccess_removal_breaker_tripped":             {"account"},
		"cfaccess_build_info":                          {"goversion", "version"},
	}
	for name, labels := range want {
		fam, ok := families[name]
		if !ok || len(fam.GetMetric()) == 0 {
			t.Errorf("%s missing", name)
			continue
		}
		var got []string
		for _, l := range fam.GetMetric()[0].GetLabel() {
			got = append(got, l.GetName())
		}
		if strings.Join(got, ",") != strings.Join(labels, ",") {
			t.Errorf("%s labels %v, want %v", name, got, labels)
		}
	}
	for _, fam := range families {
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "@") {
					t.Errorf("%s has a label value with an email: %s=%q", fam.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
	if _, ok := families["go_goroutines"]; !ok {
		t.Error("no Go collector")
	}
	if v := families["cfaccess_changes_applied_total"]; v == nil {
		t.Error("no changes counted")
	}
}

// TestDaemonWatchesDirectoryAndRereadsTokenFile: a local directory is
// watched (no webhook, a long interval), and a token file fixed while the
// daemon runs is picked up.
func TestDaemonWatchesDirectoryAndRereadsTokenFile(t *testing.T) {
	e := newE2E(t)
	dir := t.TempDir()
	for _, name := range []string{"providers.yaml", "roles.yaml", "grants.yaml"} {
		data, err := os.ReadFile(filepath.Join(e.repo, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("wrong-token-value-xyz\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	envVars := map[string]string{"CLOUDFLARE_API_URL": e.url}
	env := &Env{Getenv: func(k string) string { return envVars[k] }, Stdout: io.Discard, Stderr: logs, Now: e.clock}
	f := &runFlags{}
	cmd := newRunWith(env, f)
	if err := cmd.ParseFlags([]string{"--repo", dir, "--listen", "127.0.0.1:0", "--interval", "1h",
		"--cloudflare-token-file", tokenFile, "--watch-debounce", "50ms", "--cloudflare-max-retries", "0"}); err != nil {
		t.Fatal(err)
	}
	d, err := newDaemon(f, env)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	<-d.listening
	de := &daemonEnv{e2e: e, d: d, logs: logs, base: "http://" + d.addr}
	eventually(t, 2*time.Second, "a failed first reconcile", func() bool {
		st := de.status()
		return len(st.Accounts) == 1 && st.Accounts[0].Result == "error"
	})
	if code, _ := de.get("/readyz"); code != 503 {
		t.Errorf("/readyz before any success: %d, want 503", code)
	}
	if err := os.WriteFile(tokenFile, []byte(e2eToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A change in the watched directory triggers the next reconcile, which
	// reads the fixed token.
	if err := os.WriteFile(filepath.Join(dir, "zoe.yaml"), []byte("grants:\n  - {users: [zoe@example.com], roles: [ro], reason: OPS-9}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "zoe invited after the directory changed", func() bool { return de.hasMember("zoe@example.com") })
	de.waitReady()
	if strings.Contains(logs.String(), "wrong-token-value") || strings.Contains(logs.String(), e2eToken) {
		t.Error("a token appears in the logs")
	}
	if st := de.status(); strings.Contains(fmt.Sprint(st), e2eToken) {
		t.Error("the token appears in /status")
	}
}

// TestDaemonStopsAtTheBreaker: a revision removing everyone is not applied
// by the daemon, ever; it reports the breaker and waits for a person.
func TestDaemonStopsAtTheBreaker(t *testing.T) {
	e := newE2E(t)
	de := startDaemon(t, e, 200*time.Millisecond)
	de.waitReady()
	before := len(de.members())
	de.commit("empty", map[string]string{"grants.yaml": "grants: []\n"})
	body := `{}`
	de.hook(body, gitsource.SignGitHub([]byte(webhookSecret), []byte(body)))
	eventually(t, 2*time.Second, "breaker reported", func() bool {
		st := de.status()
		return len(st.Accounts) == 1 && st.Accounts[0].Breaker != ""
	})
	time.Sleep(500 * time.Millisecond) // two more intervals
	if got := len(de.members()); got != before {
		t.Errorf("%d members, want %d: the daemon passed the breaker", got, before)
	}
	if _, m := de.get("/metrics"); !strings.Contains(m, `cfaccess_removal_breaker_tripped{account="prod"} 1`) {
		t.Error("breaker metric not set")
	}
}

func TestDaemonDryRunNeverWrites(t *testing.T) {
	e := newE2E(t)
	de := startDaemon(t, e, 100*time.Millisecond, "--dry-run")
	de.waitReady()
	time.Sleep(300 * time.Millisecond)
	if w := e.writes(); len(w) != 0 {
		t.Errorf("dry run wrote: %v", w)
	}
	st := de.status()
	if !st.DryRun || len(st.Accounts) != 1 || st.Accounts[0].Plan == nil || st.Accounts[0].Plan.Invite != 2 {
		t.Errorf("status = %+v", st)
	}
}
