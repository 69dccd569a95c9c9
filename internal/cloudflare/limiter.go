package cloudflare

import (
	"context"
	"sync"
	"time"
)

// Limiter is a sliding-window request limiter that clients using the same
// credentials share, across reconciles: Cloudflare's budget is per user.
type Limiter = window

// NewLimiter allows limit requests in any period.
func NewLimiter(limit int, period time.Duration) *Limiter {
	return newWindow(limit, period, time.Now)
}

// window is a sliding-window limiter: at most limit events in any period.
// Unlike a token bucket, it cannot burst past the budget Cloudflare
// enforces (1,200 requests in any 5 minutes).
type window struct {
	limit  int
	period time.Duration
	now    func() time.Time

	mu    sync.Mutex
	times []time.Time // ring of the last limit event times
	next  int
	count int
}

func newWindow(limit int, period time.Duration, now func() time.Time) *window {
	return &window{limit: limit, period: period, now: now, times: make([]time.Time, limit)}
}

// Wait blocks until an event may happen, and records it.
func (w *window) Wait(ctx context.Context) error {
	for {
		w.mu.Lock()
		now := w.now()
		if w.count < w.limit {
			w.times[w.next] = now
			w.next = (w.next + 1) % w.limit
			w.count++
			w.mu.Unlock()
			return nil
		}
		oldest := w.times[w.next]
		if wait := oldest.Add(w.period).Sub(now); wait <= 0 {
			w.times[w.next] = now
			w.next = (w.next + 1) % w.limit
			w.mu.Unlock()
			return nil
		} else {
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
}
