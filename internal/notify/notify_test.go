package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// receiver records what it is sent.
type receiver struct {
	mu     sync.Mutex
	bodies [][]byte
	sigs   []string
	types  []string
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.bodies = append(r.bodies, b)
	r.sigs = append(r.sigs, req.Header.Get(SignatureHeader))
	r.types = append(r.types, req.Header.Get("Content-Type"))
	r.mu.Unlock()
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("no %s within 10 s", what)
		}
	}
}

// Events reach a good receiver as signed CloudEvents (the signature
// verifies with the secret, not with another) with emails masked, and a
// Slack message with its facts; a receiver that answers 500 is retried
// then counted as a drop, one that hangs delays no other receiver, and
// Notify never blocks: a full queue is a drop.
func TestDelivery(t *testing.T) {
	t.Parallel()
	good, slack := &receiver{}, &receiver{}
	goodSrv, slackSrv := httptest.NewServer(good), httptest.NewServer(slack)
	var fails atomic.Int32
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fails.Add(1)
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	hang := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(hang); goodSrv.Close(); slackSrv.Close(); failing.Close(); hanging.Close() })
	var mu sync.Mutex
	drops := map[string]int{}
	n := New(Config{URLs: []string{hanging.URL, failing.URL, goodSrv.URL}, SlackURL: slackSrv.URL, Secret: []byte("notify-secret-0123456789"),
		Queue: 4, Backoff: 10 * time.Millisecond, Client: &http.Client{Timeout: 30 * time.Second},
		Dropped: func(r string) { mu.Lock(); drops[r]++; mu.Unlock() }})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	start := time.Now()
	for i := range 6 {
		n.Notify(Event{Type: DriftCorrected, Subject: "prod", Time: time.Date(2026, 12, 5, 9, 0, i, 0, time.UTC),
			Summary: "prod: drift corrected (remove mallory@evil.example), made by admin@example.com (dash)",
			Data:    map[string]any{"email": "mallory@evil.example", "actor": "admin@example.com", "context": "dash", "emails": []string{"a@example.com"}}})
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Notify blocked %v", d)
	}
	waitFor(t, "delivery to the good receiver and Slack", func() bool { return good.count() >= 4 && slack.count() >= 4 })
	waitFor(t, "the failing receiver's drops", func() bool { mu.Lock(); defer mu.Unlock(); return drops["failed"] >= 1 })
	if fails.Load() < retries {
		t.Errorf("the failing receiver was tried %d times", fails.Load())
	}
	good.mu.Lock()
	defer good.mu.Unlock()
	var ev struct {
		SpecVersion, Type, Subject, Source, ID, Time string
		Data                                         map[string]any
	}
	if err := json.Unmarshal(good.bodies[0], &ev); err != nil {
		t.Fatal(err)
	}
	if ev.SpecVersion != "1.0" || ev.Type != DriftCorrected || ev.ID == "" || ev.Source != "cfaccess" || ev.Time != "2026-12-05T09:00:00Z" ||
		!strings.HasPrefix(good.types[0], "application/cloudevents+json") {
		t.Errorf("the event: %s (%s)", good.bodies[0], good.types[0])
	}
	if strings.Contains(string(good.bodies[0]), "@") || ev.Data["actor"] != "[email]" || ev.Data["context"] != "dash" {
		t.Errorf("emails not masked: %s", good.bodies[0])
	}
	if !Verify([]byte("notify-secret-0123456789"), good.bodies[0], good.sigs[0]) || Verify([]byte("another-secret-0123456789"), good.bodies[0], good.sigs[0]) {
		t.Errorf("the signature %q does not verify", good.sigs[0])
	}
	slack.mu.Lock()
	defer slack.mu.Unlock()
	if !strings.Contains(string(slack.bodies[0]), "drift corrected") || slack.sigs[0] != "" {
		t.Errorf("the Slack message: %s", slack.bodies[0])
	}
	mu.Lock()
	defer mu.Unlock()
	if drops["queue"] == 0 {
		t.Errorf("6 events for queues of 4 behind a hanging receiver: no queue drop counted (%v)", drops)
	}
}

// Repository and audit-log text cannot make links or mentions in Slack.
func TestSlackEscapes(t *testing.T) {
	t.Parallel()
	got := slackText(Event{Summary: "<!channel> & <https://evil.example|x>", Data: map[string]any{"reason": "<@U123>"}})
	if strings.ContainsAny(strings.TrimPrefix(got, "*cfaccess* "), "<>") {
		t.Errorf("%q", got)
	}
}
