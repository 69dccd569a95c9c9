package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// Event types, CloudEvents' "type".
const (
	DriftCorrected   = "io.cfaccess.drift.corrected"
	RevisionAccepted = "io.cfaccess.revision.accepted"
	RevisionRefused  = "io.cfaccess.revision.refused"
	GrantStarted     = "io.cfaccess.grant.started"
	GrantEnded       = "io.cfaccess.grant.ended"
	BreakGlassOn     = "io.cfaccess.breakglass.applied"
	BreakGlassOff    = "io.cfaccess.breakglass.ended"
	BreakerTripped   = "io.cfaccess.breaker.tripped"
	CredentialsUsed  = "io.cfaccess.credentials.used_elsewhere"
	LeaderChanged    = "io.cfaccess.leader.changed"
)

// Event is something the daemon did or saw, for people to hear of.
// Summary is one line for a chat message; Data the facts (strings,
// numbers, lists of them), never a credential.
type Event struct {
	Type    string
	Subject string // the account, or the revision
	Time    time.Time
	Summary string
	Data    map[string]any
}

// SignatureHeader carries sha256=<hex HMAC-SHA256 of the body> when a
// secret is set, as GitHub's X-Hub-Signature-256 does.
const SignatureHeader = "X-Cfaccess-Signature-256"

// Config configures a Notifier.
type Config struct {
	// URLs receive each event as a CloudEvents 1.0 structured-mode JSON
	// POST; SlackURL a Slack incoming-webhook message.
	URLs     []string
	SlackURL string
	// Secret, when set, signs each CloudEvents body (SignatureHeader).
	Secret []byte
	// Details keeps emails in events (--notify-details); they are
	// replaced by "[email]" otherwise.
	Details bool
	// Queue is how many events may wait (1,000); more are dropped.
	Queue int
	// Client carries the requests (10 s timeout when nil).
	Client *http.Client
	// Dropped is told of each event not delivered to a receiver: "queue"
	// (the queue was full) or "failed" (every try failed).
	Dropped func(reason string)
	Log     *slog.Logger
	// Source is the CloudEvents "source" (cfaccess/<identity>).
	Source string
	// Backoff is the first wait between tries (1 s), doubled each time.
	Backoff time.Duration
}

// Notifier delivers events in the background: Notify never blocks; each
// receiver has its own bounded queue, so a slow one delays no other, and
// each delivery is retried with backoff.
type Notifier struct {
	cfg   Config
	sinks []*sink
}

// sink is one receiver and its queue.
type sink struct {
	url   string
	slack bool
	queue chan Event
}

// New returns a notifier; Run delivers.
func New(cfg Config) *Notifier {
	if cfg.Queue <= 0 {
		cfg.Queue = 1000
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Dropped == nil {
		cfg.Dropped = func(string) {}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Source == "" {
		cfg.Source = "cfaccess"
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	n := &Notifier{cfg: cfg}
	for _, u := range cfg.URLs {
		n.sinks = append(n.sinks, &sink{url: u, queue: make(chan Event, cfg.Queue)})
	}
	if cfg.SlackURL != "" {
		n.sinks = append(n.sinks, &sink{url: cfg.SlackURL, slack: true, queue: make(chan Event, cfg.Queue)})
	}
	return n
}

// Notify queues an event for each receiver; a full queue drops it there
// (counted).
func (n *Notifier) Notify(e Event) {
	if n == nil {
		return
	}
	if !n.cfg.Details {
		e = masked(e)
	}
	for _, s := range n.sinks {
		select {
		case s.queue <- e:
		default:
			n.cfg.Dropped("queue")
		}
	}
}

// Run delivers queued events until ctx ends: each receiver's in order,
// one at a time.
func (n *Notifier) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range n.sinks {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case e := <-s.queue:
					n.deliver(ctx, s, e)
				}
			}
		})
	}
	wg.Wait()
}

// retries is how many times a delivery is tried, waiting Backoff, then
// twice as long, between tries.
const retries = 4

