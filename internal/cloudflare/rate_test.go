package cloudflare

import (
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
)

// A Retry-After of a day on a list page: the read fails at once — within
// the per-attempt timeout, without sleeping — as transient, saying when to
// try again; the page is asked for once.
func TestRetryAfterTooLongFailsAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.client.cfg.HTTPClient.Timeout = 5 * time.Second
	e.addMembers(t, 120)
	e.fake.Fail(fake.Failure{Path: "/accounts/" + e.fake.AccountID() + "/members", Page: 2, Status: 429, RetryAfter: "86400"})
	start := time.Now()
	acct, err := e.client.ReadAccount(t.Context(), e.fake.AccountID(), ReadOptions{})
	if took := time.Since(start); took > e.client.cfg.HTTPClient.Timeout {
		t.Errorf("the read took %v, longer than the per-attempt timeout", took)
	}
	if acct != nil || err == nil || !IsTransient(err) {
		t.Fatalf("ReadAccount = %v, %v; want a transient error", acct != nil, err)
	}
	day := time.Now().Add(24 * time.Hour).UTC().Format("2006-01-02T15")
	if !strings.Contains(err.Error(), "Cloudflare asks to wait until "+day) {
		t.Errorf("error %q does not say when to retry (about %s)", err, day)
	}
	page2 := 0
	for _, r := range e.fake.Requests() {
		if strings.HasSuffix(r.Path, "/members") && r.Query == "page=2&per_page=50" {
			page2++
		}
	}
	if page2 != 1 {
		t.Errorf("page 2 asked for %d times, want once", page2)
	}
}

// A Retry-After within the cap pauses every request of the credentials
// until then, then the read succeeds; a request after the pause does not
// wait. In a testing/synctest bubble: the pause passes in its time.
func TestShortRetryAfterPausesTheLimiter(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		e := newBubbleEnv(t, fake.New(fake.Options{Token: testToken}), Config{})
		e.addMembers(t, 3)
		e.fake.Fail(fake.Failure{Path: "/accounts/" + e.fake.AccountID() + "/members", Status: 429, RetryAfter: "1", Times: 1})
		start := time.Now()
		if _, err := e.client.ReadAccount(t.Context(), e.fake.AccountID(), ReadOptions{}); err != nil {
			t.Fatal(err)
		}
		if paused := time.Since(start); paused != time.Second {
			t.Errorf("the read was paused %v; Retry-After said 1s", paused)
		}
		start = time.Now()
		if _, err := e.client.Verify(t.Context(), e.fake.AccountID()); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited != 0 {
			t.Errorf("a request after the pause waited %v", waited)
		}
	})
}

// The Ratelimit header says the budget is used up (other tools of the same
// user spent it): the client sends nothing more until it resets, and a
// call that cannot wait that long fails at once, unsent.
func TestRatelimitHeaderIsFollowed(t *testing.T) {
	t.Parallel()
	s := fake.New(fake.Options{Token: testToken, RateLimit: 3, RatePeriod: time.Hour})
	e := newEnvFor(t, s, Config{MaxRetryWait: time.Second})
	for range 3 {
		if _, err := e.client.Verify(t.Context(), s.AccountID()); err != nil {
			t.Fatal(err)
		}
	}
	_, err := e.client.Verify(t.Context(), s.AccountID())
	if err == nil || !IsTransient(err) || !strings.Contains(err.Error(), "rate limit for these credentials is used up") {
		t.Fatalf("4th call: %v; want a transient rate-limit error", err)
	}
	if n := len(s.Requests()); n != 3 {
		t.Errorf("%d requests reached Cloudflare, want 3 (the 4th is not sent)", n)
	}
}

func TestParseRatelimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		r    int
		t    time.Duration
		want bool
	}{
		{`"default";r=50;t=30`, 50, 30 * time.Second, true},
		{`"default";r=50;t=30, "burst";r=2;t=5`, 2, 5 * time.Second, true},
		{`"default";r=x;t=30`, 0, 0, false},
		{``, 0, 0, false},
	} {
		r, d, ok := ParseRatelimit(tc.in)
		if r != tc.r || d != tc.t || ok != tc.want {
			t.Errorf("ParseRatelimit(%q) = %d, %v, %v; want %d, %v, %v", tc.in, r, d, ok, tc.r, tc.t, tc.want)
		}
	}
}

func TestParseRatelimitPolicy(t *testing.T) {
	t.Parallel()
	if q, w, ok := ParseRatelimitPolicy(`"default";q=1200;w=300`); q != 1200 || w != 5*time.Minute || !ok {
		t.Errorf("ParseRatelimitPolicy = %d, %v, %v", q, w, ok)
	}
	if _, _, ok := ParseRatelimitPolicy(`"default";r=50;t=30`); ok {
		t.Error("a Ratelimit header read as a policy")
	}
}

func TestRetryAfterForms(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"3":                             3 * time.Second,
		"0.5":                           500 * time.Millisecond,
		"-4":                            0,
		"Wed, 25 Nov 2026 00:01:00 GMT": time.Minute,
	} {
		h := http.Header{"Retry-After": {in}}
		if got, ok := retryAfter(h, now); !ok || got != want {
			t.Errorf("retryAfter(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
}

// A 429 blocks the user, not one request: after a Retry-After longer than a
// request may wait, the next call fails at once, unsent — even though the
// 429 itself (and other answers) said requests remained.
func TestLongRetryAfterHoldsEveryRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{MaxRetryWait: time.Second})
	e.fake.Fail(fake.Failure{Path: "/accounts/" + e.fake.AccountID(), Status: 429, RetryAfter: "300", Times: 1})
	if _, err := e.client.Verify(t.Context(), e.fake.AccountID()); err == nil || !IsTransient(err) {
		t.Fatalf("first call: %v, want a transient 429", err)
	}
	sent := len(e.fake.Requests())
	_, err := e.client.Verify(t.Context(), e.fake.AccountID())
	if err == nil || !strings.Contains(err.Error(), "rate limit for these credentials is used up") {
		t.Errorf("second call: %v, want it held back", err)
	}
	if n := len(e.fake.Requests()); n != sent {
		t.Errorf("%d more requests reached Cloudflare during the block", n-sent)
	}
}
