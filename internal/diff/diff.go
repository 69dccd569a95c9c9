package diff

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cfaccess/reconciler/internal/desired"
)

// Action is what a change does to a member.
type Action string

const (
	Remove Action = "remove"
	Update Action = "update"
	Invite Action = "invite"
	// Reinvite withdraws an expired invitation and sends a new one.
	Reinvite Action = "reinvite"
)

// Want is the desired access of one declared member. Empty Access means
// declared with no active grant: the member is removed.
type Want struct {
	Email  string
	Access []desired.Access
	// Policies lay Access out as Cloudflare policies (each a set of roles
	// on the account or on one group of zones), when written; empty means
	// desired.PoliciesOf(Access). The diff compares Access only.
	Policies []desired.Policy
	// Sources are the grants behind Access, for plans and audit records.
	Sources []desired.Pos
	Reasons []string
}

// Live is a member as the account has it.
type Live struct {
	ID     string
	Email  string
	Status string // accepted or pending
	Access []desired.Access
	// Foreign is set when the member has access cfaccess cannot write
	// (deny policies, other resource groups): it differs from every
	// declaration.
	Foreign bool
}

// Options are the account's reconcile settings.
type Options struct {
	Prune     bool
	Protected []string
	// Owner is the token's user, never changed; "" when unknown.
	Owner string
	// ProtectedIDs are member ids never changed, whatever their email
	// reads now: protected members as an earlier read knew them, so that
	// an email that changes or disappears cannot unprotect them.
	ProtectedIDs     map[string]bool
	MaxRemovals      int
	AllowMassRemoval bool
	// Reinvite, when set, says whether a pending member's invitation is
	// old enough to send again (--reinvite-after).
	Reinvite func(Live) bool
}

// Change is one action on one member. For an invite Add is the whole
// access; for a removal Remove is.
type Change struct {
	Action   Action
	Email    string
	MemberID string // update, remove
	Status   string // the live status, for update and remove
	Add      []desired.Access
	Remove   []desired.Access
	// Access is the complete desired access (invite, update), and
	// Policies its layout (Want.Policies).
	Access   []desired.Access
	Policies []desired.Policy
	Sources  []desired.Pos
	Reasons  []string
	// Risks are what a reviewer should look at twice, filled by the
	// caller that knows the live account (reconcile).
	Risks []string
}

// Plan is what to do to one account, in application order: removals,
// updates, invites (and re-invites), each sorted by email.
type Plan struct {
	Changes []Change
	// Unmanaged are live members nobody declared, left alone (prune off).
	Unmanaged []Live
	// Protected are the live members the plan did not look at: protected
	// emails and the token's owner.
	Protected []string
	// Breaker is set when the plan was refused for removing too many.
	Breaker string
}

// Empty reports whether the plan changes nothing.
func (p *Plan) Empty() bool { return len(p.Changes) == 0 }

// Count returns the number of changes of an action.
func (p *Plan) Count(a Action) int {
	n := 0
	for _, c := range p.Changes {
		if c.Action == a {
			n++
		}
	}
	return n
}

// ErrMassRemoval is returned (with the plan, Breaker set) when a plan
// removes more than max_removals, or every member that is not protected.
var ErrMassRemoval = errors.New("mass removal refused")

// Compute plans the changes that make live equal to want.
func Compute(want []Want, live []Live, opts Options) (*Plan, error) {
	skip := map[string]bool{}
	for _, e := range opts.Protected {
		skip[strings.ToLower(e)] = true
	}
	if opts.Owner != "" {
		skip[strings.ToLower(opts.Owner)] = true
	}
	wantBy := make(map[string]*Want, len(want))
	for i := range want {
		wantBy[strings.ToLower(want[i].Email)] = &want[i]
	}
	p := &Plan{}
	liveBy := make(map[string]*Live, len(live))
	managed := 0
	for i := range live {
		l := &live[i]
		email := strings.ToLower(l.Email)
		if skip[email] || opts.ProtectedIDs[l.ID] {
			p.Protected = append(p.Protected, email)
			continue
		}
		managed++
		liveBy[email] = l
		w, declared := wantBy[email]
		switch {
		case !declared && opts.Prune, declared && len(w.Access) == 0:
			c := Change{Action: Remove, Email: email, MemberID: l.ID, Status: l.Status, Remove: sorted(l.Access)}
			if declared {
				c.Sources, c.Reasons = w.Sources, w.Reasons
			}
			p.Changes = append(p.Changes, c)
		case !declared:
			p.Unmanaged = append(p.Unmanaged, *l)
		case l.Status == "pending" && opts.Reinvite != nil && opts.Reinvite(*l):
			add, remove := setDiff(w.Access, l.Access)
			p.Changes = append(p.Changes, Change{Action: Reinvite, Email: email, MemberID: l.ID, Status: l.Status,
				Add: add, Remove: remove, Access: sorted(w.Access), Policies: w.Policies, Sources: w.Sources, Reasons: w.Reasons})
		default:
			add, remove := setDiff(w.Access, l.Access)
			if len(add) > 0 || len(remove) > 0 || l.Foreign {
				p.Changes = append(p.Changes, Change{Action: Update, Email: email, MemberID: l.ID, Status: l.Status,
					Add: add, Remove: remove, Access: sorted(w.Access), Policies: w.Policies, Sources: w.Sources, Reasons: w.Reasons})
			}
		}
	}
	for email, w := range wantBy {
		if skip[email] || liveBy[email] != nil || len(w.Access) == 0 {
			continue
		}
		p.Changes = append(p.Changes, Change{Action: Invite, Email: email, Add: sorted(w.Access), Access: sorted(w.Access),
			Policies: w.Policies, Sources: w.Sources, Reasons: w.Reasons})
	}
	order := map[Action]int{Remove: 0, Update: 1, Invite: 2, Reinvite: 2}
	slices.SortFunc(p.Changes, func(a, b Change) int {
		return cmp.Or(cmp.Compare(order[a.Action], order[b.Action]), cmp.Compare(a.Email, b.Email))
	})
	slices.SortFunc(p.Unmanaged, func(a, b Live) int { return cmp.Compare(a.Email, b.Email) })
	slices.Sort(p.Protected)
	removals := p.Count(Remove)
	switch {
	case opts.AllowMassRemoval || removals == 0:
	case removals > opts.MaxRemovals:
		p.Breaker = fmt.Sprintf("the plan removes %d members, more than max_removals (%d)", removals, opts.MaxRemovals)
	case removals == managed:
		p.Breaker = fmt.Sprintf("the plan removes every member that is not protected (%d)", removals)
	}
	if p.Breaker != "" {
		return p, fmt.Errorf("%w: %s; if that is intended, run apply with --allow-mass-removal", ErrMassRemoval, p.Breaker)
	}
	return p, nil
}

func sorted(a []desired.Access) []desired.Access {
	out := slices.Clone(a)
	slices.SortFunc(out, desired.Access.Compare)
	return slices.Compact(out)
}

// setDiff returns what want has and live lacks, and what live has and
// want lacks.
func setDiff(want, live []desired.Access) (add, remove []desired.Access) {
	for _, a := range sorted(want) {
		if !slices.Contains(live, a) {
			add = append(add, a)
		}
	}
	for _, a := range sorted(live) {
		if !slices.Contains(want, a) {
			remove = append(remove, a)
		}
	}
	return add, remove
}
