package daemon

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/diff"
	"github.com/cfaccess/reconciler/internal/reconcile"
)

func TestNextWake(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		jitter     float64
		failures   int
		nextChange time.Time
		want       time.Duration
	}{
		{"the interval, least jitter", 0, 0, time.Time{}, 270 * time.Second},
		{"the interval, no jitter", 0.5, 0, time.Time{}, 300 * time.Second},
		{"the interval, most jitter", 0.99999, 0, time.Time{}, 330 * time.Second},
		{"first backoff", 0.5, 1, time.Time{}, time.Second},
		{"fourth backoff", 0.5, 4, time.Time{}, 8 * time.Second},
		{"backoff never past the interval", 0.5, 30, time.Time{}, 300 * time.Second},
		{"a grant change first", 0.5, 0, now.Add(time.Minute), time.Minute + 5*time.Millisecond},
		{"a grant change later than the interval", 0.5, 0, now.Add(time.Hour), 300 * time.Second},
		{"a grant change already past", 0.5, 0, now.Add(-time.Minute), 0},
		{"backoff before a grant change", 0.5, 2, now.Add(time.Minute), 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := NextWake(now, 5*time.Minute, tc.jitter, tc.failures, tc.nextChange)
			if d := got - tc.want; d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("NextWake = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestKindOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want Kind
	}{
		{nil, ""},
		{fmt.Errorf("fetch: %w", transient(errors.New("connection refused"))), Transient},
		{&TransientError{Err: fmt.Errorf("plan: %w", &reconcile.DeclarationError{})}, Transient},
		// Several accounts: the most urgent kind, so that the account
		// whose failure may pass is retried soon.
		{errors.Join(fmt.Errorf("dev: %w", &reconcile.DeclarationError{}), fmt.Errorf("prod: %w", &cloudflare.APIError{Status: 503})), Transient},
		{errors.Join(fmt.Errorf("dev: %w", diff.ErrMassRemoval), fmt.Errorf("prod: %w", &cloudflare.APIError{Status: 403})), Stalled},
		{errors.Join(fmt.Errorf("dev: %w", &reconcile.DeclarationError{}), errors.New("the enforced revision is denied now")), Stalled},
		{errors.Join(fmt.Errorf("dev: %w", &reconcile.DeclarationError{}), fmt.Errorf("prod: %w", diff.ErrMassRemoval)), Breaker},
		{fmt.Errorf("run: %w", errors.Join(fmt.Errorf("dev: %w", context.DeadlineExceeded), fmt.Errorf("prod: %w", &reconcile.DeclarationError{}))), Timeout},
		{fmt.Errorf("reconcile cancelled: %w", context.DeadlineExceeded), Timeout},
		{&RefusedError{Verdict: VerdictDenied}, Refused},
		{fmt.Errorf("prod: %w", &reconcile.DeclarationError{}), Refused},
		{fmt.Errorf("prod: %w", diff.ErrMassRemoval), Breaker},
		{errors.New("403 Forbidden: the token lacks a permission"), Stalled},
	} {
		if got := KindOf(tc.err); got != tc.want {
			t.Errorf("KindOf(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
