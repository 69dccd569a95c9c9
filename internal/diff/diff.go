package diff

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

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
	// LeaveGroup takes a member out of a user group whose access the
	// repository does not declare for them (prune_user_groups).
	LeaveGroup Action = "leave_group"
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
	// Groups are the mirrored user groups (Cloudflare names) the member
	// holds access through; Minimal is set when its own Access is only the
	// placeholder every member needs (Minimal Account Access).
	Groups  []string
	Minimal bool
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
	// Inherited is the access the member holds through user groups (not
	// in Access), each with its group.
	Inherited []Inherited
}

// Inherited is access held through a user group.
type Inherited struct {
	Access         desired.Access
	Group, GroupID string
}

// effective is the member's own access and its groups', sorted, once each.
func (l Live) effective() []desired.Access {
	out := slices.Clone(l.Access)
	for _, in := range l.Inherited {
		out = append(out, in.Access)
	}
	return sorted(out)
}

// GroupAccess is access a member holds through a user group that the
// repository does not declare for them, left in place: the group is not
// managed (prune_user_groups off), or the member is not.
type GroupAccess struct {
	Email, MemberID string
	Group, GroupID  string
	Access          []desired.Access
	// Missing is set for a declared member not in the group, which the
	// plan does not put in (the identity provider owns the group).
	Missing bool
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
	// PruneUserGroups takes declared members out of the user groups that
	// give them access the repository does not declare for them.
	PruneUserGroups bool
	// UserGroups are the mirrored user groups the repository declares,
	// LiveGroups the account's user groups.
	UserGroups []WantGroup
	LiveGroups []LiveGroup
	// SCIM says an identity provider owns the user groups and their
	// members (reconcile.scim): they are reported, not written.
	SCIM bool
	// Drift, when set, names who made the out-of-band change a change
	// corrects (from the account's audit log), or returns nil.
	Drift func(Change) *Drift
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
	// Risks are what a reviewer should look at twice: administrator
	// roles, write access to the whole account, a lookalike email, a new
	// email domain.
	Risks []string
	// Group and GroupID name the user group a LeaveGroup change takes the
	// member out of (Remove is the access it gave them), or the group a
	// group change writes; GroupPos is where a mirrored group is declared.
	Group, GroupID string
	GroupPos       desired.Pos
	// Inherited is the access the member holds through user groups
	// (update, remove), for display: a removal ends it too.
	Inherited []Inherited
	// Drift, when set, is who last changed this member or group out of
	// band, from the account's audit log (Options.Drift): the change is
	// correcting it.
	Drift *Drift
	// Protects, when set, refuses the change: it would take access from
	// these protected members (on any path: a user group's policies, its
	// membership). It is not made; the rest of the plan is.
	Protects []ProtectedLoss
}

// Drift is an out-of-band change found in the account's audit log.
type Drift struct {
	// Actor is who made it: an email, or "token <name> of <email>".
	Actor     string
	ActorType string // user, account, cloudflare_admin, system
	// Context is how: dash, api_token, api_key, oauth.
	Context string
	IP      string
	At      time.Time
	// Action is the log's description ("Add Member").
	Action string
}

// Grants reports whether the change gives access: an invitation, a
// membership of a user group, a group's creation, or an update that adds
// anything. Removals, leaving groups and updates that only take away do
// not.
func (c Change) Grants() bool {
	switch c.Action {
	case Remove, LeaveGroup:
		return false
	case Update, UpdateGroup:
		return len(c.Add) > 0
	}
	return true
}

// Plan is what to do to one account, in application order: removals,
// updates, invites (and re-invites), each sorted by email.
type Plan struct {
	Changes []Change
	// Unmanaged are live members nobody declared, left alone (prune off).
	Unmanaged []Live
	// Provisioned are members nobody declared that the identity provider
	// provisioned (scim: Minimal Account Access alone), left alone.
	Provisioned []Live
	// GroupAccess is undeclared access through user groups, left in
	// place (reported: cfaccess does not manage the group).
	GroupAccess []GroupAccess
	// Waiting are declared members of mirrored groups who join them once
	// they accept their invitation; GroupsWaiting the mirrored groups an
	// identity provider has yet to create (scim).
	Waiting       []Waiting
	GroupsWaiting []string

	// Protected are the live members the plan did not look at: protected
	// emails and the token's owner.
	Protected []string
	// Losing are the people the plan takes access away from, on any
	// path (what the mass-removal breaker counts), sorted by email.
	Losing []Loss
	// Breaker is set when the plan was refused for taking access from
	// too many.
	Breaker string
}

