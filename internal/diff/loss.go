package diff

import (
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
	// change may take anything from them (Change.Protects).
	Protected bool
	// Removed is set when the member leaves the account; Lose is what
	// they lose (all of it for a removal); Foreign that they also lose
	// policies cfaccess does not write (deny policies, or scopes it does
	// not know), which a rewrite drops: counted as a loss, as nothing
	// says what they gave.
	Removed bool
	Lose    []desired.Access
	Foreign bool
	// Causes are the plan's changes that take it away, as indexes into
	// Plan.Changes.
	Causes []int
}

// ProtectedLoss is what a change would take from a protected member: the
// change is refused, and the rest of the plan goes on.
type ProtectedLoss struct {
	Email   string
	Lose    []desired.Access
	Foreign bool
}

// losses computes, for every live member, what it holds now (its own
// access and its user groups') and what it will hold once the plan's
// changes are made — removals, its own policies set, user groups left,
// joined, or their policies set — and returns those who lose anything.
// Changes refused (Protects) are left out: they will not be made.
func (p *Plan) losses(live []Live, groups []LiveGroup, protected func(*Live) bool) []Loss {
	type touch struct {
		own    int            // the Remove, Update or Reinvite of the member (-1: none)
		leaves map[string]int // group id -> its LeaveGroup
		joins  []int          // its JoinGroups
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
	rewritten := map[string]int{} // group id -> its UpdateGroup
	created := map[string]int{}   // group name -> its CreateGroup
	for i, c := range p.Changes {
		if len(c.Protects) > 0 {
			continue
		}
		switch c.Action {
		case Remove, Update, Reinvite:
			at(c.MemberID).own = i
		case LeaveGroup:
			at(c.MemberID).leaves[c.GroupID] = i
		case JoinGroup:
			at(c.MemberID).joins = append(at(c.MemberID).joins, i)
		case UpdateGroup:
			rewritten[c.GroupID] = i
		case CreateGroup:
			created[c.Group] = i
		}
	}
	byID := map[string]*LiveGroup{}
	memberOf := map[string][]string{} // member id -> group ids
	for i := range groups {
		g := &groups[i]
		byID[g.ID] = g
		for _, m := range g.Members {
			memberOf[m.ID] = append(memberOf[m.ID], g.ID)
		}
	}
	var out []Loss
	for i := range live {
		l := &live[i]
		gids := slices.Clone(memberOf[l.ID])
		held := map[string][]desired.Access{} // group id -> what it gives the member now
		for _, in := range l.Inherited {
			if !slices.Contains(gids, in.GroupID) {
				gids = append(gids, in.GroupID)
			}
			held[in.GroupID] = append(held[in.GroupID], in.Access)
		}
		t := touches[l.ID]
		if t == nil && !slices.ContainsFunc(gids, func(g string) bool { _, ok := rewritten[g]; return ok }) {
			continue
		}
		if t == nil {
			t = &touch{own: -1}
		}
		loss := Loss{Email: strings.ToLower(l.Email), MemberID: l.ID, Protected: protected(l)}
		if t.own >= 0 && p.Changes[t.own].Action == Remove {
			loss.Removed, loss.Lose, loss.Causes, loss.Foreign = true, l.Effective(), []int{t.own}, l.Foreign
			out = append(out, loss)
			continue
		}
		foreign := func(gid string) bool { g := byID[gid]; return g != nil && g.Foreign }
		ownAfter := l.Access
		if t.own >= 0 {
			ownAfter = p.Changes[t.own].Access
			if l.Foreign {
				loss.Foreign, loss.Causes = true, append(loss.Causes, t.own)
			}
		}
		after := slices.Clone(ownAfter)
		for _, gid := range gids {
			if j, left := t.leaves[gid]; left {
				if foreign(gid) {
					loss.Foreign, loss.Causes = true, append(loss.Causes, j)
				}
				continue
			}
			if j, ok := rewritten[gid]; ok {
				after = append(after, p.Changes[j].Access...)
				if foreign(gid) {
					loss.Foreign, loss.Causes = true, append(loss.Causes, j)
				}
				continue
			}
			after = append(after, held[gid]...)
		}
		for _, j := range t.joins {
			c := p.Changes[j]
			switch k, ok := rewritten[c.GroupID]; {
			case ok:
				after = append(after, p.Changes[k].Access...)
			case c.GroupID == "":
				if k, ok := created[c.Group]; ok {
					after = append(after, p.Changes[k].Access...)
				}
			case byID[c.GroupID] != nil:
				after = append(after, byID[c.GroupID].Access...)
			}
		}
		_, lose := setDiff(after, l.Effective())
		if len(lose) == 0 && !loss.Foreign {
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
		for _, gid := range gids {
			if j, left := t.leaves[gid]; left && takes(held[gid], nil) {
				loss.Causes = append(loss.Causes, j)
			} else if j, ok := rewritten[gid]; ok && !left && takes(held[gid], p.Changes[j].Access) {
				loss.Causes = append(loss.Causes, j)
			}
		}
		loss.Causes = slices.Compact(slices.Sorted(slices.Values(loss.Causes)))
		out = append(out, loss)
	}
	slices.SortFunc(out, func(a, b Loss) int { return strings.Compare(a.Email, b.Email) })
	return out
}

// refuseProtected marks the changes that would take anything from a
// protected member (Protects): they are not made, and say why; the rest of
// the plan goes on — an expiry, a correction elsewhere — so that no one
// can stop an account's enforcement by putting a protected member where a
// change would touch them. It reports whether any was refused.
func (p *Plan) refuseProtected() bool {
	refused := false
	for _, l := range p.Losing {
		if !l.Protected {
			continue
		}
		for _, i := range l.Causes {
			p.Changes[i].Protects = append(p.Changes[i].Protects, ProtectedLoss{Email: l.Email, Lose: l.Lose, Foreign: l.Foreign})
			refused = true
		}
	}
	return refused
}

// Refused counts the changes refused for taking access from a protected
// member.
func (p *Plan) Refused() int {
	n := 0
	for _, c := range p.Changes {
		if len(c.Protects) > 0 {
			n++
		}
	}
	return n
}

// breaker says why the plan takes access away from too many, or "".
func (p *Plan) breaker(managed int, opts Options) string {
	var people, removed, own, left, rewritten int
	for _, l := range p.Losing {
		if l.Protected {
			continue // their changes are refused
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
