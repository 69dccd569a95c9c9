package app

import (
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cfaccess/reconciler/internal/gitsource"
)

// TestSlowClients: 600 connections that send a webhook body a byte at a
// time and 1,000 that send nothing, for at most 20 s. The daemon's heap
// stays under 150 MB, it keeps reconciling, and a just-in-time grant
// expires on time meanwhile. (Before the limits: 600 slow bodies held
// 728 MB, and idle connections were held for ever.)
func TestSlowClients(t *testing.T) {
	if testing.Short() {
		t.Skip("20 s of slow connections")
	}
	e := newE2E(t)
	expiry := e.clock().Add(8 * time.Second).UTC().Truncate(time.Second).Add(time.Second)
	e.commit("jit", map[string]string{"jit.yaml": "grants:\n  - {users: [jit@example.com], roles: [ro], reason: INC-7, expires: " + expiry.Format(time.RFC3339) + "}\n"})
	de := startDaemon(t, e, time.Second)
	de.waitReady()
	if !de.hasMember("jit@example.com") {
		t.Fatal("jit not invited")
	}
	addr := strings.TrimPrefix(de.base, "http://")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Errorf("dial: %v", err)
			return nil
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		return c
	}
	for range 1000 {
		dial() // idle: connects, says nothing
	}
	sig := "sha256=" + strings.Repeat("0", 64)
	for i := range 600 {
		c := dial()
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			fmt.Fprintf(c, "POST /hooks/github HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: %s\r\nX-GitHub-Delivery: slow-%d\r\nContent-Length: %d\r\n\r\n", sig, i, 1<<20)
			t := time.NewTicker(500 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					if _, err := c.Write([]byte("x")); err != nil {
						return // the server gave up on it
					}
				}
			}
		}()
	}
	var peak uint64
	deadline := time.Now().Add(20 * time.Second)
	started := de.status().LastReconcile
	revoked := time.Time{}
	for time.Now().Before(deadline) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
		if revoked.IsZero() && !de.hasMember("jit@example.com") {
			revoked = e.clock()
		}
		if !revoked.IsZero() && e.clock().After(expiry.Add(2*time.Second)) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	mu.Lock()
	for _, c := range conns {
		c.Close()
	}
	mu.Unlock()
	wg.Wait()
	t.Logf("heap in use at most %d MB under 1,600 hostile connections", peak>>20)
	if peak > 150<<20 {
		t.Errorf("heap in use reached %d MB, want under 150 MB", peak>>20)
	}
	if revoked.IsZero() {
		t.Fatal("the just-in-time grant was not revoked")
	}
	if late := revoked.Sub(expiry); late > 3*time.Second {
		t.Errorf("revoked %v after its instant, want within 3 s", late)
	}
	if st := de.status(); !st.LastReconcile.After(started) {
		t.Errorf("no reconcile since the connections opened (last %v)", st.LastReconcile)
	}
}

// With --webhook-listen the webhooks have a port of their own and nothing
// else is served there; /status masks emails and commit authors unless
// --status-details.
func TestWebhookListenAndMaskedStatus(t *testing.T) {
	e := newE2E(t)
	de := startDaemon(t, e, time.Hour, "--webhook-listen", "127.0.0.1:0")
	de.waitReady()
	body := `{"ref":"refs/heads/main"}`
	sig := gitsource.SignGitHub([]byte(webhookSecret), []byte(body))
	post := func(base string) int {
		req, _ := http.NewRequest("POST", base+"/hooks/github", strings.NewReader(body))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", sig)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := post(de.base); code != http.StatusNotFound {
		t.Errorf("webhook on --listen: %d, want 404", code)
	}
	hooks := "http://" + de.d.hookAddr
	if code := post(hooks); code != http.StatusAccepted {
		t.Errorf("webhook on --webhook-listen: %d, want 202", code)
	}
	for _, path := range []string{"/status", "/metrics", "/readyz"} {
		res, err := http.Get(hooks + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("%s on the webhook port: %d, want 404", path, res.StatusCode)
		}
	}
	_, status := de.get("/status")
	if strings.Contains(status, "@example.com") || strings.Contains(status, "Ada") {
		t.Errorf("/status shows emails or authors:\n%s", status)
	}
	detailed := startDaemon(t, newE2E(t), time.Hour, "--status-details")
	detailed.waitReady()
	if _, status := detailed.get("/status"); !strings.Contains(status, "ada@example.com") {
		t.Errorf("/status --status-details lacks the commit author:\n%s", status)
	}
}
