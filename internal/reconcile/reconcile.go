package reconcile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cfaccess/reconciler/internal/cfroles"
	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/diff"
)

// AccountPlan is the plan for one provider's account, or why there is none.
type AccountPlan struct {
	Provider    string
	AccountID   string
	AccountName string
	Plan        *diff.Plan // nil when Err is set (the breaker keeps it)
	Live        *cloudflare.Account
	Owner       string
	// Client is the account's API the plan was read with, to apply it.
	Client Account
	// ProtectedIDs are the ids of the protected members of this read
	// (protected emails and the owner), to remember for later reads.
	ProtectedIDs []string
	// Took is how long reading and planning the account took (and, once
	// the caller adds it, applying its plan).
	Took time.Duration
	// Err is why the account cannot be applied: a failed read (transient),
	// names the account lacks, or the mass-removal breaker.
	Err error
	// ReadInfo says whether the account was read in full or its last read
	// reused, and why.
	ReadInfo ReadInfo

	watch   *watch    // the planner's, marked dirty by an apply
	planned time.Time // the plan's now
	// Grants are the grants behind each declared member, by email (with
	// Options.KeepGrants).
	Grants map[string]Grants
}

// Display is an access as people read it: zones by name where the live
// account knows them (plans, status, guardrails, saved plans).
func (ap *AccountPlan) Display(a desired.Access) desired.Access {
	if ap.Live == nil {
		return a
	}
	return desired.Access{Role: a.Role, Resource: ap.Live.Display(a.Resource)}
}

// Grants are the grants behind a member's access: where ("file:line") and
// why.
type Grants struct {
	Sources, Reasons []string
}

// Options for planning.
type Options struct {
	AllowMassRemoval bool
	// Reinvite says whether a pending member's invitation should be sent
	// again (nil: never).
	Reinvite func(accountID string, m diff.Live) bool
	// Owner, when OwnerKnown, is the token's user from an earlier read
	// (a token's owner never changes): GET /user is skipped.
	Owner      string
	OwnerKnown bool
	// ProtectedIDs are ids of members protected in earlier reads: still
	// protected, whatever their email reads now.
	ProtectedIDs map[string]bool
	// Live, when set, is the account's live state, already read: Plan
	// reads nothing.
	Live *cloudflare.Account
	// KeepGrants keeps the grants behind each declared member in
	// AccountPlan.Grants.
	KeepGrants bool
}

// Account is what reconciling needs of a Cloudflare account's API: the
// subset of *cloudflare.Client it calls (declared here, where it is used).
type Account interface {
	ReadAccount(ctx context.Context, accountID string, opts cloudflare.ReadOptions) (*cloudflare.Account, error)
	Owner(ctx context.Context) (string, error)
	LoadResourceGroups(ctx context.Context, acct *cloudflare.Account) error
	ReloadResourceGroups(ctx context.Context, acct *cloudflare.Account) error
	CreateResourceGroup(ctx context.Context, accountID, name string, rs []desired.Resource) (cloudflare.ResourceGroup, error)
	Invite(ctx context.Context, accountID, email string, policies []cloudflare.Policy) (string, error)
	ReplacePolicies(ctx context.Context, accountID, memberID, status string, policies []cloudflare.Policy) error
	Remove(ctx context.Context, accountID, memberID string) error
	LeaveUserGroup(ctx context.Context, accountID, groupID, memberID string) error
	JoinUserGroup(ctx context.Context, accountID, groupID, memberID string) error
	CreateUserGroup(ctx context.Context, acct *cloudflare.Account, name string, policies []cloudflare.Policy) (cloudflare.UserGroup, error)
	UpdateUserGroup(ctx context.Context, acct *cloudflare.Account, groupID, name string, policies []cloudflare.Policy) (cloudflare.UserGroup, error)
	GetMember(ctx context.Context, acct *cloudflare.Account, memberID string) (cloudflare.Member, error)
	FindMember(ctx context.Context, accountID, email string) (cloudflare.Member, error)
}

var _ Account = (*cloudflare.Client)(nil)

