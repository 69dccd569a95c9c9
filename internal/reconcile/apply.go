package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/diff"
)

// Result is the outcome of one change.
type Result struct {
	Change   diff.Change
	MemberID string // the member changed (for an invite, the new id)
	// Err is why the change failed; errNotAttempted when the run stopped
	// before it.
	Err error
	// Note says how an invite became an update ("already a member").
	Note string
}

// changeTimeout bounds one change, retries included.
const changeTimeout = 20 * time.Second

// errNotAttempted marks changes skipped because the context ended.
var errNotAttempted = errors.New("not attempted: the run was stopped")

// ErrHeldBack marks a change that gives access, not applied because a
// guardrail on the live state denies.
var ErrHeldBack = errors.New("held back: a guardrail on the account's live state denies (see the denial); what takes access away was applied")

// changeWriter makes one change on an account (cloudflare.Writer: the
// provider owns the write protocol).
type changeWriter interface {
	Apply(ctx context.Context, c diff.Change) (cloudflare.Applied, error)
}

// apply makes a plan's changes in its order (removals, updates, invites)
// through w. A failed change does not stop the others; the context ending
// stops between changes, never within one. A change refused for a
// protected member is not made; with hold, the changes that give access
// are held back (ErrHeldBack) and only those that take it away are made.
// report, when set, is told of each change.
func apply(ctx context.Context, w changeWriter, ap *AccountPlan, hold bool, report func(Result)) []Result {
	var out []Result
	for _, c := range ap.Plan.Changes {
		r := Result{Change: c, MemberID: c.MemberID}
		switch {
		case ctx.Err() != nil:
			r.Err = errNotAttempted
		case len(c.Protects) > 0:
			r.Err = fmt.Errorf("%w: %s", ErrProtected, Refusal(ap, c))
		case hold && c.Grants():
			r.Err = ErrHeldBack
		default:
			// The change itself runs to its end even if the context ends
			// meanwhile (a half-made change is worse than a late stop), but
			// for 20 s at most, so that a stopping daemon exits within 30 s.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), changeTimeout)
			var a cloudflare.Applied
			a, r.Err = w.Apply(cctx, c)
			r.MemberID, r.Note = a.MemberID, a.Note
			cancel()
		}
		out = append(out, r)
		if report != nil {
			report(r)
		}
	}
	return out
}
