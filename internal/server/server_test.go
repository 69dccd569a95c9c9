package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/daemon"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/gitsource"
	"github.com/cfaccess/reconciler/internal/metrics"
	"github.com/cfaccess/reconciler/internal/reconcile"
	"github.com/cfaccess/reconciler/internal/report"
	"github.com/cfaccess/reconciler/internal/server"
	"github.com/cfaccess/reconciler/internal/testkit"
)

const secret = "webhook-secret-0123456789"

// rig is a loop over the story's directory, and what the server needs
// of it. Inside a synctest bubble its clock starts at the story's Now.
type rig struct {
	loop *daemon.Loop
	reg  *prometheus.Registry
	m    *metrics.Metrics
	hook *gitsource.Webhook
}

func newDaemon(t *testing.T, story *testkit.Story, interval time.Duration) *rig {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, "test")
	start := time.Now()
	now := func() time.Time { return story.Now.Add(time.Since(start)) }
	loop := daemon.NewLoop(daemon.LoopConfig{
		Source: gitsource.Directory{Path: story.Repo},
		Planner: reconcile.NewPlanner(&cloudflare.Clients{BaseURL: testkit.APIURL, Getenv: story.Getenv(testkit.APIURL),
			RateLimit: 1200, Timeout: time.Minute, Transport: story.Transport()}, reconcile.NewState(now)),
		Interval: interval, TriggerGap: time.Second, Metrics: m, Log: slog.New(slog.DiscardHandler),
		Now:  now,
		Rand: rand.New(rand.NewPCG(1, 2)),
	})
	return &rig{loop: loop, reg: reg, m: m, hook: &gitsource.Webhook{Secret: []byte(secret), Trigger: loop.Poke}}
}

// withGrants replaces the rig's loop by one on the story's clock whose
// status lists the members with the grants behind them.
func withGrants(d *rig, story *testkit.Story) *rig {
	d.loop = daemon.NewLoop(daemon.LoopConfig{
		Source: gitsource.Directory{Path: story.Repo},
		Planner: reconcile.NewPlanner(&cloudflare.Clients{BaseURL: testkit.APIURL, Getenv: story.Getenv(testkit.APIURL),
			RateLimit: 1200, Timeout: time.Minute, Transport: story.Transport()}, reconcile.NewState(func() time.Time { return story.Now })),
		Plans:    reconcile.PlanOptions{Grants: true},
		Interval: time.Hour, TriggerGap: time.Second, Metrics: d.m, Log: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return story.Now }, Rand: rand.New(rand.NewPCG(1, 2)),
	})
	return d
}

// run runs the loop until the test ends.
func (d *rig) run(t *testing.T) { testkit.Background(t, d.loop.Run) }

// serve serves the daemon on an in-memory listener until the test ends.
func (d *rig) serve(t *testing.T) *testkit.PipeListener {
	ln := testkit.NewPipeListener()
	testkit.Background(t, server.New(d.config(false), ln, nil).Serve)
	return ln
}

func (d *rig) config(details bool) server.Config {
	return server.Config{Gatherer: d.reg, Board: d.loop.Board, Details: details, Webhook: d.hook}
}

// get requests path of h, as a browser on the same machine would (Host
// 127.0.0.1:9090) unless header gives a "Host".
func get(h http.Handler, method, path string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(`{"ref":"refs/heads/main"}`))
	req.Host = "127.0.0.1:9090"
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func signed(n int) []string {
	return []string{"X-GitHub-Event", "push", "X-GitHub-Delivery", fmt.Sprint("d-", n),
		"X-Hub-Signature-256", gitsource.SignGitHub([]byte(secret), []byte(`{"ref":"refs/heads/main"}`))}
}

