package contract

import (
	"bytes"
	"io"
	"net/http"
	"sync"
)

// Transport is an http.RoundTripper that checks every request it carries
// and every response it gets against the schema, reporting problems to
// Errorf (a testing.T's Errorf is safe from any goroutine).
type Transport struct {
	Validator *Validator
	Base      http.RoundTripper
	Errorf    func(format string, args ...any)

	mu      sync.Mutex
	applied map[string]int
	ops     map[string]int
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	reqApplied, err := t.Validator.checkRequest(req, body)
	if err != nil {
		t.Errorf("contract: %v", err)
	}
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	res, err := base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resBody, err := io.ReadAll(res.Body)
	res.Body.Close()
	res.Body = io.NopCloser(bytes.NewReader(resBody))
	if err != nil {
		return res, nil // the client sees the broken body through its own read
	}
	applied, verr := t.Validator.CheckResponse(req, body, res.StatusCode, res.Header, resBody)
	if verr != nil {
		t.Errorf("contract: %v", verr)
	}
	t.mu.Lock()
	if t.applied == nil {
		t.applied, t.ops = map[string]int{}, map[string]int{}
	}
	for _, a := range append(reqApplied, applied...) {
		t.applied[a]++
	}
	t.ops[t.Validator.operation(req)]++
	t.mu.Unlock()
	return res, nil
}

// Applied returns how often each Difference was applied.
func (t *Transport) Applied() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]int{}
	for k, v := range t.applied {
		out[k] = v
	}
	return out
}

// Operations returns how often each operation was seen.
func (t *Transport) Operations() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]int{}
	for k, v := range t.ops {
		out[k] = v
	}
	return out
}
