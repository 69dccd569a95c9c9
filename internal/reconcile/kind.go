package reconcile

import (
	"context"
	"errors"

	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/diff"
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

// KindOf classifies an error.
func KindOf(err error) Kind {
	var de *DeclarationError
	var rf *RefusedError
	switch {
	case err == nil:
		return ""
	case errors.Is(err, context.DeadlineExceeded):
		return Timeout
	case errors.As(err, &rf), errors.As(err, &de):
		return Refused
	case errors.Is(err, diff.ErrMassRemoval):
		return Breaker
	case cloudflare.IsTransient(err), errors.Is(err, errTransient):
		return Transient
	}
	return Stalled
}

// errTransient marks failures worth retrying soon that are not Cloudflare's
// (a repository that cannot be fetched).
var errTransient = errors.New("transient")

// RefusedError is a revision the loop did not apply.
type RefusedError struct {
	Result   string // invalid, denied, unverified, non_fast_forward
	Findings []Finding
}

func (e *RefusedError) Error() string {
	if len(e.Findings) > 0 {
		return "revision refused (" + e.Result + "): " + e.Findings[0].Source + ": " + e.Findings[0].Message
	}
	return "revision refused (" + e.Result + ")"
}