// The endpoints, served in-process: health, readiness after the first
// good reconcile, status masked unless asked, metrics, and the webhooks
// only where mounted.
func TestEndpoints(t *testing.T) {
	t.Parallel()
	story := testkit.NewStory(t)
	d := newDaemon(t, story, time.Hour)
	h := server.Handler(d.config(false), true)
	if rec := get(h, "GET", "/healthz"); rec.Code != 200 || rec.Body.String() != "ok\n" {
		t.Errorf("/healthz: %d %q", rec.Code, rec.Body)
	}
	if rec := get(h, "GET", "/readyz"); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before a reconcile: %d", rec.Code)
	}
	if err := d.loop.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if rec := get(h, "GET", "/readyz"); rec.Code != 200 {
		t.Errorf("/readyz after a reconcile: %d", rec.Code)
	}
	status := get(h, "GET", "/status").Body.String()
	if strings.Contains(status, "@example.com") || strings.Contains(status, "Ada") || !strings.Contains(status, story.Head()) {
		t.Errorf("/status is not masked, or lacks the revision:\n%s", status)
	}
	if detailed := get(server.Handler(d.config(true), true), "GET", "/status").Body.String(); !strings.Contains(detailed, "ada@example.com") {
		t.Errorf("/status with details lacks the commit author:\n%s", detailed)
	}
	if m := get(h, "GET", "/metrics").Body.String(); !strings.Contains(m, `cfaccess_reconcile_total{account="prod",result="success"} 1`) {
		t.Errorf("/metrics:\n%s", m)
	}
	if rec := get(h, "POST", "/hooks/github", signed(1)...); rec.Code != http.StatusAccepted {
		t.Errorf("signed delivery: %d", rec.Code)
	}
	if rec := get(h, "POST", "/hooks/github", "X-Hub-Signature-256", gitsource.SignGitHub([]byte("wrong-secret-0123456"), []byte(`{"ref":"refs/heads/main"}`))); rec.Code != http.StatusUnauthorized {
		t.Errorf("wrongly signed delivery: %d", rec.Code)
	}
	// With a webhook port of its own, each side serves only its part.
	if rec := get(server.Handler(d.config(false), false), "POST", "/hooks/github", signed(2)...); rec.Code != http.StatusNotFound {
		t.Errorf("webhook on the main port: %d, want 404", rec.Code)
	}
	hooks := server.HookHandler(d.hook)
	for _, path := range []string{"/status", "/metrics", "/readyz", "/healthz"} {
		if rec := get(hooks, "GET", path); rec.Code != http.StatusNotFound {
			t.Errorf("%s on the webhook port: %d, want 404", path, rec.Code)
		}
	}
	if rec := get(hooks, "POST", "/hooks/github", signed(3)...); rec.Code != http.StatusAccepted {
		t.Errorf("webhook on the webhook port: %d", rec.Code)
	}
}

// Serve serves both listeners over HTTP and stops when its context ends.
func TestServeAndStop(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		d := newDaemon(t, testkit.NewStory(t), time.Hour)
		main, hooks := testkit.NewPipeListener(), testkit.NewPipeListener()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- server.New(d.config(false), main, hooks).Serve(ctx) }()
		for _, c := range []struct {
			ln   *testkit.PipeListener
			path string
			want int
		}{{main, "/healthz", 200}, {main, "/hooks/github", 404}, {hooks, "/healthz", 404}, {hooks, "/hooks/github", 405}} {
			client := c.ln.Client()
			res, err := client.Get("http://cfaccess" + c.path)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			client.CloseIdleConnections()
			if res.StatusCode != c.want {
				t.Errorf("%s: %d, want %d", c.path, res.StatusCode, c.want)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
}

// TestSlowClients: 1,000 connections that say nothing and 600 that send a
// webhook body a byte every 500 ms. The server closes them all within its
// limits, its heap stays small, and the loop meanwhile revokes a
// just-in-time grant on time. (Before the limits: 600 slow bodies held
// 728 MB, and idle connections were held for ever.)
func TestSlowClients(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		story := testkit.NewStory(t)
		d := newDaemon(t, story, time.Minute)
		expiry := story.Now.Add(8 * time.Second)
		story.Commit("jit", map[string]string{"jit.yaml": "grants:\n  - {users: [jit@example.com], roles: [ro], reason: INC-7, expires: " + expiry.Format(time.RFC3339) + "}\n"})
		d.run(t)
		ln := d.serve(t)
		synctest.Wait()
		if !story.HasMember("jit@example.com") {
			t.Fatal("jit not invited")
		}
		var open atomic.Int64
		var wg sync.WaitGroup
		watch := func(c net.Conn) {
			open.Add(1)
			wg.Go(func() {
				defer open.Add(-1)
				_, _ = io.Copy(io.Discard, c) // until the server closes it
				c.Close()
			})
		}
		for range 1000 {
			c, err := ln.Dial()
			if err != nil {
				t.Fatal(err)
			}
			watch(c)
		}
		sig := "sha256=" + strings.Repeat("0", 64)
		for i := range 600 {
			c, err := ln.Dial()
			if err != nil {
				t.Fatal(err)
			}
			watch(c)
			wg.Go(func() {
				fmt.Fprintf(c, "POST /hooks/github HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: %s\r\nX-GitHub-Delivery: slow-%d\r\nContent-Length: %d\r\n\r\n", sig, i, 1<<20)
				tick := time.NewTicker(500 * time.Millisecond)
				defer tick.Stop()
				for range tick.C {
					if _, err := c.Write([]byte("x")); err != nil {
						return // the server gave up on it
					}
				}
			})
		}
		var peak uint64
		for range 40 {
			testkit.Advance(500 * time.Millisecond)
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
		synctest.Wait()
		t.Logf("heap in use at most %d MB under 1,600 hostile connections; %d still open after 20 s", peak>>20, open.Load())
		if peak > 150<<20 {
			t.Errorf("heap in use reached %d MB, want under 150 MB", peak>>20)
		}
		if n := open.Load(); n != 0 {
			t.Errorf("%d connections still open after 20 s", n)
		}
		if story.HasMember("jit@example.com") {
			t.Error("the just-in-time grant was not revoked")
		}
		wg.Wait()
	})
}

