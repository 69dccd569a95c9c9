package diff

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cfaccess/reconciler/internal/desired"
)

// Loss is a person the plan takes access away from: access they hold now,
// on their own or through a user group, that they will not hold once the
// plan is applied. The mass-removal breaker counts them, whatever the
// path: a removal, a policy update that takes away, being taken out of a
// user group, or a user group's policies rewritten.
type Loss struct {
	Email, MemberID string
	// Protected is set for a protected member or the token's owner: no
	// plan may take anything from them.
	Protected bool
	// Removed is set when the member leaves the account; Lose is what
	// they lose (all of it for a removal).
	Removed bool
	Lose    []desired.Access
	// Causes are the plan's changes that take it away, as indexes into
	// Plan.Changes.
	Causes []int
}

// ErrProtected is returned, with the plan, when a change would take
// access away from a protected member or the token's owner, on any path
// (a user group's policies, its membership): the plan is refused whole,
// and --allow-mass-removal does not lift it.
var ErrProtected = errors.New("a protected member would lose access")

// ProtectedError is a plan refused because it takes access from protected
// members: their losses, each with the changes that cause it.
type ProtectedError struct {
	Losses []Loss
}

func (e *ProtectedError) Error() string {
	var who []string
	for _, l := range e.Losses {
		who = append(who, l.Email)
	}
	return fmt.Sprintf("%v: %s", ErrProtected, strings.Join(who, ", "))
}

func (e *ProtectedError) Unwrap() error { return ErrProtected }

// losses computes, for every live member, what it holds now (its own
// access and its user groups') and what it will hold once the plan's
// changes are made, and returns those who lose anything. Invitations and
// joins only give, so they are not followed.
func (p *Plan) losses(live []Live, protected func(*Live) bool) []Loss {
	type touch struct {
		own    int            // index of the Remove, Update or Reinvite of the member (-1: none)
		leaves map[string]int // group id -> the LeaveGroup
	}
	touches := map[string]*touch{}
	at := func(id string) *touch {
		t := touches[id]
		if t == nil {
			t = &touch{own: -1, leaves: map[string]int{}}
			touches[id] = t
		}
		return t
	}
	groupAfter := map[string]int{} // group id -> its UpdateGroup
	for i, c := range p.Changes {
		switch c.Action {
		case Remove, Update, Reinvite:
			at(c.MemberID).own = i
		case LeaveGroup:
			at(c.MemberID).leaves[c.GroupID] = i
		case UpdateGroup:
			groupAfter[c.GroupID] = i
		}
	}
	var out []Loss
	for i := range live {
		l := &live[i]
		t := touches[l.ID]
		var rewritten bool
		for _, in := range l.Inherited {
			if _, ok := groupAfter[in.GroupID]; ok {
				rewritten = true
			}
		}
		if t == nil && !rewritten {
			continue
		}
		if t == nil {
			t = &touch{own: -1}
		}
		loss := Loss{Email: strings.ToLower(l.Email), MemberID: l.ID, Protected: protected(l)}
		var after []desired.Access
		ownAfter := l.Access
		if t.own >= 0 {
			c := p.Changes[t.own]
			if c.Action == Remove {
				loss.Removed, loss.Lose, loss.Causes = true, l.Effective(), []int{t.own}
				out = append(out, loss)
				continue
			}
			ownAfter = c.Access
		}
		after = append(after, ownAfter...)
		// Each group once: its policies after the plan, unless the member
		// leaves it.
		seen := map[string]bool{}
		for _, in := range l.Inherited {
			if _, left := t.leaves[in.GroupID]; left || seen[in.GroupID] {
				continue
			}
			if j, ok := groupAfter[in.GroupID]; ok {
				seen[in.GroupID] = true
				after = append(after, p.Changes[j].Access...)
				continue
			}
			after = append(after, in.Access)
		}
		_, lose := setDiff(after, l.Effective())
		if len(lose) == 0 {
			continue
		}
		loss.Lose = lose
		takes := func(before, after []desired.Access) bool {
			return slices.ContainsFunc(before, func(a desired.Access) bool {
				return slices.Contains(lose, a) && !slices.Contains(after, a)
			})
		}
		if t.own >= 0 && takes(l.Access, ownAfter) {
			loss.Causes = append(loss.Causes, t.own)
		}
		for _, in := range l.Inherited {
			j, left := t.leaves[in.GroupID]
			if !left {
				var ok bool
				if j, ok = groupAfter[in.GroupID]; !ok || !takes([]desired.Access{in.Access}, p.Changes[j].Access) {
					continue
				}
			}
			if !slices.Contains(loss.Causes, j) {
				loss.Causes = append(loss.Causes, j)
			}
		}
		slices.Sort(loss.Causes)
		out = append(out, loss)
	}
	slices.SortFunc(out, func(a, b Loss) int { return strings.Compare(a.Email, b.Email) })
	return out
}

// breaker says why the plan takes access away from too many, or "".
func (p *Plan) breaker(managed int, opts Options) string {
	var people, removed, own, left, rewritten int
	for _, l := range p.Losing {
		if l.Protected {
			continue // refused on its own
		}
		people++
		if l.Removed {
			removed++
			continue
		}
		var o, lv, rw bool
		for _, i := range l.Causes {
			switch p.Changes[i].Action {
			case Update, Reinvite:
				o = true
			case LeaveGroup:
				lv = true
			case UpdateGroup:
				rw = true
			}
		}
		own, left, rewritten = own+count(o), left+count(lv), rewritten+count(rw)
	}
	switch {
	case opts.AllowMassRemoval || people == 0:
		return ""
	case people > opts.MaxRemovals:
		if removed == people {
			return fmt.Sprintf("the plan removes %d members, more than max_removals (%d)", removed, opts.MaxRemovals)
		}
		var parts []string
		for _, part := range []struct {
			n    int
			what string
		}{{removed, "removed from the account"}, {own, "with their own policies cut"},
			{left, "taken out of user groups"}, {rewritten, "losing access through a user group's policies"}} {
			if part.n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", part.n, part.what))
			}
		}
		return fmt.Sprintf("the plan takes access away from %s (%s), more than max_removals (%d)", People(people), strings.Join(parts, ", "), opts.MaxRemovals)
	case managed > 0 && removed == managed:
		return fmt.Sprintf("the plan removes every member that is not protected (%d)", managed)
	}
	return ""
}

// People is "1 person", "2 people".
func People(n int) string {
	if n == 1 {
		return "1 person"
	}
	return fmt.Sprintf("%d people", n)
}

func count(b bool) int {
	if b {
		return 1
	}
	return 0
}

// protectedLosses refuses the plan when it takes access from a protected
// member.
func (p *Plan) protectedLosses() error {
	var out []Loss
	for _, l := range p.Losing {
		if l.Protected {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return &ProtectedError{Losses: out}
}
