package reconcile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/diff"
)

// AccountPlan is the plan for one provider's account, or why there is none;
// after apply, its results.
type AccountPlan struct {
	Provider    string
	AccountID   string
	AccountName string
	Plan        *diff.Plan // nil when Err is set (the breaker keeps it)
	Live        *cloudflare.Account
	Owner       string
	// ProtectedIDs are the ids of the protected members of this read
	// (protected emails and the owner), to remember for later reads.
	ProtectedIDs []string
	// Took is how long reading, planning and applying the account took.
	Took time.Duration
	// Err is why the account cannot be applied: a failed read (transient),
	// names the account lacks, or the mass-removal breaker.
	Err error
	// ReadInfo says whether the account was read in full or its last read
	// reused, and why.
	ReadInfo ReadInfo
	// Grants are the grants behind each declared member, by email (with
	// PlanOptions.Grants).
	Grants map[string]Grants
	// Results are the applied changes, in order (Planner.Apply).
	Results []Result

	// cacheKey names the planner's read cache of the account.
	cacheKey string
}

// Display is an access as people read it: zones by name where the live
// account knows them (plans, status, guardrails, saved plans).
func (ap *AccountPlan) Display(a desired.Access) desired.Access {
	if ap.Live == nil {
		return a
	}
	return desired.Access{Role: a.Role, Resource: ap.Live.Display(a.Resource)}
}

// LiveMembers are the account's members as read, in diff terms: their own
// access and what their user groups give them (nil before a read).
func (ap *AccountPlan) LiveMembers() []diff.Live {
	if ap.Live == nil {
		return nil
	}
	return lives(ap.Live)
}

// Grants are the grants behind a member's access: where ("file:line") and
// why.
type Grants struct {
	Sources, Reasons []string
}

// accountOptions tune the plan of one account.
type accountOptions struct {
	allowMassRemoval bool
	// reinvite says whether a pending member's invitation should be sent
	// again (nil: never).
	reinvite func(accountID string, m diff.Live) bool
	// owner, when ownerKnown, is the token's user from an earlier read (a
	// token's owner never changes): GET /user is skipped.
	owner      string
	ownerKnown bool
	// protectedIDs are ids of members protected in earlier reads: still
	// protected, whatever their email reads now.
	protectedIDs map[string]bool
	// keepGrants keeps the grants behind each declared member in
	// AccountPlan.Grants.
	keepGrants bool
}

// accountInput is what the plan of one account is computed from: the
// repository's wants and the account's members, in diff terms.
type accountInput struct {
	wants []diff.Want
	lives []diff.Live
	opts  diff.Options
}

// prepare turns provider pid's account, read as live, and repo at now
// into diff terms, setting on ap what the plan needs of the account (its
// name, the token's owner, the protected ids, the grants). It returns nil
// when the account cannot be planned (ap.Err).
func prepare(ctx context.Context, owner func(context.Context) (string, error), repo *desired.Repo, pid string, now time.Time, live *cloudflare.Account, opts accountOptions, ap *AccountPlan) *accountInput {
	pv := repo.Providers[pid]
	ap.Live, ap.AccountName = live, live.Name
	ap.Owner = opts.owner
	if !opts.ownerKnown {
		var err error
		if ap.Owner, err = owner(ctx); err != nil {
			ap.Err = err
			return nil
		}
	}
	wants, groups, err := wantsOf(repo, pid, now, live)
	if err != nil {
		ap.Err = err
		return nil
	}
	if opts.keepGrants {
		ap.Grants = grantsOf(wants)
	}
	ids := maps.Clone(opts.protectedIDs)
	if ids == nil {
		ids = map[string]bool{}
	}
	protected := map[string]bool{}
	for _, e := range append(slices.Clone(pv.Protected), ap.Owner) {
		protected[strings.ToLower(e)] = e != ""
	}
	for _, m := range live.Members {
		if protected[m.Email] {
			ap.ProtectedIDs = append(ap.ProtectedIDs, m.ID)
			ids[m.ID] = true
		}
	}
	var reinvite func(diff.Live) bool
	if opts.reinvite != nil {
		reinvite = func(l diff.Live) bool { return opts.reinvite(pv.AccountID, l) }
	}
	return &accountInput{wants: wants, lives: lives(live), opts: diff.Options{
		Prune: pv.Prune, Protected: pv.Protected, Owner: ap.Owner, ProtectedIDs: ids,
		MaxRemovals: pv.MaxRemovals, AllowMassRemoval: opts.allowMassRemoval,
		Reinvite: reinvite, PruneUserGroups: pv.PruneUserGroups,
		UserGroups: groups, LiveGroups: liveGroups(live), SCIM: pv.SCIM,
	}}
}