func (n *Notifier) deliver(ctx context.Context, s *sink, e Event) {
	if s.slack {
		body, _ := json.Marshal(map[string]string{"text": slackText(e)})
		n.send(ctx, s.url, body, "application/json", false)
		return
	}
	body, err := cloudEvent(e, n.cfg.Source)
	if err != nil {
		n.cfg.Log.Error("notification not encoded", "type", e.Type, "error", err)
		return
	}
	n.send(ctx, s.url, body, "application/cloudevents+json; charset=utf-8", true)
}

// send posts body to a receiver, retrying with backoff; a receiver that
// never takes it is a drop.
func (n *Notifier) send(ctx context.Context, to string, body []byte, contentType string, sign bool) {
	wait := n.cfg.Backoff
	for try := 1; ; try++ {
		err := n.post(ctx, to, body, contentType, sign)
		if err == nil {
			return
		}
		if try == retries || ctx.Err() != nil {
			n.cfg.Dropped("failed")
			n.cfg.Log.Warn("notification dropped", "receiver", redact(to), "tries", try, "error", err)
			return
		}
		select {
		case <-ctx.Done():
			n.cfg.Dropped("failed")
			return
		case <-time.After(wait):
		}
		wait *= 2
	}
}

func (n *Notifier) post(ctx context.Context, to string, body []byte, contentType string, sign bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, to, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	if sign && len(n.cfg.Secret) > 0 {
		mac := hmac.New(sha256.New, n.cfg.Secret)
		mac.Write(body)
		req.Header.Set(SignatureHeader, "sha256="+hex.EncodeToString(mac.Sum(nil)))
	}
	res, err := n.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("%s", strings.ReplaceAll(err.Error(), to, redact(to)))
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("answered %s", res.Status)
	}
	return nil
}

// Verify reports whether a signature header is the body's under secret.
func Verify(secret, body []byte, header string) bool {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal([]byte(header), []byte("sha256="+hex.EncodeToString(mac.Sum(nil))))
}

// cloudEvent is e in CloudEvents 1.0 structured mode (JSON).
func cloudEvent(e Event, source string) ([]byte, error) {
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	data := map[string]any{"summary": e.Summary}
	for k, v := range e.Data {
		data[k] = v
	}
	return json.Marshal(map[string]any{
		"specversion": "1.0", "id": hex.EncodeToString(id), "source": source, "type": e.Type,
		"subject": e.Subject, "time": e.Time.UTC().Format(time.RFC3339Nano), "datacontenttype": "application/json", "data": data,
	})
}

// slackText is the event as a Slack message: its summary, then its facts.
func slackText(e Event) string {
	var b strings.Builder
	b.WriteString("*cfaccess* " + escapeSlack(e.Summary))
	keys := make([]string, 0, len(e.Data))
	for k := range e.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "\n• %s: %s", k, escapeSlack(fmt.Sprint(e.Data[k])))
	}
	return b.String()
}

// escapeSlack escapes Slack's control characters (&, <, >): text from the
// repository or the audit log cannot make links or mentions.
func escapeSlack(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

var emailPattern = regexp.MustCompile(`[^\s@"'<>(),;:\[\]]+@[^\s@"'<>(),;:\[\]]+\.[A-Za-z]{2,}`)

// masked is e with every email replaced by "[email]".
func masked(e Event) Event {
	e.Summary = emailPattern.ReplaceAllString(e.Summary, "[email]")
	e.Subject = emailPattern.ReplaceAllString(e.Subject, "[email]")
	data := make(map[string]any, len(e.Data))
	for k, v := range e.Data {
		data[k] = maskValue(v)
	}
	e.Data = data
	return e
}

func maskValue(v any) any {
	switch x := v.(type) {
	case string:
		return emailPattern.ReplaceAllString(x, "[email]")
	case []string:
		out := make([]string, len(x))
		for i, s := range x {
			out[i] = emailPattern.ReplaceAllString(s, "[email]")
		}
		return out
	}
	return v
}

// redact keeps a receiver's scheme and host: its path or query may hold a
// token (Slack's webhook URLs do).
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(a receiver)"
	}
	return u.Scheme + "://" + u.Host + "/…"
}