// TestWebhookFlood: 1,000 signed deliveries a second for 10 s, over HTTP
// — what a replayed delivery or a misbehaving Git host could send — are
// all answered, coalesce into at most one reconcile per trigger gap (1 s),
// and the heap stays flat.
func TestWebhookFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 deliveries")
	}
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		story := testkit.NewStory(t)
		d := newDaemon(t, story, time.Hour)
		d.hook.Observe = func(host, result string) { d.m.WebhookDeliveries.WithLabelValues(host, result).Inc() }
		d.run(t)
		ln := d.serve(t)
		synctest.Wait()
		reconciles := func() float64 { return testutil.ToFloat64(d.m.ReconcileTotal.WithLabelValues("prod", "success")) }
		heap := func() uint64 {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			return ms.HeapAlloc
		}
		before := reconciles()
		client := ln.Client()
		body := `{"ref":"refs/heads/main"}`
		sig := gitsource.SignGitHub([]byte(secret), []byte(body))
		var sent, accepted atomic.Int64
		var wg sync.WaitGroup
		var heapAfter1s uint64
		for tick := range 625 { // 16 deliveries every 16 ms: 1,000 a second for 10 s
			if tick == 62 {
				heapAfter1s = heap()
			}
			for range 16 {
				n := sent.Add(1)
				wg.Go(func() {
					req, _ := http.NewRequest("POST", "http://cfaccess/hooks/github", strings.NewReader(body))
					req.Header.Set("X-GitHub-Event", "push")
					req.Header.Set("X-GitHub-Delivery", fmt.Sprint("flood-", n))
					req.Header.Set("X-Hub-Signature-256", sig)
					res, err := client.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode == http.StatusAccepted {
						accepted.Add(1)
					}
				})
			}
			testkit.Advance(16 * time.Millisecond)
		}
		wg.Wait()
		testkit.Advance(2 * time.Second) // the last coalesced reconcile
		got := reconciles() - before
		heapEnd := heap()
		t.Logf("%d deliveries in 10 s: %d accepted; %v reconciles; heap %d MB after 1 s, %d MB at the end",
			sent.Load(), accepted.Load(), got, heapAfter1s>>20, heapEnd>>20)
		if accepted.Load() != sent.Load() {
			t.Errorf("%d of %d deliveries accepted", accepted.Load(), sent.Load())
		}
		if got < 1 || got > 11 {
			t.Errorf("%v reconciles for 10 s of deliveries, want 1..11", got)
		}
		if heapEnd > heapAfter1s+16<<20 {
			t.Errorf("heap grew from %d MB to %d MB under load", heapAfter1s>>20, heapEnd>>20)
		}
		client.CloseIdleConnections()
	})
}

