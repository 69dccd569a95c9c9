package doctor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Exchange is one request the doctor sent and the answer it got. No
// request header is kept: the credentials travel there.
type Exchange struct {
	Method string `json:"method"`
	// Path is the request's path below the API's base, with its query.
	Path   string `json:"path"`
	Status int    `json:"status"`
	// Header keeps the answer's headers the checks read (recordedHeaders).
	Header map[string]string `json:"header,omitempty"`
	// Body is the answer when it is JSON; Text when it is not.
	Body json.RawMessage `json:"body,omitempty"`
	Text string          `json:"text,omitempty"`
	// Sent and Received bound when the answer's Date was written, by
	// this machine's clock.
	Sent     time.Time `json:"sent"`
	Received time.Time `json:"received"`
}

// recordedHeaders are the answer's headers an exchange keeps.
var recordedHeaders = []string{"Content-Type", "Date", "Ratelimit", "Ratelimit-Policy", "Retry-After"}

// Probe is the doctor's transport: it sends GET requests only (anything
// else fails here, unsent) and keeps every exchange.
type Probe struct {
	// Next carries the requests (http.DefaultTransport when nil).
	Next http.RoundTripper
	// Base is the path prefix of the API ("/client/v4"), cut from the
	// paths kept.
	Base string
	// Now is the local clock (time.Now when nil).
	Now func() time.Time

	mu        sync.Mutex
	exchanges []Exchange
	refused   []string
}

// maxKept bounds the answer body an exchange keeps: the client's own
// bound (a longer answer is refused).
const maxKept = 32 << 20

// RoundTrip implements http.RoundTripper.
func (p *Probe) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet {
		p.mu.Lock()
		p.refused = append(p.refused, req.Method+" "+req.URL.Path)
		p.mu.Unlock()
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("doctor sends only GET requests; %s %s refused", req.Method, req.URL.Path)
	}
	now := p.now()
	next := p.Next
	if next == nil {
		next = http.DefaultTransport
	}
	sent := now()
	res, err := next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	// One byte more than kept: a longer answer still reaches the client
	// too long, which refuses it.
	body, err := io.ReadAll(io.LimitReader(res.Body, maxKept+1))
	res.Body.Close()
	res.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return res, nil // the client sees the broken body through its own read
	}
	x := Exchange{Method: req.Method, Path: p.relative(req), Status: res.StatusCode, Header: map[string]string{}, Sent: sent, Received: now()}
	for _, h := range recordedHeaders {
		if v := res.Header.Get(h); v != "" {
			x.Header[h] = v
		}
	}
	if json.Valid(body) {
		x.Body = body
	} else {
		x.Text = string(body)
	}
	p.mu.Lock()
	p.exchanges = append(p.exchanges, x)
	p.mu.Unlock()
	return res, nil
}

func (p *Probe) now() func() time.Time {
	if p.Now == nil {
		return time.Now
	}
	return p.Now
}

// relative is a request's path below Base, with its query.
func (p *Probe) relative(req *http.Request) string {
	path := strings.TrimPrefix(req.URL.Path, strings.TrimSuffix(p.Base, "/"))
	if req.URL.RawQuery != "" {
		path += "?" + req.URL.RawQuery
	}
	return path
}

// Exchanges returns the exchanges so far, in the order they ended.
func (p *Probe) Exchanges() []Exchange {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Exchange(nil), p.exchanges...)
}

// Refused lists the requests refused as not GETs ("METHOD path"): none,
// unless a change broke the doctor's promise.
func (p *Probe) Refused() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.refused...)
}