// Plan reads the account of provider pid and plans it against repo at now.
func Plan(ctx context.Context, client Account, repo *desired.Repo, pid string, now time.Time, opts Options) *AccountPlan {
	start := time.Now()
	pv := repo.Providers[pid]
	ap := &AccountPlan{Provider: pid, AccountID: pv.AccountID, Client: client}
	defer func() { ap.Took = time.Since(start) }()
	live := opts.Live
	if live == nil {
		var err error
		if live, err = client.ReadAccount(ctx, pv.AccountID, cloudflare.ReadOptions{Zones: zonesOf(repo, pid), OrganizationID: pv.OrganizationID}); err != nil {
			ap.Err = err
			return ap
		}
	}
	ap.Live, ap.AccountName = live, live.Name
	owner := opts.Owner
	if !opts.OwnerKnown {
		var err error
		if owner, err = client.Owner(ctx); err != nil {
			ap.Err = err
			return ap
		}
	}
	ap.Owner = owner
	wants, groups, err := Wants(repo, pid, now, live)
	if err != nil {
		ap.Err = err
		return ap
	}
	if opts.KeepGrants {
		ap.Grants = make(map[string]Grants, len(wants))
		for _, w := range wants {
			g := Grants{Reasons: w.Reasons}
			for _, src := range w.Sources {
				g.Sources = append(g.Sources, src.String())
			}
			ap.Grants[w.Email] = g
		}
	}
	protected := map[string]bool{}
	for _, e := range append(slices.Clone(pv.Protected), owner) {
		protected[strings.ToLower(e)] = e != ""
	}
	ids := maps.Clone(opts.ProtectedIDs)
	if ids == nil {
		ids = map[string]bool{}
	}
	for _, m := range live.Members {
		if protected[m.Email] {
			ap.ProtectedIDs = append(ap.ProtectedIDs, m.ID)
			ids[m.ID] = true
		}
	}
	ap.Plan, ap.Err = diff.Compute(wants, Lives(live), diff.Options{
		Prune: pv.Prune, Protected: pv.Protected, Owner: owner, ProtectedIDs: ids,
		MaxRemovals: pv.MaxRemovals, AllowMassRemoval: opts.AllowMassRemoval,
		Reinvite: reinvite(pv.AccountID, opts.Reinvite), PruneUserGroups: pv.PruneUserGroups,
		UserGroups: groups, LiveGroups: LiveGroups(live), SCIM: pv.SCIM,
	})
	annotateRisks(ap)
	return ap
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

// Wants turns the desired state of provider pid into diff terms: zones
// resolved to their ids in live, role names and scopes checked against
// the account's permission groups, and each member's access laid out as
// policies — one per repository role's set of resources, so that a role's
// zones are one domain group. Every problem is reported at once, at its
// role's position.
func Wants(repo *desired.Repo, pid string, now time.Time, live *cloudflare.Account) ([]diff.Want, []diff.WantGroup, error) {
	acct := repo.State(now).Accounts[pid]
	var diags desired.Diagnostics
	reported := map[string]bool{}
	report := func(d desired.Diagnostic) {
		if k := d.String(); !reported[k] {
			reported[k] = true
			diags = append(diags, d)
		}
	}
	reportRole := func(roleID string, err error) {
		d := desired.Diagnostic{Severity: desired.Error, Message: err.Error()}
		if r := repo.Roles[roleID]; r != nil {
			d.Pos, d.Message = r.Pos, fmt.Sprintf("role %q: %s", roleID, d.Message)
		}
		report(d)
	}
	// The account's permission groups are the authority on scopes: a
	// role the built-in catalogue does not know, or one Cloudflare moved,
	// is caught here before any write.
	for _, d := range repo.CheckScopes(liveCatalogue{live}, pid) {
		report(d)
	}
	// want accumulates bindings into a desired member (or group): its
	// access, and its policies laid out by repository role.
	type want struct {
		w         diff.Want
		layout    map[string]*desired.Policy
		roleOrder []string
	}
	add := func(x *want, b desired.Binding) {
		if x.layout == nil {
			x.layout = map[string]*desired.Policy{}
		}
		if _, err := live.PermissionGroup(b.Access.Role); err != nil {
			reportRole(b.Role, err)
			return
		}
		res, err := live.Resolve(b.Access.Resource)
		if err != nil {
			reportRole(b.Role, err)
			return
		}
		a := desired.Access{Role: b.Access.Role, Resource: res}
		if !slices.Contains(x.w.Access, a) {
			x.w.Access = append(x.w.Access, a)
		}
		p := x.layout[b.Role]
		if p == nil {
			p = &desired.Policy{Name: b.Role}
			x.layout[b.Role] = p
			x.roleOrder = append(x.roleOrder, b.Role)
		}
		if !slices.Contains(p.Roles, a.Role) {
			p.Roles = append(p.Roles, a.Role)
		}
		if !slices.Contains(p.Resources, res) {
			p.Resources = append(p.Resources, res)
		}
		if !slices.Contains(x.w.Sources, b.Source) {
			x.w.Sources = append(x.w.Sources, b.Source)
		}
		if b.Reason != "" && !slices.Contains(x.w.Reasons, b.Reason) {
			x.w.Reasons = append(x.w.Reasons, b.Reason)
		}
	}
	var wants []diff.Want
	for _, m := range acct.Members {
		x := &want{w: diff.Want{Email: m.Email}}
		for _, b := range m.Bindings {
			if b.Group == "" {
				add(x, b)
				continue
			}
			// Held through a mirrored user group (whose policies come
			// from its grants, below).
			if name := repo.Groups[b.Group].CloudflareName(); !slices.Contains(x.w.Groups, name) {
				x.w.Groups = append(x.w.Groups, name)
			}
			if !slices.Contains(x.w.Sources, b.Source) {
				x.w.Sources = append(x.w.Sources, b.Source)
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
			if _, err := live.PermissionGroup(diff.MinimalRole); err != nil {
				report(desired.Diagnostic{Pos: repo.Groups[firstGroup(repo, m.Bindings)].Pos, Severity: desired.Error,
					Message: fmt.Sprintf("%s holds access only through user groups, and every member needs a policy of its own: %v", m.Email, err)})
			}
			x.w.Access, x.w.Minimal = []desired.Access{minimal}, true
			x.w.Policies = []desired.Policy{{Name: "minimal", Roles: []string{diff.MinimalRole}, Resources: []desired.Resource{minimal.Resource}}}
		}
		if len(m.Bindings) == 0 {
			// Declared, nothing active: say which grants, and why.
			x.w.Sources, x.w.Reasons = repo.Inactive(pid, m.Email, now)
		}
		wants = append(wants, x.w)
	}
	// Mirrored user groups: every one a grant to reaches this account,
	// active or not — its policies are its active grants' roles (none when
	// all have expired: the group is then emptied of policies, not left
	// alone), whoever of its members is also named directly.
	groups := map[string]*want{} // by repository id
	for _, g := range repo.Grants {
		if !repo.GrantReaches(g, pid) {
			continue
		}
		for _, gid := range g.Groups {
			grp := repo.Groups[gid]
			if grp == nil || !grp.UserGroup {
				continue
			}
			x := groups[gid]
			if x == nil {
				x = &want{}
				groups[gid] = x
			}
			if !g.ActiveAt(now) {
				continue
			}
			for _, roleID := range g.Roles {
				for _, a := range repo.RoleAccess(roleID, pid) {
					add(x, desired.Binding{Provider: pid, Role: roleID, Access: a, Active: true, Reason: g.Reason, Source: g.Pos, Group: gid})
				}
			}
		}
	}
	var wantGroups []diff.WantGroup
	for id, g := range groups {
		wg := diff.WantGroup{Name: repo.Groups[id].CloudflareName(), Access: g.w.Access, Policies: mergePolicies(g.layout, g.roleOrder),
			Sources: g.w.Sources, Reasons: g.w.Reasons, Pos: repo.Groups[id].Pos}
		for _, e := range repo.Groups[id].Members {
			if m := acct.Members[e]; m != nil && slices.ContainsFunc(m.Bindings, func(b desired.Binding) bool { return b.Active }) {
				wg.Members = append(wg.Members, e)
			}
		}
		wantGroups = append(wantGroups, wg)
	}
	slices.SortFunc(wantGroups, func(a, b diff.WantGroup) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(wants, func(a, b diff.Want) int { return cmp.Compare(a.Email, b.Email) })
	if len(diags) > 0 {
		slices.SortStableFunc(diags, func(a, b desired.Diagnostic) int { return cmp.Compare(a.String(), b.String()) })
		return wants, wantGroups, &DeclarationError{Diags: diags}
	}
	return wants, wantGroups, nil
}

// firstGroup is the mirrored group of the first binding through one.
func firstGroup(repo *desired.Repo, bs []desired.Binding) string {
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
		key := fmt.Sprint(p.Resources)
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

// liveCatalogue is the account's own role catalogue: its permission groups
// and their meta.scopes, with the built-in counterparts and former names.
type liveCatalogue struct{ acct *cloudflare.Account }

func (l liveCatalogue) Names() []string {
	out := make([]string, len(l.acct.PermissionGroups))
	for i, pg := range l.acct.PermissionGroups {
		out[i] = pg.Name
	}
	return out
}

func (l liveCatalogue) Renamed(name string) string { return cfroles.Renamed()[name] }

func (l liveCatalogue) Scope(name string) desired.Scope {
	pg, err := l.acct.PermissionGroup(name)
	if err != nil {
		return desired.ScopeUnknown // reported as a missing role instead
	}
	return pg.Scope
}

func (l liveCatalogue) Counterpart(name string) string { return cfroles.Counterpart(name) }

// LiveGroups turns the account's user groups into diff terms.
func LiveGroups(live *cloudflare.Account) []diff.LiveGroup {
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

// Lives turns live members into diff terms: their own access, and what
// their user groups give them.
func Lives(live *cloudflare.Account) []diff.Live {
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

func reinvite(accountID string, f func(string, diff.Live) bool) func(diff.Live) bool {
	if f == nil {
		return nil
	}
	return func(l diff.Live) bool { return f(accountID, l) }
}