// /status lists access outside cfaccess's control — here through a user
// group it does not manage — with emails masked unless details are asked.
func TestStatusShowsAccessOutsideControl(t *testing.T) {
	t.Parallel()
	story := testkit.NewStory(t)
	if _, err := story.Fake.PutUserGroup(fake.UserGroupSpec{Name: "ops-admins", Members: []string{"alice@example.com"},
		Access: []desired.Access{{Role: "Administrator", Resource: testkit.WholeAccount}}}); err != nil {
		t.Fatal(err)
	}
	d := newDaemon(t, story, time.Hour)
	if err := d.loop.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	detailed := get(server.Handler(d.config(true), true), "GET", "/status").Body.String()
	if !strings.Contains(detailed, `"outside_control": [`) || !strings.Contains(detailed, "alice@example.com holds Administrator on account:* via user group ops-admins") {
		t.Errorf("/status with details:\n%s", detailed)
	}
	if masked := get(server.Handler(d.config(false), true), "GET", "/status").Body.String(); !strings.Contains(masked, "[email] holds Administrator on account:* via user group ops-admins") {
		t.Errorf("/status masked:\n%s", masked)
	}
}

// The status page lists who has access from which grant; without
// --status-details it holds no email, and /status lists members only when
// asked.
func TestStatusPageMasked(t *testing.T) {
	t.Parallel()
	story := testkit.NewStory(t)
	d := withGrants(newDaemon(t, story, time.Hour), story)
	if err := d.loop.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	detailed := get(server.Handler(d.config(true), true), "GET", "/").Body.String()
	if !strings.Contains(detailed, "<td>alice@example.com</td>") || !strings.Contains(detailed, "grants.yaml:2 — OPS-1 on-call") {
		t.Errorf("the page with details:\n%s", detailed)
	}
	masked := get(server.Handler(d.config(false), true), "GET", "/")
	if body := masked.Body.String(); strings.Contains(body, "@example.com") || !strings.Contains(body, "grants.yaml:2") {
		t.Errorf("the masked page shows an email, or lacks the grants:\n%s", body)
	}
	if csp := masked.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if st := get(server.Handler(d.config(true), true), "GET", "/status").Body.String(); strings.Contains(st, `"members"`) {
		t.Error("/status lists members without ?members=true")
	}
	if st := get(server.Handler(d.config(true), true), "GET", "/status?members=true").Body.String(); !strings.Contains(st, `"members"`) {
		t.Error("/status?members=true lists no members")
	}
}

// Masking leaves no email anywhere in the status, nor any part of one:
// reasons, grant files, expiry sources, drift, findings, recent changes,
// the changes made with cfaccess's credentials elsewhere.
func TestMaskedEverywhere(t *testing.T) {
	t.Parallel()
	st := daemon.Status{
		Accounts: []daemon.AccountStatus{{Account: "prod", Name: "ops@example.com's account",
			Members:  []daemon.MemberStatus{{Email: "o'brien@example.com", Access: []string{"DNS on account:* (via user group x@example.com)"}, Grants: []string{"people/bob@example.com.yaml:2"}, Reasons: []string{`asked by "carol smith"@example.com and dan!x@example.com`}}},
			Expiring: []daemon.ExpiryStatus{{Email: "a@example.com", Source: "people/bob@example.com.yaml:2"}},
			Drift:    []daemon.DriftStatus{{Email: "a@example.com", Actor: "m@example.com", Action: "Invite d@example.com", Group: "g@example.com"}},
			CredentialsElsewhere: []reconcile.CredentialUse{{Subject: "o'neil@example.com", Actor: "token x of owner@example.com", IP: "203.0.113.10",
				UserAgent: "curl (by mallory@example.com)"}},
		}},
		Violations: []check.Finding{{Source: "people/bob@example.com.yaml:2", Message: "e@example.com"}},
		Recent:     []daemon.RecentChange{{Email: "a@example.com", DriftActor: "m@example.com", Group: "g@example.com"}},
	}
	out, err := json.Marshal(server.Masked(st))
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{"@example.com", "o'", "brien", "carol", "smith", "dan!", "neil", "203.0.113.10"} {
		if strings.Contains(string(out), leak) {
			t.Errorf("%q in the masked status: %s", leak, out)
		}
	}
}

