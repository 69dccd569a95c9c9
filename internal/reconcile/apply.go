package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/diff"
)

// Result is the outcome of one change.
type Result struct {
	Change   diff.Change
	MemberID string // the member changed (for an invite, the new id)
	// Err is why the change failed; ErrNotAttempted when the run stopped
	// before it.
	Err error
	// Note says how an invite became an update ("already a member").
	Note string
}

// ChangeTimeout bounds one change, retries included.
const ChangeTimeout = 20 * time.Second

// ErrNotAttempted marks changes skipped because the context ended.
var ErrNotAttempted = errors.New("not attempted: the run was stopped")

// Apply applies a plan in its order (removals, updates, invites). A failed
// change does not stop the others; the context ending stops between
// changes, never within one. report, when set, is called after each change
// (audit records, metrics).
func Apply(ctx context.Context, client *cloudflare.Client, ap *AccountPlan, report func(Result)) []Result {
	a := &applier{client: client, ap: ap}
	var out []Result
	for _, c := range ap.Plan.Changes {
		r := Result{Change: c, MemberID: c.MemberID}
		if ctx.Err() != nil {
			r.Err = ErrNotAttempted
		} else {
			// The change itself runs to its end even if the context ends
			// meanwhile (a half-made change is worse than a late stop), but
			// for 20 s at most, so that a stopping daemon exits within 30 s.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ChangeTimeout)
			r = a.apply(cctx, c)
			cancel()
		}
		out = append(out, r)
		if report != nil {
			report(r)
		}
	}
	return out
}

type applier struct {
	client *cloudflare.Client
	ap     *AccountPlan
}

func (a *applier) apply(ctx context.Context, c diff.Change) Result {
	r := Result{Change: c, MemberID: c.MemberID}
	id := a.ap.AccountID
	switch c.Action {
	case diff.Remove:
		r.Err = a.client.Remove(ctx, id, c.MemberID)
	case diff.Update:
		pols, err := a.policies(ctx, c.Access)
		if err != nil {
			r.Err = err
			break
		}
		r.Err = a.client.ReplacePolicies(ctx, id, c.MemberID, pols)
	case diff.Reinvite:
		// Cloudflare cannot resend an invitation: withdraw it and invite
		// again, with the access declared now.
		pols, err := a.policies(ctx, c.Access)
		if err != nil {
			r.Err = err
			break
		}
		if r.Err = a.client.Remove(ctx, id, c.MemberID); r.Err != nil {
			break
		}
		r.MemberID, r.Err = a.client.Invite(ctx, id, c.Email, pols)
	case diff.Invite:
		pols, err := a.policies(ctx, c.Access)
		if err != nil {
			r.Err = err
			break
		}
		r.MemberID, r.Err = a.client.Invite(ctx, id, c.Email, pols)
		if errors.Is(r.Err, cloudflare.ErrAlreadyMember) {
			// A previous run invited them and stopped before recording it:
			// find the member and make its access right instead of
			// inviting twice.
			m, err := a.client.FindMember(ctx, id, c.Email)
			if err != nil {
				r.Err = fmt.Errorf("%s is already a member, but reading it back failed: %w", c.Email, err)
				break
			}
			r.MemberID, r.Note = m, "already a member: updated instead"
			r.Err = a.client.ReplacePolicies(ctx, id, m, pols)
		}
	default:
		r.Err = fmt.Errorf("unknown action %q", c.Action)
	}
	return r
}

// policies builds the allow policies for an access set: grouped by
// resource set — resources with the same roles share one policy — creating
// the resource groups the account lacks.
func (a *applier) policies(ctx context.Context, access []desired.Access) ([]cloudflare.Policy, error) {
	live := a.ap.Live
	if err := a.client.LoadResourceGroups(ctx, live); err != nil {
		return nil, err
	}
	var order []desired.Resource
	byRes := map[desired.Resource][]string{}
	for _, acc := range access {
		pg, err := live.PermissionGroup(acc.Role)
		if err != nil {
			return nil, err
		}
		if _, seen := byRes[acc.Resource]; !seen {
			order = append(order, acc.Resource)
		}
		byRes[acc.Resource] = append(byRes[acc.Resource], pg.ID)
	}
	var out []cloudflare.Policy
	index := map[string]int{} // role set -> policy
	for _, res := range order {
		rg, ok := live.ResourceGroup(res)
		if !ok {
			created, err := a.client.CreateResourceGroup(ctx, a.ap.AccountID, res)
			if err != nil {
				return nil, err
			}
			live.ResourceGroups = append(live.ResourceGroups, created)
			rg = created
		}
		ids := slices.Compact(slices.Sorted(slices.Values(byRes[res])))
		key := strings.Join(ids, ",")
		if i, ok := index[key]; ok {
			out[i].ResourceGroups = append(out[i].ResourceGroups, rg.ID)
			continue
		}
		index[key] = len(out)
		out = append(out, cloudflare.Policy{PermissionGroups: ids, ResourceGroups: []string{rg.ID}})
	}
	return out, nil
}
