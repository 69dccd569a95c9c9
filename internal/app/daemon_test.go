package app

// The daemon's wiring, end to end: `reconciler run` started as a user
// starts it — flags, logs, HTTP servers on real TCP ports, the Git fetch,
// fsnotify — against the fake (in-process). The loop's behaviour (expiry,
// intervals, backoff, refusals, stalls) is tested in internal/reconcile
// under testing/synctest; these few tests poll the wall clock
// (eventually), because the real sockets and file watches they exercise
// cannot run in a synctest bubble.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/gitsource"
	"github.com/cfaccess/reconciler/internal/report"
	"github.com/cfaccess/reconciler/internal/testkit"
)

const webhookSecret = "webhook-secret-0123456789"

// running is `reconciler run`, started in-process.
type running struct {
	*e2e
	t    *testing.T
	logs *testkit.Buffer
	// base and hooks are the URLs of --listen and --webhook-listen.
	base, hooks string
	stop        func()
}

// startDaemon runs the daemon over the story's repository (a file:// URL
// unless extra gives --repo), with a webhook secret, until the test ends.
func startDaemon(t *testing.T, e *e2e, extra ...string) *running {
	t.Helper()
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(webhookSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"run", "--repo", "file://" + e.Repo, "--listen", "127.0.0.1:0", "--interval", "1h",
		"--min-trigger-interval", "200ms", "--webhook-secret-file", secretFile, "--cloudflare-max-retries", "1"}, extra...)
	env := e.env(args...)
	logs := &testkit.Buffer{}
	env.Stderr = logs
	start, base := time.Now(), e.now
	env.Now = func() time.Time { return base.Add(time.Since(start)) }
	e.Story.Clock = env.Now // the fake's audit log keeps the daemon's time
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- Run(ctx, env) }()
	r := &running{e2e: e, t: t, logs: logs}
	stopped := false
	r.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case code := <-done:
			if code != ExitOK {
				t.Errorf("the daemon exited %d\n%s", code, logs.String())
			}
		case <-time.After(30 * time.Second):
			t.Error("the daemon did not stop within 30 s")
		}
	}
	t.Cleanup(r.stop)
	// The addresses come from the "started" record, as a user reads them.
	eventually(t, 10*time.Second, "the started record", func() bool {
		for line := range strings.Lines(logs.String()) {
			var rec struct {
				Msg, Listen   string
				WebhookListen string `json:"webhook_listen"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "started" {
				r.base, r.hooks = "http://"+rec.Listen, "http://"+rec.WebhookListen
				return true
			}
		}
		return false
	})
	return r
}

// eventually polls cond every 20 ms until it holds, or fails the test
// after within. Only for the real-TCP tests above.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); time.Since(start) < within; time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not within %v", what, within)
}

func (r *running) get(path string) (int, string) {
	r.t.Helper()
	res, err := http.Get(r.base + path)
	if err != nil {
		r.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// hook posts a push delivery to base, signed with secret ("" unsigned).
func (r *running) hook(base, secret string) int {
	r.t.Helper()
	body := `{"ref":"refs/heads/main"}`
	req, _ := http.NewRequest("POST", base+"/hooks/github", strings.NewReader(body))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("d-%d", time.Now().UnixNano()))
	if secret != "" {
		req.Header.Set("X-Hub-Signature-256", gitsource.SignGitHub([]byte(secret), []byte(body)))
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func (r *running) waitReady() {
	r.t.Helper()
	eventually(r.t, 10*time.Second, "ready", func() bool { code, _ := r.get("/readyz"); return code == 200 })
}

// TestDaemonEndToEnd: the daemon converges the account, applies a commit a
// signed webhook announces on --webhook-listen (and nothing the unsigned
// or misdirected ones do), writes an audit record, and serves /metrics
// (scraped and parsed with the Prometheus parser: the names and labels of
// the reference, no email) and a masked /status.
func TestDaemonEndToEnd(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	d := startDaemon(t, e, "--webhook-listen", "127.0.0.1:0")
	d.waitReady()
	if !e.HasMember("dave@example.com") || e.HasMember("stranger@example.com") {
		t.Fatalf("first reconcile did not converge: %v", e.Members())
	}
	e.Commit("add zoe", map[string]string{"zoe.yaml": "grants:\n  - {users: [zoe@example.com], roles: [ro], reason: OPS-9}\n"})
	if code := d.hook(d.hooks, ""); code != http.StatusUnauthorized {
		t.Errorf("unsigned delivery: %d, want 401", code)
	}
	if code := d.hook(d.hooks, "wrong-secret-0123456789"); code != http.StatusUnauthorized {
		t.Errorf("wrongly signed delivery: %d, want 401", code)
	}
	if code := d.hook(d.base, webhookSecret); code != http.StatusNotFound {
		t.Errorf("delivery to --listen: %d, want 404 (webhooks have their own port)", code)
	}
	if e.HasMember("zoe@example.com") {
		t.Fatal("applied without a valid delivery")
	}
	if code := d.hook(d.hooks, webhookSecret); code != http.StatusAccepted {
		t.Fatalf("signed delivery: %d, want 202", code)
	}
	eventually(t, 5*time.Second, "zoe invited, and audited", func() bool {
		return e.HasMember("zoe@example.com") && strings.Contains(d.logs.String(), `"email":"zoe@example.com"`)
	})
	if !strings.Contains(d.logs.String(), `"audit":true`) {
		t.Error("no audit record")
	}

	res, err := http.Get(d.base + "/metrics")
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
		"cfaccess_webhook_deliveries_total":            {"host", "result"},
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
	if _, status := d.get("/status"); strings.Contains(status, "@example.com") || strings.Contains(status, "Ada") || !strings.Contains(status, e.Head()) {
		t.Errorf("/status is not masked, or lacks the revision:\n%s", status)
	}
	if strings.Contains(d.logs.String(), testkit.Token) {
		t.Error("the token appears in the logs")
	}
}

// TestDaemonNamesWhoDrifted: a member added in the dashboard is removed
// by the next reconcile, and the plan, the audit record, /status and the
// metrics say who added it and how — from the account's audit log.
func TestDaemonNamesWhoDrifted(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	d := startDaemon(t, e, "--webhook-listen", "127.0.0.1:0", "--status-details")
	d.waitReady()
	e.Fake.SetDashboardUser("mallory@example.com")
	e.Put("intruder@example.com", false, desired.Access{Role: "Administrator", Resource: testkit.WholeAccount})

	e.now = e.Story.Clock().Add(time.Second)
	_, out, _ := e.run("plan", "--repo", e.Repo, "--format", "json")
	var drift *report.DriftDoc
	for _, a := range planJSONOf(t, out).Accounts {
		for _, c := range a.Changes {
			if c.Email == "intruder@example.com" && c.Action == "remove" {
				drift = c.Drift
			}
		}
	}
	if drift == nil || drift.Actor != "mallory@example.com" || drift.Context != "dash" || !strings.Contains(drift.Text, "added in the dashboard by mallory@example.com") {
		t.Fatalf("the JSON plan does not name who added intruder: %+v\n%s", drift, out)
	}

	if code := d.hook(d.hooks, webhookSecret); code != http.StatusAccepted {
		t.Fatalf("signed delivery: %d", code)
	}
	eventually(t, 10*time.Second, "intruder removed, and the audit record names mallory", func() bool {
		return !e.HasMember("intruder@example.com") && strings.Contains(d.logs.String(), `"drift_actor":"mallory@example.com"`)
	})
	if !strings.Contains(d.logs.String(), `"drift_context":"dash"`) {
		t.Error("the audit record lacks drift_context")
	}
	_, status := d.get("/status")
	var st struct {
		Accounts []struct {
			Drift []struct{ Email, Actor, Context, Change string }
		}
	}
	if err := json.Unmarshal([]byte(status), &st); err != nil || len(st.Accounts) != 1 || len(st.Accounts[0].Drift) != 1 ||
		st.Accounts[0].Drift[0].Actor != "mallory@example.com" || st.Accounts[0].Drift[0].Context != "dash" {
		t.Errorf("/status drift: %v\n%s", err, status)
	}
	res, err := http.Get(d.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	mp := expfmt.NewTextParser(model.UTF8Validation)
	families, err := mp.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range families["cfaccess_out_of_band_changes_total"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["account"] == "prod" && labels["actor_type"] == "user" && labels["context"] == "dash" && m.GetCounter().GetValue() >= 1 {
			found = true
		}
	}
	if !found {
		t.Errorf("no cfaccess_out_of_band_changes_total{account=prod,actor_type=user,context=dash}: %v", families["cfaccess_out_of_band_changes_total"])
	}
}

// TestDaemonWatchesDirectory: a local directory is watched (fsnotify): a
// new file is applied without a webhook, long before the interval.
func TestDaemonWatchesDirectory(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	dir := t.TempDir()
	for _, name := range []string{"providers.yaml", "roles.yaml", "grants.yaml"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(e.ReadFile(name)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d := startDaemon(t, e, "--repo", dir, "--watch-debounce", "50ms")
	d.waitReady()
	if err := os.WriteFile(filepath.Join(dir, "zoe.yaml"), []byte("grants:\n  - {users: [zoe@example.com], roles: [ro], reason: OPS-9}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "zoe invited after the directory changed", func() bool { return e.HasMember("zoe@example.com") })
}

// TestGuardrailSeesWhoDrifted: a repository's guardrail reads who made
// the drift a change corrects (input.plan.<account>.<action>[].drift),
// here to warn about changes made in the dashboard.
func TestGuardrailSeesWhoDrifted(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.Commit("drift guardrail", map[string]string{"policies/drift.rego": `package cfaccess.local.drift

warn contains {"msg": msg} if {
	some c in input.plan.prod.remove
	c.drift.context == "dash"
	msg := sprintf("%s was added in the dashboard by %s at %s", [c.email, c.drift.actor, c.drift.at])
}
`})
	e.Fake.SetDashboardUser("mallory@example.com")
	e.now = e.now.Add(time.Minute)
	e.Put("intruder@example.com", false, desired.Access{Role: "Administrator", Resource: testkit.WholeAccount})
	e.now = e.now.Add(time.Minute)
	_, out, errOut := e.run("plan", "--repo", e.Repo)
	if !strings.Contains(out+errOut, "intruder@example.com was added in the dashboard by mallory@example.com at 2026-11-23T12:01:00Z") {
		t.Errorf("the guardrail did not see who drifted:\n%s%s", out, errOut)
	}
}
