package daemon

import (
	"context"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/diff"
	"github.com/cfaccess/reconciler/internal/reconcile"
)

// Kind says what to do about a failure (fluxcd's stalling versus
// transient errors, as types).
type Kind string

const (
	// Transient failures may pass by themselves (Cloudflare 5xx and 429,
	// the network, a list that changed while read): retry with backoff.
	Transient Kind = "transient"
	// Stalled failures need a person (a token without permission, the
	// enforced revision denied, a change Cloudflare refused): retried at
	// the interval, never faster.
	Stalled Kind = "stalled"
	// Refused is a revision not applied (invalid, denied, unverified, not
	// descending from the last applied one, or unplannable): the last good
	// revision stays enforced.
	Refused Kind = "refused"
	// Breaker is the mass-removal breaker: nothing applied to the account
	// until a person confirms.
	Breaker Kind = "breaker"
	// Timeout is a reconcile cancelled for running past its limit.
	Timeout Kind = "timeout"
)

// urgency orders kinds for several failures at once: the first is retried
// soonest.
var urgency = []Kind{Transient, Timeout, Stalled, Breaker, Refused}

// KindOf classifies an error by the first mark found going down its
// chain: TransientError, a declaration or refusal, Cloudflare's answer,
// the breaker, a deadline. Several failures joined (errors.Join: one per
// account) take the most urgent of their kinds, Transient first, so that
// an account whose failure may pass is retried soon whatever another
// account's failure is (re-planning that one too is harmless: a plan
// writes nothing by itself).
func KindOf(err error) Kind {
	switch e := err.(type) {
	case nil:
		return ""
	case *TransientError:
		return Transient
	case *reconcile.DeclarationError, *RefusedError:
		return Refused
	case *cloudflare.APIError:
		if e.Transient() {
			return Transient
		}
		return Stalled
	case interface{ Unwrap() []error }:
		best := Refused
		for _, child := range e.Unwrap() {
			if k := KindOf(child); k != "" && urgent(k, best) {
				best = k
			}
		}
		return best
	}
	switch {
	case err == context.DeadlineExceeded:
		return Timeout
	case err == diff.ErrMassRemoval:
		return Breaker
	}
	if u, ok := err.(interface{ Unwrap() error }); ok && u.Unwrap() != nil {
		return KindOf(u.Unwrap())
	}
	return Stalled
}

// urgent reports whether kind a is retried sooner than b.
func urgent(a, b Kind) bool {
	ia, ib := len(urgency), len(urgency)
	for i, k := range urgency {
		if k == a {
			ia = i
		}
		if k == b {
			ib = i
		}
	}
	return ia < ib
}

// TransientError marks a failure worth retrying soon that is not
// Cloudflare's own (a repository that cannot be fetched, a plan cut short).
// Its message is its cause's.
type TransientError struct{ Err error }

func (e *TransientError) Error() string { return e.Err.Error() }
func (e *TransientError) Unwrap() error { return e.Err }

// transient marks err as Transient.
func transient(err error) error { return &TransientError{Err: err} }

// Verdict is why a revision is not applied.
type Verdict string

const (
	// VerdictInvalid: the repository does not load, a policy test fails,
	// the guardrails fail, or a declaration does not fit the account.
	VerdictInvalid Verdict = "invalid"
	// VerdictDenied: a guardrail on the repository denies.
	VerdictDenied Verdict = "denied"
	// VerdictUnverified: the commit's signature is missing or not trusted.
	VerdictUnverified Verdict = "unverified"
	// VerdictNonFastForward: the head does not descend from the revision
	// last applied.
	VerdictNonFastForward Verdict = "non_fast_forward"
)

// RefusedError is a revision the loop did not apply.
type RefusedError struct {
	Verdict  Verdict
	Findings []check.Finding
}

func (e *RefusedError) Error() string {
	if len(e.Findings) > 0 {
		return "revision refused (" + string(e.Verdict) + "): " + e.Findings[0].Source + ": " + e.Findings[0].Message
	}
	return "revision refused (" + string(e.Verdict) + ")"
}