// The status cannot be read by another site: no frame may hold the page,
// and a request naming a host that is not an IP address, localhost or a
// --status-host (DNS rebinding: a page of evil.example pointing its name
// at this address) gets 421. Metrics and health answer any host.
func TestStatusRefusesForeignHosts(t *testing.T) {
	t.Parallel()
	story := testkit.NewStory(t)
	d := newDaemon(t, story, time.Hour)
	cfg := d.config(false)
	cfg.StatusHosts = []string{"cfaccess.ops.example.com"}
	h := server.Handler(cfg, true)
	for _, tc := range []struct {
		host string
		want int
	}{
		{"127.0.0.1:9090", 200}, {"[::1]:9090", 200}, {"10.0.3.7", 200}, {"localhost:9090", 200}, {"LocalHost", 200},
		{"cfaccess.ops.example.com:9090", 200}, {"CFACCESS.ops.example.com.", 200},
		{"evil.example:9090", 421}, {"evil.example", 421}, {"127.0.0.1.evil.example", 421}, {"", 421},
	} {
		for _, path := range []string{"/", "/status"} {
			if rec := get(h, "GET", path, "Host", tc.host); rec.Code != tc.want {
				t.Errorf("GET %s, Host %q: %d, want %d", path, tc.host, rec.Code, tc.want)
			}
		}
		for _, path := range []string{"/metrics", "/healthz"} {
			if rec := get(h, "GET", path, "Host", tc.host); rec.Code != 200 {
				t.Errorf("GET %s, Host %q: %d, want 200", path, tc.host, rec.Code)
			}
		}
	}
	page := get(h, "GET", "/")
	if csp := page.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || page.Header().Get("X-Frame-Options") != "DENY" {
		t.Errorf("the page may be framed: CSP %q, X-Frame-Options %q", csp, page.Header().Get("X-Frame-Options"))
	}
	if refused := get(h, "GET", "/status", "Host", "evil.example"); !strings.Contains(refused.Body.String(), "--status-host evil.example") {
		t.Errorf("the refusal does not say what to do: %s", refused.Body.String())
	}
}

// The page puts what just happened above who has access: the recent
// changes before the accounts, and in an account its failure with the
// instant it began (kept across failed reconciles, gone on success) and
// the drift corrected, before the member table.
func TestStatusPageWhatHappenedFirst(t *testing.T) {
	t.Parallel()
	story := testkit.NewStory(t)
	story.Fake.Fail(fake.Failure{Method: "DELETE", Path: "/accounts/*", Status: http.StatusInternalServerError})
	d := withGrants(newDaemon(t, story, time.Hour), story)
	first := story.Now
	for range 2 {
		if err := d.loop.RunOnce(t.Context()); err == nil {
			t.Fatal("a reconcile whose removal fails succeeded")
		}
		story.Now = story.Now.Add(time.Minute)
	}
	page := get(server.Handler(d.config(true), true), "GET", "/").Body.String()
	since := "failing since " + report.Instant(first)
	recent, account, drift, members := strings.Index(page, "<h2>Recent changes</h2>"), strings.Index(page, `<h2 id="account-prod">`),
		strings.Index(page, "<h3>Drift corrected</h3>"), strings.Index(page, "<h3>Who has access")
	if !strings.Contains(page, since) || recent < 0 || account < recent || drift < account || members < drift {
		t.Errorf("want %q, and recent changes < account < drift < members (%d %d %d %d):\n%s", since, recent, account, drift, members, page)
	}
	story.Fake.ClearFailures()
	if err := d.loop.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if page := get(server.Handler(d.config(true), true), "GET", "/").Body.String(); strings.Contains(page, "failing since") {
		t.Errorf("still failing after a success:\n%s", page)
	}
}
