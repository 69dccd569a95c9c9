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
func (p *Plan) losses(live []Live, groups []LiveGroup, pr protection) []Loss {
	e := p.effects(groups)
	var out []Loss
	for i := range live {
		if loss, ok := e.loss(&live[i], pr); ok {
			out = append(out, loss)
		}
	}
	slices.SortFunc(out, func(a, b Loss) int { return strings.Compare(a.Email, b.Email) })
	return out
}

// effects are the plan's changes that will be made, as indexes into
// Plan.Changes, by the member or user group they touch; and the
// account's user groups.
type effects struct {
	changes   []Change
	members   map[string]*touch     // member id -> its changes
	rewritten map[string]int        // group id -> its UpdateGroup
	created   map[string]int        // group name -> its CreateGroup
	groups    map[string]*LiveGroup // group id -> the group
	memberOf  map[string][]string   // member id -> group ids
}

// touch is the changes of one member.
type touch struct {
	own    int            // the Remove, Update or Reinvite of the member (-1: none)
	leaves map[string]int // group id -> its LeaveGroup
	joins  []int          // its JoinGroups
}

// effects indexes the plan's changes, those not refused, and the
// account's user groups (groups).
func (p *Plan) effects(groups []LiveGroup) effects {
	e := effects{changes: p.Changes, members: map[string]*touch{}, rewritten: map[string]int{}, created: map[string]int{},
		groups: map[string]*LiveGroup{}, memberOf: map[string][]string{}}
	for i, c := range p.Changes {
		if len(c.Protects) > 0 {
			continue
		}
		switch c.Action {
		case Remove, Update, Reinvite:
			e.member(c.MemberID).own = i
		case LeaveGroup:
			e.member(c.MemberID).leaves[c.GroupID] = i
		case JoinGroup:
			t := e.member(c.MemberID)
			t.joins = append(t.joins, i)
		case UpdateGroup:
			e.rewritten[c.GroupID] = i
		case CreateGroup:
			e.created[c.Group] = i
		}
	}
	for i := range groups {
		g := &groups[i]
		e.groups[g.ID] = g
		for _, m := range g.Members {
			e.memberOf[m.ID] = append(e.memberOf[m.ID], g.ID)
		}
	}
	return e
}

// member is the changes of a member, made on first use.
func (e *effects) member(id string) *touch {
	t := e.members[id]
	if t == nil {
		t = &touch{own: -1, leaves: map[string]int{}}
		e.members[id] = t
	}
	return t
}

// loss is what the plan takes from a live member, if anything.
func (e *effects) loss(l *Live, pr protection) (Loss, bool) {
	// A member no change touches, in no group whose policies are
	// rewritten, loses nothing.
	gids, held := memberGroups(l, e.memberOf[l.ID])
	t := e.members[l.ID]
	if t == nil && !slices.ContainsFunc(gids, func(g string) bool { _, ok := e.rewritten[g]; return ok }) {
		return Loss{}, false
	}
	if t == nil {
		t = &touch{own: -1}
	}
	email := strings.ToLower(l.Email)
	loss := Loss{Email: email, MemberID: l.ID, Protected: pr.covers(email, l.ID)}
	if t.own >= 0 && e.changes[t.own].Action == Remove {
		loss.Removed, loss.Lose, loss.Causes, loss.Foreign = true, l.effective(), []int{t.own}, l.Foreign
		return loss, true
	}
	// What it will hold: what each of its sources gives after the plan,
	// and the groups it joins. A change that rewrites policies cfaccess
	// does not write drops them: a loss, as nothing says what they gave.
	var buf [4]source // most members hold access through few groups: no allocation
	sources := e.sources(buf[:0], l, t, gids, held)
	var after []desired.Access
	for _, s := range sources {
		after = append(after, s.after...)
		if s.change >= 0 && s.foreign {
			loss.Foreign, loss.Causes = true, append(loss.Causes, s.change)
		}
	}
	after = e.appendJoined(after, t)
	_, lose := setDiff(after, l.effective())
	if len(lose) == 0 && !loss.Foreign {
		return Loss{}, false
	}
	loss.Lose = lose
	// Its causes: the changes that take away any of it.
	for _, s := range sources {
		if s.change >= 0 && takes(lose, s.before, s.after) {
			loss.Causes = append(loss.Causes, s.change)
		}
	}
	loss.Causes = slices.Compact(slices.Sorted(slices.Values(loss.Causes)))
	return loss, true
}

// memberGroups are the user groups a member is in (listed: as the
// groups' members say; then as its inherited access says), and what each
// gives it now.
func memberGroups(l *Live, listed []string) (gids []string, held map[string][]desired.Access) {
	gids = slices.Clone(listed)
	for _, in := range l.Inherited {
		if !slices.Contains(gids, in.GroupID) {
			gids = append(gids, in.GroupID)
		}
		if held == nil {
			held = map[string][]desired.Access{}
		}
		held[in.GroupID] = append(held[in.GroupID], in.Access)
	}
	return gids, held
}

// source is one way a member holds access, its own policies or one of its
// user groups: what it gives before and after the plan, the change that
// sets it (-1: none), and whether it has policies cfaccess does not
// write, which that change drops.
type source struct {
	before, after []desired.Access
	change        int
	foreign       bool
}

// sources appends to out a member's own policies, then each of its user
// groups (gids, giving held now): a group it leaves gives nothing, a
// group whose policies are rewritten gives the new ones.
func (e *effects) sources(out []source, l *Live, t *touch, gids []string, held map[string][]desired.Access) []source {
	own := source{before: l.Access, after: l.Access, change: t.own, foreign: l.Foreign}
	if t.own >= 0 {
		own.after = e.changes[t.own].Access
	}
	out = append(out, own)
	for _, gid := range gids {
		g := source{before: held[gid], after: held[gid], change: -1}
		if j, left := t.leaves[gid]; left {
			g.after, g.change = nil, j
		} else if j, ok := e.rewritten[gid]; ok {
			g.after, g.change = e.changes[j].Access, j
		}
		if lg := e.groups[gid]; lg != nil {
			g.foreign = lg.Foreign
		}
		out = append(out, g)
	}
	return out
}

// appendJoined appends to after what the user groups a member joins will
// give it: their policies as the plan sets them, or as they are.
func (e *effects) appendJoined(after []desired.Access, t *touch) []desired.Access {
	for _, j := range t.joins {
		c := &e.changes[j]
		switch k, ok := e.rewritten[c.GroupID]; {
		case ok:
			after = append(after, e.changes[k].Access...)
		case c.GroupID == "":
			if k, ok := e.created[c.Group]; ok {
				after = append(after, e.changes[k].Access...)
			}
		case e.groups[c.GroupID] != nil:
			after = append(after, e.groups[c.GroupID].Access...)
		}
	}
	return after
}

// takes reports whether going from before to after takes away any of
// lose.
func takes(lose, before, after []desired.Access) bool {
	return slices.ContainsFunc(before, func(a desired.Access) bool {
		return slices.Contains(lose, a) && !slices.Contains(after, a)
	})
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