// plan computes the account's plan, each change naming the out-of-band
// change it corrects (drift, nil for none).
func (in *accountInput) plan(drift func(diff.Change) *diff.Drift) (*diff.Plan, error) {
	opts := in.opts
	opts.Drift = drift
	return diff.Compute(in.wants, in.lives, opts)
}

// grantsOf are the grants behind each declared member, by email.
func grantsOf(wants []diff.Want) map[string]Grants {
	out := make(map[string]Grants, len(wants))
	for _, w := range wants {
		g := Grants{Reasons: w.Reasons}
		for _, src := range w.Sources {
			g.Sources = append(g.Sources, src.String())
		}
		out[w.Email] = g
	}
	return out
}

// ErrProtected marks a change refused because it would take access from a
// protected member (diff.Change.Protects): it is not made; the rest of the
// plan is.
var ErrProtected = errors.New("refused: it would take access from a protected member")

// Refusal says why a change is refused, at the declaration behind it
// ("" when it is not): the repository must change (or the account).
func Refusal(ap *AccountPlan, c diff.Change) string {
	if len(c.Protects) == 0 {
		return ""
	}
	var parts []string
	for _, pl := range c.Protects {
		what := make([]string, 0, len(pl.Lose)+1)
		for _, a := range pl.Lose {
			what = append(what, ap.Display(a).String())
		}
		if pl.Foreign {
			what = append(what, "policies cfaccess does not write (deny, or unknown scopes)")
		}
		parts = append(parts, fmt.Sprintf("protected member %s would lose %s", pl.Email, strings.Join(what, ", ")))
	}
	msg := strings.Join(parts, "; ")
	switch c.Action {
	case diff.UpdateGroup:
		msg = fmt.Sprintf("user group %q (cloudflare_user_group) would have its policies set so that %s: refused; take them out of the group in Cloudflare, or give the group that access", c.Group, msg)
	case diff.LeaveGroup:
		msg = fmt.Sprintf("taking them out of user group %q: %s: refused", c.Group, msg)
	default:
		msg += ": refused"
	}
	pos := c.GroupPos
	if pos == (desired.Pos{}) && len(c.Sources) > 0 {
		pos = c.Sources[0]
	}
	if pos != (desired.Pos{}) {
		msg = pos.String() + ": " + msg
	}
	return msg
}

