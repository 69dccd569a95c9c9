package app

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/notify"
	"github.com/cfaccess/reconciler/internal/testkit"
)

// events is a notification receiver on loopback: the events it was sent,
// each checked against the secret.
type events struct {
	t      *testing.T
	secret []byte
	mu     sync.Mutex
	got    []receivedEvent
}

type receivedEvent struct {
	Type, Subject string
	Time          time.Time
	Data          map[string]any
}

func (ev *events) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if !notify.Verify(ev.secret, body, r.Header.Get(notify.SignatureHeader)) {
		ev.t.Errorf("an event whose signature does not verify: %s", body)
	}
	var e receivedEvent
	if err := json.Unmarshal(body, &e); err != nil {
		ev.t.Errorf("not an event: %s", body)
	}
	ev.mu.Lock()
	ev.got = append(ev.got, e)
	ev.mu.Unlock()
}

func (ev *events) find(typ string, match func(receivedEvent) bool) *receivedEvent {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	for i := range ev.got {
		if ev.got[i].Type == typ && (match == nil || match(ev.got[i])) {
			return &ev.got[i]
		}
	}
	return nil
}

// The daemon over the fake, with receivers on loopback: a dashboard change
// gives a drift event naming who made it; a break-glass grant an applied
// event, then an ended one at its expiry, on time; a refused revision an
// event. Events are signed. Beside them, a receiver that hangs and one
// that answers 500 slow nothing down, and the drops are counted.
func TestDaemonNotifications(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a grant to expire in real time")
	}
	t.Parallel()
	e := newE2E(t)
	secret := []byte("notify-secret-0123456789")
	secretFile := filepath.Join(t.TempDir(), "notify-secret")
	if err := os.WriteFile(secretFile, append(secret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	ev := &events{t: t, secret: secret}
	good := httptest.NewServer(ev)
	hang := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", 500) }))
	t.Cleanup(func() { close(hang); good.Close(); hanging.Close(); failing.Close() })

	d := startDaemon(t, e, "--webhook-listen", "127.0.0.1:0", "--notify-url", hanging.URL+","+failing.URL+","+good.URL,
		"--notify-secret-file", secretFile, "--notify-details")
	d.waitReady()

	// A dashboard change, corrected: the event names who made it.
	e.Fake.SetDashboardUser("mallory@example.com")
	e.Put("intruder@example.com", false, desired.Access{Role: "Administrator", Resource: testkit.WholeAccount})
	if code := d.hook(d.hooks, webhookSecret); code != http.StatusAccepted {
		t.Fatalf("signed delivery: %d", code)
	}
	eventually(t, 15*time.Second, "the drift event", func() bool {
		return ev.find(notify.DriftCorrected, func(r receivedEvent) bool { return r.Data["email"] == "intruder@example.com" }) != nil
	})
	drift := ev.find(notify.DriftCorrected, func(r receivedEvent) bool { return r.Data["email"] == "intruder@example.com" })
	if drift.Data["actor"] != "mallory@example.com" || drift.Data["context"] != "dash" || drift.Subject != "prod" {
		t.Errorf("the drift event: %+v", drift)
	}

	// A break-glass grant for 6 s: applied, then ended at its expiry.
	expires := e.Story.Clock().Add(6 * time.Second).Truncate(time.Second).Add(time.Second)
	e.Commit("break-glass for INC-9", map[string]string{"bg.yaml": `roles:
  bg: {providers: [prod], inherits: [Administrator Read Only], resources: {allow: ["account:*"]}, break_glass: {max_duration: 1h}}
grants:
  - {users: [zed@example.com], roles: [bg], reason: INC-9 outage, break_glass: true, expires: ` + expires.UTC().Format(time.RFC3339) + `}
`})
	if code := d.hook(d.hooks, webhookSecret); code != http.StatusAccepted {
		t.Fatalf("signed delivery: %d", code)
	}
	eventually(t, 15*time.Second, "the break-glass applied event", func() bool { return ev.find(notify.BreakGlassOn, nil) != nil })
	if on := ev.find(notify.BreakGlassOn, nil); on.Data["break_glass"] != true || !strings.Contains(on.Subject, "bg.yaml:4") {
		t.Errorf("the break-glass event: %+v", on)
	}
	if !strings.Contains(d.logs.String(), `"msg":"break-glass grant started: applied without review; review it after use"`) {
		t.Error("no WARN line for the break-glass grant")
	}
	eventually(t, 20*time.Second, "the break-glass ended event", func() bool { return ev.find(notify.BreakGlassOff, nil) != nil })
	if late := ev.find(notify.BreakGlassOff, nil).Time.Sub(expires); late < 0 || late > 2*time.Second {
		t.Errorf("break-glass ended %v after its expiry", late)
	}
	if e.HasMember("zed@example.com") {
		t.Error("zed still has access")
	}

	// A refused revision.
	e.Commit("a typo", map[string]string{"typo.yaml": "grants:\n  - {users: [x@example.com], roles: [nope], reason: r}\n"})
	if code := d.hook(d.hooks, webhookSecret); code != http.StatusAccepted {
		t.Fatalf("signed delivery: %d", code)
	}
	eventually(t, 15*time.Second, "the refused event", func() bool { return ev.find(notify.RevisionRefused, nil) != nil })
	if r := ev.find(notify.RevisionRefused, nil); r.Data["result"] != "invalid" || r.Subject != e.Head() {
		t.Errorf("the refused event: %+v", r)
	}

	// The failing receiver's events, dropped after their tries, counted.
	eventually(t, 20*time.Second, "drops counted", func() bool {
		_, metrics := d.get("/metrics")
		return strings.Contains(metrics, `cfaccess_notifications_dropped_total{reason="failed"}`) &&
			!strings.Contains(metrics, `cfaccess_notifications_dropped_total{reason="failed"} 0`)
	})
}