// LosingAccess counts the people, protected members aside, the plan takes
// access away from: what max_removals limits.
func (p *Plan) LosingAccess() int {
	n := 0
	for _, l := range p.Losing {
		if !l.Protected {
			n++
		}
	}
	return n
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
// takes access away from more people than max_removals, or removes every
// member that is not protected.
var ErrMassRemoval = errors.New("mass removal refused")

// Compute plans the changes that make live equal to want.
func Compute(want []Want, live []Live, opts Options) (*Plan, error) {
	pr := newProtection(opts)
	wantBy := make(map[string]*Want, len(want))
	for i := range want {
		wantBy[strings.ToLower(want[i].Email)] = &want[i]
	}
	managedGroups := map[string]bool{}
	for _, g := range opts.UserGroups {
		managedGroups[g.Name] = true
	}
	p := &Plan{}
	liveBy := make(map[string]*Live, len(live))
	managed := 0
	for i := range live {
		l := &live[i]
		email := strings.ToLower(l.Email)
		if pr.covers(email, l.ID) {
			p.Protected = append(p.Protected, email)
			continue
		}
		managed++
		liveBy[email] = l
		p.member(l, wantBy[email], opts, managedGroups)
	}
	p.invite(wantBy, liveBy, pr)
	if err := p.groups(opts.UserGroups, opts.LiveGroups, live, opts, pr); err != nil {
		return nil, err
	}
	p.sort()
	p.annotate(live, opts.Drift)
	if err := p.guard(live, managed, opts, pr); err != nil {
		return p, err
	}
	return p, nil
}

// protection is who no change may touch: protected emails and the token's
// owner (lower case), and protected member ids.
type protection struct {
	emails, ids map[string]bool
}

// newProtection is the protection opts ask for.
func newProtection(opts Options) protection {
	emails := map[string]bool{}
	for _, e := range opts.Protected {
		emails[strings.ToLower(e)] = true
	}
	if opts.Owner != "" {
		emails[strings.ToLower(opts.Owner)] = true
	}
	return protection{emails: emails, ids: opts.ProtectedIDs}
}

// covers reports whether no change may touch the member with this email
// (lower case) and id.
func (pr protection) covers(email, id string) bool {
	return pr.emails[email] || pr.ids[id]
}

// member plans one live member that is not protected, declared (w) or
// not (nil): removed, updated, re-invited, or left alone and reported.
func (p *Plan) member(l *Live, w *Want, opts Options, managedGroups map[string]bool) {
	email := strings.ToLower(l.Email)
	declared := w != nil
	if declared && len(w.Access) > 0 {
		p.groupDrift(l, w, opts, managedGroups)
	}
	switch {
	case !declared && opts.SCIM && minimalOnly(l.Access):
		// Provisioned by the identity provider (what SCIM gives):
		// removing them would fight it. What their groups give them is
		// still shown, as access outside cfaccess's control.
		p.Provisioned = append(p.Provisioned, *l)
		p.outside(l, managedGroups)
	case !declared && opts.Prune, declared && len(w.Access) == 0:
		c := Change{Action: Remove, Email: email, MemberID: l.ID, Status: l.Status, Remove: sorted(l.Access), Inherited: l.Inherited}
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
		// Access the member already holds through a user group is not
		// added as its own (no churn when a group gives what is also
		// declared directly); what its own policies hold beyond the
		// declarations is removed.
		add, _ := setDiff(w.Access, l.effective())
		_, remove := setDiff(w.Access, l.Access)
		if len(add) > 0 || len(remove) > 0 || l.Foreign {
			p.Changes = append(p.Changes, Change{Action: Update, Email: email, MemberID: l.ID, Status: l.Status,
				Add: add, Remove: remove, Access: sorted(w.Access), Policies: w.Policies, Sources: w.Sources, Reasons: w.Reasons,
				Inherited: l.Inherited})
		}
	}
}

// invite plans an invitation for every declared member with access that
// the account does not have (liveBy: its members that are not protected)
// and that is not protected.
func (p *Plan) invite(wantBy map[string]*Want, liveBy map[string]*Live, pr protection) {
	for email, w := range wantBy {
		if pr.emails[email] || liveBy[email] != nil || len(w.Access) == 0 {
			continue
		}
		p.Changes = append(p.Changes, Change{Action: Invite, Email: email, Add: sorted(w.Access), Access: sorted(w.Access),
			Policies: w.Policies, Sources: w.Sources, Reasons: w.Reasons})
	}
}

// sort puts the changes in application order, and what the plan reports
// by email.
func (p *Plan) sort() {
	// Groups are written before members join them; members join once they
	// are members (accepted): invitations come last.
	order := map[Action]int{Remove: 0, LeaveGroup: 1, Update: 2, CreateGroup: 3, UpdateGroup: 3, JoinGroup: 4, Invite: 5, Reinvite: 5}
	slices.SortFunc(p.Changes, func(a, b Change) int {
		return cmp.Or(cmp.Compare(order[a.Action], order[b.Action]), cmp.Compare(a.Email, b.Email), cmp.Compare(a.Group, b.Group))
	})
	slices.SortFunc(p.Unmanaged, func(a, b Live) int { return cmp.Compare(a.Email, b.Email) })
	slices.SortFunc(p.Provisioned, func(a, b Live) int { return cmp.Compare(a.Email, b.Email) })
	slices.SortFunc(p.GroupAccess, func(a, b GroupAccess) int {
		return cmp.Or(cmp.Compare(a.Email, b.Email), cmp.Compare(a.Group, b.Group))
	})
	slices.Sort(p.Protected)
}

// guard finds the people the plan takes access from (Losing), refuses the
// changes that would take any from a protected member, and trips the
// breaker when the rest take it from too many (managed: the live members
// that are not protected).
func (p *Plan) guard(live []Live, managed int, opts Options, pr protection) error {
	// The breaker counts the people the plan takes any access from, on
	// every path: removals, updates that take away, leaving user groups,
	// and user-group policies rewritten (each member of the group). No
	// plan may take anything from a protected member.
	p.Losing = p.losses(live, opts.LiveGroups, pr)
	for range len(p.Changes) {
		if !p.refuseProtected() {
			break
		}
		// Without the refused changes: what will be made.
		p.Losing = p.losses(live, opts.LiveGroups, pr)
	}
	if p.Breaker = p.breaker(managed, opts); p.Breaker != "" {
		return fmt.Errorf("%w: %s; if that is intended, run apply with --allow-mass-removal", ErrMassRemoval, p.Breaker)
	}
	return nil
}

// groupDrift plans, for a declared member, the user groups that give it
// access the repository does not declare for it: a LeaveGroup change when
// groups are pruned, GroupAccess to report otherwise. A group whose access
// is all declared is left alone (the member's own policies may also hold
// it: harmless).
func (p *Plan) groupDrift(l *Live, w *Want, opts Options, managed map[string]bool) {
	excess := byGroup(l.Inherited, func(in Inherited) bool {
		// A mirrored group's members are planned with the group.
		return managed[in.Group] || slices.Contains(w.Access, in.Access)
	})
	for _, g := range excess {
		if opts.PruneUserGroups && !opts.SCIM {
			p.Changes = append(p.Changes, Change{Action: LeaveGroup, Email: strings.ToLower(l.Email), MemberID: l.ID, Status: l.Status,
				Remove: sorted(g.access), Group: g.name, GroupID: g.id, Sources: w.Sources, Reasons: w.Reasons})
			continue
		}
		p.reportGroupAccess(l, g)
	}
}

// outside reports the access a member holds through user groups that are
// not mirrored.
func (p *Plan) outside(l *Live, managed map[string]bool) {
	for _, g := range byGroup(l.Inherited, func(in Inherited) bool { return managed[in.Group] }) {
		p.reportGroupAccess(l, g)
	}
}

// heldThrough is the access a member holds through one user group.
type heldThrough struct {
	id, name string
	access   []desired.Access
}

// byGroup gathers inherited access by user group, in the order the groups
// first appear, leaving out what skip says.
func byGroup(inherited []Inherited, skip func(Inherited) bool) []heldThrough {
	var out []heldThrough
	for _, in := range inherited {
		if skip(in) {
			continue
		}
		i := slices.IndexFunc(out, func(h heldThrough) bool { return h.id == in.GroupID && h.name == in.Group })
		if i < 0 {
			i = len(out)
			out = append(out, heldThrough{id: in.GroupID, name: in.Group})
		}
		out[i].access = append(out[i].access, in.Access)
	}
	return out
}

// reportGroupAccess reports access a member holds through a user group,
// left in place.
func (p *Plan) reportGroupAccess(l *Live, g heldThrough) {
	p.GroupAccess = append(p.GroupAccess, GroupAccess{Email: strings.ToLower(l.Email), MemberID: l.ID, Group: g.name, GroupID: g.id, Access: sorted(g.access)})
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