// zonesOf lists the zone names the provider's roles name.
func zonesOf(repo *desired.Repo, pid string) []string {
	var out []string
	for _, r := range repo.Roles {
		if !slices.Contains(r.Providers, pid) {
			continue
		}
		for _, res := range r.Resources {
			if res.Kind == desired.ZoneName {
				out = append(out, res.Zone)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// wantsOf turns the desired state of provider pid into diff terms: zones
// resolved to their ids in live, role names and scopes checked against
// the account's permission groups, and each member's access laid out as
// policies — one per repository role's set of resources, so that a role's
// zones are one domain group. Every problem is reported at once, at its
// role's position (DeclarationError).
func wantsOf(repo *desired.Repo, pid string, now time.Time, live *cloudflare.Account) ([]diff.Want, []diff.WantGroup, error) {
	b := &wantBuilder{repo: repo, pid: pid, now: now, live: live, acct: repo.State(now).Accounts[pid], reported: map[string]bool{}, roles: map[string]error{}}
	// The account's permission groups are the authority on scopes: a
	// role the built-in catalogue does not know, or one Cloudflare moved,
	// is caught here before any write.
	for _, d := range repo.CheckScopes(live.Catalogue(), pid) {
		b.report(d)
	}
	wants := b.members()
	groups := b.groups()
	if len(b.diags) > 0 {
		slices.SortStableFunc(b.diags, func(a, b desired.Diagnostic) int { return cmp.Compare(a.String(), b.String()) })
		return wants, groups, &DeclarationError{Diags: b.diags}
	}
	return wants, groups, nil
}

// wantBuilder builds an account's wants, collecting every problem.
type wantBuilder struct {
	repo     *desired.Repo
	pid      string
	now      time.Time
	live     *cloudflare.Account
	acct     *desired.Account
	diags    desired.Diagnostics
	reported map[string]bool
	roles    map[string]error // the account's answer for each role name
}

// want accumulates bindings into a desired member (or group): its access,
// and its policies laid out by repository role.
type want struct {
	w         diff.Want
	layout    map[string]*desired.Policy
	roleOrder []string
}

// role checks that the account has a role (a permission group), once per
// name.
func (b *wantBuilder) role(name string) error {
	err, ok := b.roles[name]
	if !ok {
		_, err = b.live.PermissionGroup(name)
		b.roles[name] = err
	}
	return err
}

// report records a problem, once.
func (b *wantBuilder) report(d desired.Diagnostic) {
	if k := d.String(); !b.reported[k] {
		b.reported[k] = true
		b.diags = append(b.diags, d)
	}
}

// reportRole records a problem of a repository role, at its position.
func (b *wantBuilder) reportRole(roleID string, err error) {
	d := desired.Diagnostic{Severity: desired.Error, Message: err.Error()}
	if r := b.repo.Roles[roleID]; r != nil {
		d.Pos, d.Message = r.Pos, fmt.Sprintf("role %q: %s", roleID, d.Message)
	}
	b.report(d)
}

// add adds a binding's access to x, in the policy of its repository role.
func (b *wantBuilder) add(x *want, bd desired.Binding) {
	if x.layout == nil {
		x.layout = map[string]*desired.Policy{}
	}
	if err := b.role(bd.Access.Role); err != nil {
		b.reportRole(bd.Role, err)
		return
	}
	res, err := b.live.Resolve(bd.Access.Resource)
	if err != nil {
		b.reportRole(bd.Role, err)
		return
	}
	a := desired.Access{Role: bd.Access.Role, Resource: res}
	if !slices.Contains(x.w.Access, a) {
		x.w.Access = append(x.w.Access, a)
	}
	p := x.layout[bd.Role]
	if p == nil {
		p = &desired.Policy{Name: bd.Role}
		x.layout[bd.Role] = p
		x.roleOrder = append(x.roleOrder, bd.Role)
	}
	if !slices.Contains(p.Roles, a.Role) {
		p.Roles = append(p.Roles, a.Role)
	}
	if !slices.Contains(p.Resources, res) {
		p.Resources = append(p.Resources, res)
	}
	if !slices.Contains(x.w.Sources, bd.Source) {
		x.w.Sources = append(x.w.Sources, bd.Source)
	}
	if bd.Reason != "" && !slices.Contains(x.w.Reasons, bd.Reason) {
		x.w.Reasons = append(x.w.Reasons, bd.Reason)
	}
}

// members are the wants of the declared members, by email.
func (b *wantBuilder) members() []diff.Want {
	wants := make([]diff.Want, 0, len(b.acct.Members))
	for _, email := range slices.Sorted(maps.Keys(b.acct.Members)) {
		wants = append(wants, b.member(b.acct.Members[email]))
	}
	return wants
}

// member is one declared member's want.
func (b *wantBuilder) member(m *desired.Member) diff.Want {
	x := &want{w: diff.Want{Email: m.Email}}
	for _, bd := range m.Bindings {
		if bd.Group == "" {
			b.add(x, bd)
			continue
		}
		// Held through a mirrored user group (whose policies come
		// from its grants: groups).
		if name := b.repo.Groups[bd.Group].CloudflareName(); !slices.Contains(x.w.Groups, name) {
			x.w.Groups = append(x.w.Groups, name)
		}
		if !slices.Contains(x.w.Sources, bd.Source) {
			x.w.Sources = append(x.w.Sources, bd.Source)
		}
	}
	x.w.Policies = mergePolicies(x.layout, x.roleOrder)
	if len(x.w.Access) == 0 && len(x.w.Groups) > 0 {
		// Every member holds at least one policy of its own: one whose
		// access is all through user groups gets Minimal Account Access
		// ("Can view account, and nothing else"), as Cloudflare's own
		// SCIM provisioning gives its users
		// (developers.cloudflare.com fundamentals/account/account-security/scim-setup).
		minimal := desired.Access{Role: diff.MinimalRole, Resource: desired.Resource{Kind: desired.WholeAccount}}
		if _, err := b.live.PermissionGroup(diff.MinimalRole); err != nil {
			b.report(desired.Diagnostic{Pos: b.repo.Groups[firstGroup(m.Bindings)].Pos, Severity: desired.Error,
				Message: fmt.Sprintf("%s holds access only through user groups, and every member needs a policy of its own: %v", m.Email, err)})
		}
		x.w.Access, x.w.Minimal = []desired.Access{minimal}, true
		x.w.Policies = []desired.Policy{{Name: "minimal", Roles: []string{diff.MinimalRole}, Resources: []desired.Resource{minimal.Resource}}}
	}
	if len(m.Bindings) == 0 {
		// Declared, nothing active: say which grants, and why.
		x.w.Sources, x.w.Reasons = b.repo.Inactive(b.pid, m.Email, b.now)
	}
	return x.w
}

// groups are the wants of the mirrored user groups: every one a grant to
// reaches this account, active or not — its policies are its active
// grants' roles (none when all have expired: the group is then emptied of
// policies, not left alone), whoever of its members is also named
// directly. Sorted by name.
func (b *wantBuilder) groups() []diff.WantGroup {
	groups := map[string]*want{} // by repository id
	for _, g := range b.repo.Grants {
		if !b.repo.GrantReaches(g, b.pid) {
			continue
		}
		for _, gid := range g.Groups {
			if grp := b.repo.Groups[gid]; grp == nil || !grp.UserGroup {
				continue
			}
			x := groups[gid]
			if x == nil {
				x = &want{}
				groups[gid] = x
			}
			if !g.ActiveAt(b.now) {
				continue
			}
			for _, roleID := range g.Roles {
				for _, a := range b.repo.RoleAccess(roleID, b.pid) {
					b.add(x, desired.Binding{Provider: b.pid, Role: roleID, Access: a, Active: true, Reason: g.Reason, Source: g.Pos, Group: gid})
				}
			}
		}
	}
	var out []diff.WantGroup
	for id, g := range groups {
		grp := b.repo.Groups[id]
		wg := diff.WantGroup{Name: grp.CloudflareName(), Access: g.w.Access, Policies: mergePolicies(g.layout, g.roleOrder),
			Sources: g.w.Sources, Reasons: g.w.Reasons, Pos: grp.Pos}
		for _, e := range grp.Members {
			if m := b.acct.Members[e]; m != nil && slices.ContainsFunc(m.Bindings, func(bd desired.Binding) bool { return bd.Active }) {
				wg.Members = append(wg.Members, e)
			}
		}
		out = append(out, wg)
	}
	slices.SortFunc(out, func(a, b diff.WantGroup) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// firstGroup is the mirrored group of the first binding through one.
func firstGroup(bs []desired.Binding) string {
	for _, b := range bs {
		if b.Group != "" {
			return b.Group
		}
	}
	return ""
}

// DeclarationError is a plan that failed because of the repository: a role
// the account does not have, a zone not in it, a role outside its scope by
// the account's own permission groups. A person must change the
// repository; the daemon refuses the revision and keeps the last good one.
type DeclarationError struct {
	Diags desired.Diagnostics
}

func (e *DeclarationError) Error() string {
	lines := make([]string, len(e.Diags))
	for i, d := range e.Diags {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// mergePolicies joins the policies of repository roles that cover the same
// resources (one policy, one resource group), named after the first role
// by id; the result is sorted, so plans are stable.
func mergePolicies(layout map[string]*desired.Policy, roles []string) []desired.Policy {
	slices.Sort(roles)
	var out []desired.Policy
	index := map[string]int{}
	for _, id := range roles {
		p := layout[id]
		slices.SortFunc(p.Resources, desired.Resource.Compare)
		key := resourcesKey(p.Resources)
		if i, ok := index[key]; ok {
			out[i].Roles = append(out[i].Roles, p.Roles...)
			continue
		}
		index[key] = len(out)
		out = append(out, *p)
	}
	for i := range out {
		out[i].Roles = slices.Compact(slices.Sorted(slices.Values(out[i].Roles)))
	}
	return out
}

// resourcesKey identifies a sorted list of resources.
func resourcesKey(rs []desired.Resource) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString(strconv.Itoa(int(r.Kind)))
		b.WriteByte(':')
		b.WriteString(r.Zone)
		b.WriteByte(0)
	}
	return b.String()
}

// liveGroups turns the account's user groups into diff terms.
func liveGroups(live *cloudflare.Account) []diff.LiveGroup {
	out := make([]diff.LiveGroup, len(live.UserGroups))
	for i, g := range live.UserGroups {
		lg := diff.LiveGroup{ID: g.ID, Name: g.Name, Access: g.Access, Foreign: g.Denies > 0 || len(g.Unknown) > 0}
		for _, m := range g.Members {
			lg.Members = append(lg.Members, diff.LiveGroupMember{ID: m.ID, Email: m.Email, Status: m.Status})
		}
		out[i] = lg
	}
	return out
}

// lives turns live members into diff terms: their own access, and what
// their user groups give them.
func lives(live *cloudflare.Account) []diff.Live {
	groups := map[string][]*cloudflare.UserGroup{}
	for i := range live.UserGroups {
		g := &live.UserGroups[i]
		for _, m := range g.Members {
			groups[m.ID] = append(groups[m.ID], g)
		}
	}
	out := make([]diff.Live, len(live.Members))
	for i, m := range live.Members {
		l := diff.Live{ID: m.ID, Email: m.Email, Status: m.Status, Access: m.Access, Foreign: m.Denies > 0 || len(m.Unknown) > 0}
		for _, g := range groups[m.ID] {
			for _, a := range g.Access {
				l.Inherited = append(l.Inherited, diff.Inherited{Access: a, Group: g.Name, GroupID: g.ID})
			}
		}
		out[i] = l
	}
	return out
}
