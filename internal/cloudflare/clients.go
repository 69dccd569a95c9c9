package cloudflare

import (
	"net/http"
	"sync"
	"time"
)

// Clients makes the clients of one process, one per use: for the
// credentials an account's provider names, and the revision whose changes
// they write. Clients of the same credentials share a limiter
// (Cloudflare's budget is per user). Credentials are looked up at every
// call, so a rotated token file is picked up without a restart.
type Clients struct {
	// BaseURL of the API (DefaultBaseURL when "").
	BaseURL string
	// Getenv reads credentials from the environment.
	Getenv func(string) string
	// TokenFile, when set, holds the token (read at every call).
	TokenFile string
	// RateLimit is the requests per 5 minutes allowed per credentials.
	RateLimit int
	// MaxRetries of one request (0: none).
	MaxRetries int
	// Timeout of one request attempt.
	Timeout time.Duration
	// Transport carries the requests (http.DefaultTransport when nil):
	// tests reach the fake in-process through it.
	Transport http.RoundTripper
	// Observe is told of every request attempt (metrics).
	Observe func(method, endpoint, code string, d time.Duration)
	// UserAgent starts the User-Agent of every request (UserAgentPrefix +
	// "dev" when ""); the revision is appended.
	UserAgent string
	// WritesUntil fences the writes (Config.WritesUntil).
	WritesUntil func() time.Time

	mu       sync.Mutex
	limiters map[string]*Limiter
}

// For returns a client for the credentials an account's provider names
// (tokenEnv, "" for the global ones), stamping revision ("" for none) on
// the User-Agent; journal, when set, records its writes (Config.Journal).
func (cs *Clients) For(tokenEnv, revision string, journal *Journal) (*Client, Credentials, error) {
	getenv := cs.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	creds, err := findCredentials(getenv, tokenEnv, cs.TokenFile)
	if err != nil {
		return nil, creds, err
	}
	ua := cs.UserAgent
	if ua == "" {
		ua = UserAgentPrefix + "dev"
	}
	if revision != "" {
		ua += " (revision " + revision + ")"
	}
	retries := cs.MaxRetries
	if retries <= 0 {
		retries = -1 // the client's "none"
	}
	return New(Config{BaseURL: cs.BaseURL, Credentials: creds, Limiter: cs.limiter(creds), UserAgent: ua,
		HTTPClient: &http.Client{Timeout: cs.Timeout, Transport: cs.Transport},
		MaxRetries: retries, Observe: cs.Observe, Journal: journal, WritesUntil: cs.WritesUntil}), creds, nil
}

// limiter is the limiter of credentials, made on first use.
func (cs *Clients) limiter(creds Credentials) *Limiter {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.limiters == nil {
		cs.limiters = map[string]*Limiter{}
	}
	l, ok := cs.limiters[creds.Key()]
	if !ok {
		l = newLimiter(max(cs.RateLimit, 1), 5*time.Minute)
		cs.limiters[creds.Key()] = l
	}
	return l
}
