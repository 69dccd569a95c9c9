package gitsource

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// MaxWebhookBody is the largest webhook body read (1 MiB); larger ones are
// refused with 413.
const MaxWebhookBody = 1 << 20

// Limits of the webhook handlers: a body must arrive within BodyTimeout,
// and at most maxInFlight deliveries are read at once (more are answered
// 503 at once). Together with MaxWebhookBody they bound the memory that
// anyone who can reach the port can make the daemon hold.
const (
	BodyTimeout = 10 * time.Second
	maxInFlight = 32
)

// Webhook verifies Git host deliveries and triggers a fetch. Deliveries
// carry no data the reconciler trusts: a valid one only says "fetch now".
type Webhook struct {
	// Secret is the shared secret (from --webhook-secret-file).
	Secret []byte
	// Trigger is called for each accepted push delivery.
	Trigger func()
	// Observe, when set, is told of each delivery: host and result
	// (accepted, ignored, replayed, unauthorized, too_large, bad_method,
	// busy).
	Observe func(host, result string)

	mu       sync.Mutex
	seen     map[string]bool
	ring     []string
	inFlight chan struct{}
	once     sync.Once
}

// enter takes a place among the deliveries being read, or answers 503.
func (h *Webhook) enter(w http.ResponseWriter, host string) (leave func(), ok bool) {
	h.once.Do(func() { h.inFlight = make(chan struct{}, maxInFlight) })
	select {
	case h.inFlight <- struct{}{}:
		return func() { <-h.inFlight }, true
	default:
		h.observe(host, "busy")
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many deliveries at once", http.StatusServiceUnavailable)
		return nil, false
	}
}

// seenBefore remembers the last 1,024 delivery ids and reports a repeat.
func (h *Webhook) seenBefore(id string) bool {
	if id == "" {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen == nil {
		h.seen = map[string]bool{}
	}
	if h.seen[id] {
		return true
	}
	h.seen[id] = true
	h.ring = append(h.ring, id)
	if len(h.ring) > 1024 {
		delete(h.seen, h.ring[0])
		h.ring = h.ring[1:]
	}
	return false
}

func (h *Webhook) observe(host, result string) {
	if h.Observe != nil {
		h.Observe(host, result)
	}
}

// checkMethod answers anything but POST with 405.
func (h *Webhook) checkMethod(w http.ResponseWriter, r *http.Request, host string) bool {
	if r.Method != http.MethodPost {
		h.observe(host, "bad_method")
		w.Header().Set("Allow", "POST")
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return false
	}
	if r.ContentLength > MaxWebhookBody {
		h.observe(host, "too_large")
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return false
	}
	return true
}

// readBody reads at most MaxWebhookBody bytes within BodyTimeout; ok is
// false (and the answer written) when the body is larger, late or
// unreadable.
func (h *Webhook) readBody(w http.ResponseWriter, r *http.Request, host string) ([]byte, bool) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(BodyTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.observe(host, "too_large")
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return nil, false
		}
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return nil, false
	}
	return body, true
}

// GitHub serves POST /hooks/github: X-Hub-Signature-256 must be the
// HMAC-SHA256 of the body with the secret. A delivery without a
// well-formed signature is refused before its body is read.
func (h *Webhook) GitHub() http.Handler {
	return h.handler(delivery{
		host: "github", refusal: "signature missing or wrong",
		authorized: func(r *http.Request) bool {
			sig, ok := strings.CutPrefix(r.Header.Get("X-Hub-Signature-256"), "sha256=")
			return ok && len(sig) == 64
		},
		verified: func(r *http.Request, body []byte) bool {
			return VerifyGitHubSignature(h.Secret, body, r.Header.Get("X-Hub-Signature-256"))
		},
		id:   func(r *http.Request) string { return r.Header.Get("X-GitHub-Delivery") },
		push: func(r *http.Request) bool { return r.Header.Get("X-GitHub-Event") == "push" },
	})
}

// GitLab serves POST /hooks/gitlab: X-Gitlab-Token must equal the secret,
// checked before the body is read.
func (h *Webhook) GitLab() http.Handler {
	return h.handler(delivery{
		host: "gitlab", refusal: "token missing or wrong",
		authorized: func(r *http.Request) bool {
			token := r.Header.Get("X-Gitlab-Token")
			return len(h.Secret) > 0 && subtle.ConstantTimeCompare([]byte(token), h.Secret) == 1
		},
		verified: func(*http.Request, []byte) bool { return true },
		id:       func(r *http.Request) string { return r.Header.Get("X-Gitlab-Event-UUID") },
		push: func(r *http.Request) bool {
			event := r.Header.Get("X-Gitlab-Event")
			return event == "Push Hook" || event == "Tag Push Hook"
		},
	})
}

// delivery is how a Git host's deliveries are authenticated and read:
// authorized from the headers, before the body is read; verified with the
// body (refusal says why not); the delivery's id, and whether it
// announces a push.
type delivery struct {
	host, refusal string
	authorized    func(*http.Request) bool
	verified      func(*http.Request, []byte) bool
	id            func(*http.Request) string
	push          func(*http.Request) bool
}

func (h *Webhook) handler(d delivery) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.checkMethod(w, r, d.host) {
			return
		}
		unauthorized := func() {
			h.observe(d.host, "unauthorized")
			http.Error(w, d.refusal, http.StatusUnauthorized)
		}
		if !d.authorized(r) {
			unauthorized()
			return
		}
		leave, ok := h.enter(w, d.host)
		if !ok {
			return
		}
		defer leave()
		body, ok := h.readBody(w, r, d.host)
		if !ok {
			return
		}
		if !d.verified(r, body) {
			unauthorized()
			return
		}
		h.accept(w, d.host, d.id(r), d.push(r))
	})
}

func (h *Webhook) accept(w http.ResponseWriter, host, delivery string, push bool) {
	switch {
	case h.seenBefore(delivery):
		h.observe(host, "replayed")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "delivery already seen: ignored\n")
	case !push:
		h.observe(host, "ignored")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "not a push: ignored\n")
	default:
		h.observe(host, "accepted")
		if h.Trigger != nil {
			h.Trigger()
		}
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, "fetch scheduled\n")
	}
}

// VerifyGitHubSignature checks "sha256=<hex>" against the body's
// HMAC-SHA256 with secret, in constant time. An empty secret verifies
// nothing.
func VerifyGitHubSignature(secret, body []byte, header string) bool {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok || len(secret) == 0 {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// SignGitHub returns the X-Hub-Signature-256 value for body, for tests and
// for tools that forward deliveries.
func SignGitHub(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}
