package cloudflare

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limiter is a sliding-window request limiter that clients using the same
// credentials share, across reconciles: Cloudflare's budget is per user.
type Limiter = window

// newLimiter allows limit requests in any period.
func newLimiter(limit int, period time.Duration) *Limiter {
	return newWindow(limit, period, time.Now)
}

// window is a sliding-window limiter: at most limit events in any period.
// Unlike a token bucket, it cannot burst past the budget Cloudflare
// enforces (1,200 requests in any 5 minutes). It also follows what the API
// says of the budget (the Ratelimit header, a 429's Retry-After), which
// counts requests of other tools of the same user too.
type window struct {
	limit  int
	period time.Duration
	now    func() time.Time

	mu    sync.Mutex
	times []time.Time // ring of the last limit event times
	next  int
	count int
	// remaining requests the API allows until reset (from the Ratelimit
	// header); when 0, nothing is sent before reset.
	remaining int
	reset     time.Time
	// paused: nothing is sent before then (a 429's Retry-After). Kept
	// apart from the Ratelimit header's view, so that a later answer of a
	// request sent earlier cannot lift it.
	paused time.Time
}

func newWindow(limit int, period time.Duration, now func() time.Time) *window {
	return &window{limit: limit, period: period, now: now, times: make([]time.Time, limit)}
}

// errBudget is returned by Wait when the API's budget is used up for
// longer than the caller may wait.
type errBudget struct{ until time.Time }

func (e *errBudget) Error() string {
	return fmt.Sprintf("Cloudflare's rate limit for these credentials is used up until %s", e.until.UTC().Format(time.RFC3339))
}

// Wait blocks until an event may happen, and records it. When the API has
// said its budget is used up (a 429's Retry-After, or the Ratelimit header)
// until a time more than maxWait away (maxWait > 0), it returns an
// *errBudget at once instead of waiting. The limiter's own window, which
// paces this process within its share of the budget, is waited for as long
// as it takes (bounded by ctx): a large account needs more than 1,200
// requests.
func (w *window) Wait(ctx context.Context, maxWait time.Duration) error {
	for {
		w.mu.Lock()
		now := w.now()
		blocked := w.paused
		if now.Before(w.reset) && w.remaining <= 0 && w.reset.After(blocked) {
			blocked = w.reset
		}
		var wait time.Duration
		switch {
		case now.Before(blocked):
			wait = blocked.Sub(now)
			if maxWait > 0 && wait > maxWait {
				w.mu.Unlock()
				return &errBudget{until: blocked}
			}
		case w.count < w.limit:
			w.record(now)
			w.count++
			w.mu.Unlock()
			return nil
		default:
			oldest := w.times[w.next]
			if wait = oldest.Add(w.period).Sub(now); wait <= 0 {
				w.record(now)
				w.mu.Unlock()
				return nil
			}
		}
		w.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (w *window) record(now time.Time) {
	w.times[w.next] = now
	w.next = (w.next + 1) % w.limit
	if now.Before(w.reset) {
		w.remaining--
	}
}

// observe takes what an answer says of the budget: remaining requests
// until reset.
func (w *window) observe(remaining int, reset time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.remaining, w.reset = remaining, reset
}

// pause stops every request until t (a 429's Retry-After); a shorter pause
// never shortens a longer one.
func (w *window) pause(t time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t.After(w.paused) {
		w.paused = t
	}
}

// ParseRatelimit reads the Ratelimit header Cloudflare sends on every answer
// since 2025-09: a list of items `"default";r=50;t=30`, r the requests
// remaining and t the seconds until the window resets
// [developers.cloudflare.com fundamentals/api/reference/limits; changelog
// 2025-09-03]. It returns the most constraining item.
func ParseRatelimit(h string) (remaining int, reset time.Duration, ok bool) {
	return rateItems(h, "r", "t")
}

// ParseRatelimitPolicy reads the Ratelimit-Policy header sent beside it:
// items `"default";q=1200;w=300`, q the requests allowed per window of w
// seconds (the same sources). It returns the smallest quota.
func ParseRatelimitPolicy(h string) (quota int, window time.Duration, ok bool) {
	return rateItems(h, "q", "w")
}

// rateItems reads a list of structured-field items, each with the integer
// parameters count and seconds, and returns the item of the smallest
// count.
func rateItems(h, count, seconds string) (n int, d time.Duration, ok bool) {
	for item := range strings.SplitSeq(h, ",") {
		c, t := -1, -1
		for param := range strings.SplitSeq(item, ";") {
			k, v, found := strings.Cut(strings.TrimSpace(param), "=")
			if !found {
				continue
			}
			x, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || x < 0 {
				continue
			}
			switch k {
			case count:
				c = x
			case seconds:
				t = x
			}
		}
		if c < 0 || t < 0 {
			continue
		}
		if !ok || c < n {
			n, d, ok = c, time.Duration(t)*time.Second, true
		}
	}
	return n, d, ok
}
