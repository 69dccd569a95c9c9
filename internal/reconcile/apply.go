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
func Apply(ctx context.Context, client Account, ap *AccountPlan, report func(Result)) []Result {
	return apply(ctx, client, ap, false, report)
}

// ErrHeldBack marks a change that gives access, not applied because a
// guardrail on the live state denies.
var ErrHeldBack = errors.New("held back: a guardrail on the account's live state denies (see the denial); what takes access away was applied")

// apply applies the plan; with hold, the changes that give access are held
// back (ErrHeldBack) and only those that take it away are applied.
func apply(ctx context.Context, client Account, ap *AccountPlan, hold bool, report func(Result)) []Result {
	a := &applier{client: client, ap: ap}
	var out []Result
	for _, c := range ap.Plan.Changes {
		r := Result{Change: c, MemberID: c.MemberID}
		if ctx.Err() != nil {
			r.Err = ErrNotAttempted
		} else if len(c.Protects) > 0 {
			r.Err = fmt.Errorf("%w: %s", ErrProtected, Refusal(ap, c))
		} else if hold && c.Grants() {
			r.Err = ErrHeldBack
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
	client Account
	ap     *AccountPlan
	// created are the ids of the user groups this apply made, by name;
	// stayed the members a failed leave_group left in a group, by group id.
	created map[string]string
	stayed  map[string][]string
}

// writeGroup creates a mirrored user group, or sets its policies, and
// checks what Cloudflare answers holds the access declared.
func (a *applier) writeGroup(ctx context.Context, c diff.Change) error {
	if who := a.stayed[c.GroupID]; len(who) > 0 && len(c.Add) > 0 {
		// Giving the group more would give it to those who should have
		// left it: the next run tries both again.
		return fmt.Errorf("not applied: taking %s out of user group %q failed, and this change would give them more", strings.Join(who, ", "), c.Group)
	}
	pols, err := a.policies(ctx, c)
	if err != nil {
		return err
	}
	var g cloudflare.UserGroup
	if c.Action == diff.CreateGroup {
		if g, err = a.client.CreateUserGroup(ctx, a.ap.Live, c.Group, pols); err != nil {
			return err
		}
		if a.created == nil {
			a.created = map[string]string{}
		}
		a.created[c.Group] = g.ID
	} else if g, err = a.client.UpdateUserGroup(ctx, a.ap.Live, c.GroupID, c.Group, pols); err != nil {
		return err
	}
	want := slices.Compact(slices.SortedFunc(slices.Values(c.Access), desired.Access.Compare))
	if g.Denies == 0 && len(g.Unknown) == 0 && slices.Equal(g.Access, want) {
		return nil
	}
	add, remove := accessDiff(want, g.Access)
	return fmt.Errorf("%w: Cloudflare answered success, but user group %q reads back %s: the next run tries again", ErrNotApplied, c.Group, describeGap(a.ap.Live, add, remove))
}

func (a *applier) apply(ctx context.Context, c diff.Change) Result {
	r := Result{Change: c, MemberID: c.MemberID}
	id := a.ap.AccountID
	switch c.Action {
	case diff.Remove:
		r.Err = a.client.Remove(ctx, id, c.MemberID)
	case diff.LeaveGroup:
		if r.Err = a.client.LeaveUserGroup(ctx, id, c.GroupID, c.MemberID); r.Err != nil {
			if a.stayed == nil {
				a.stayed = map[string][]string{}
			}
			a.stayed[c.GroupID] = append(a.stayed[c.GroupID], c.Email)
		}
	case diff.CreateGroup, diff.UpdateGroup:
		r.Err = a.writeGroup(ctx, c)
	case diff.JoinGroup:
		gid := c.GroupID
		if gid == "" {
			if gid = a.created[c.Group]; gid == "" {
				r.Err = fmt.Errorf("user group %q was not created: %s cannot join it", c.Group, c.Email)
				break
			}
		}
		r.Err = a.client.JoinUserGroup(ctx, id, gid, c.MemberID)
	case diff.Update:
		pols, err := a.policies(ctx, c)
		if err != nil {
			r.Err = err
			break
		}
		r.Err = a.replace(ctx, c.MemberID, c.Status, pols, c)
	case diff.Reinvite:
		// Cloudflare cannot resend an invitation: withdraw it and invite
		// again, with the access declared now.
		pols, err := a.policies(ctx, c)
		if err != nil {
			r.Err = err
			break
		}
		// Withdrawing is only safe while the invitation is pending: read
		// the member first. The plan's read may be older than an
		// acceptance (a read reused while the audit log showed no change;
		// whether accepting is logged is not documented), and removing an
		// accepted member would cut their access.
		if m, err := a.client.GetMember(ctx, a.ap.Live, c.MemberID); err != nil {
			r.Err = fmt.Errorf("reading %s before re-inviting: %w", c.Email, err)
			break
		} else if m.Status != "pending" {
			r.Note = "accepted meanwhile: not re-sent"
			break
		}
		if r.Err = a.client.Remove(ctx, id, c.MemberID); r.Err != nil {
			break
		}
		if r.MemberID, r.Err = a.client.Invite(ctx, id, c.Email, pols); r.Err == nil {
			_, r.Err = a.verify(ctx, r.MemberID, c)
		}
	case diff.Invite:
		pols, err := a.policies(ctx, c)
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
			r.MemberID, r.Note = m.ID, "already a member: updated instead"
			r.Err = a.replace(ctx, m.ID, m.Status, pols, c)
			break
		}
		if r.Err == nil {
			_, r.Err = a.verify(ctx, r.MemberID, c)
		}
	default:
		r.Err = fmt.Errorf("unknown action %q", c.Action)
	}
	return r
}

// ErrNotApplied marks a write that Cloudflare answered with success but
// that reading the member back shows did not take (as a member PUT without
// the right status does, Terraform provider PR 6581).
var ErrNotApplied = errors.New("the change did not take")

// replace sets a member's policies, sending its status, and reads it back.
// When the member's status changed since it was read (an invitation
// accepted meanwhile), Cloudflare drops the change: it is sent once more
// with the status read back.
func (a *applier) replace(ctx context.Context, memberID, status string, pols []cloudflare.Policy, c diff.Change) error {
	if err := a.client.ReplacePolicies(ctx, a.ap.AccountID, memberID, status, pols); err != nil {
		return err
	}
	m, err := a.verify(ctx, memberID, c)
	if errors.Is(err, ErrNotApplied) && m.Status != status {
		if err := a.client.ReplacePolicies(ctx, a.ap.AccountID, memberID, m.Status, pols); err != nil {
			return err
		}
		_, err = a.verify(ctx, memberID, c)
	}
	return err
}

// verify reads the member back after a write and compares its effective
// access with what was written.
func (a *applier) verify(ctx context.Context, memberID string, c diff.Change) (cloudflare.Member, error) {
	m, err := a.client.GetMember(ctx, a.ap.Live, memberID)
	if err != nil {
		return m, fmt.Errorf("reading %s back after the change: %w", c.Email, err)
	}
	want := slices.Clone(c.Access)
	slices.SortFunc(want, desired.Access.Compare)
	if m.Denies == 0 && len(m.Unknown) == 0 && slices.Equal(m.Access, slices.Compact(want)) {
		return m, nil
	}
	add, remove := accessDiff(want, m.Access)
	return m, fmt.Errorf("%w: Cloudflare answered success, but %s (member %s) reads back %s: the next run tries again", ErrNotApplied, c.Email, memberID, describeGap(a.ap.Live, add, remove))
}

// accessDiff returns what want has that got lacks, and the reverse.
func accessDiff(want, got []desired.Access) (missing, extra []desired.Access) {
	for _, w := range want {
		if !slices.Contains(got, w) {
			missing = append(missing, w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			extra = append(extra, g)
		}
	}
	return missing, extra
}

func describeGap(live *cloudflare.Account, missing, extra []desired.Access) string {
	name := func(as []desired.Access) string {
		var parts []string
		for _, a := range as {
			parts = append(parts, desired.Access{Role: a.Role, Resource: live.Display(a.Resource)}.String())
		}
		return strings.Join(parts, ", ")
	}
	switch {
	case len(missing) > 0 && len(extra) > 0:
		return "without " + name(missing) + " and with " + name(extra)
	case len(missing) > 0:
		return "without " + name(missing)
	case len(extra) > 0:
		return "with " + name(extra)
	}
	return "with policies cfaccess does not write (deny, or unknown resource groups)"
}

// policies builds a change's allow policies: each laid-out policy is the
// roles on one resource group — the account's, or a domain group of the
// zones. An existing group covering exactly those resources is reused
// (made by cfaccess, by hand, or ad hoc by the dashboard); a missing one
// is created, named after the repository role.
func (a *applier) policies(ctx context.Context, c diff.Change) ([]cloudflare.Policy, error) {
	live := a.ap.Live
	// The groups members use are known from the read; the others are
	// listed once. A failed list is an error only for a change that needs
	// a group no member uses yet.
	listErr := a.client.LoadResourceGroups(ctx, live)
	layout := c.Policies
	if len(layout) == 0 {
		layout = desired.PoliciesOf(c.Access)
	}
	var out []cloudflare.Policy
	for _, p := range layout {
		var ids []string
		for _, role := range p.Roles {
			pg, err := live.PermissionGroup(role)
			if err != nil {
				return nil, err
			}
			ids = append(ids, pg.ID)
		}
		rg, ok := live.ResourceGroup(p.Resources)
		if !ok {
			if listErr != nil {
				return nil, fmt.Errorf("no resource group known covers %s, and the account's resource groups could not be listed to look further: %w", describeResources(live, p.Resources), listErr)
			}
			created, err := a.create(ctx, p)
			if err != nil {
				return nil, err
			}
			rg = created
		}
		out = append(out, cloudflare.Policy{PermissionGroups: slices.Compact(slices.Sorted(slices.Values(ids))), ResourceGroups: []string{rg.ID}})
	}
	return out, nil
}

// create makes the resource group for a policy's resources. Creation is not
// retried (a retry after a lost answer would make a second group): after a
// failure the groups are listed again, and a group that did get made is
// used.
func (a *applier) create(ctx context.Context, p desired.Policy) (cloudflare.ResourceGroup, error) {
	live := a.ap.Live
	name := groupName(live, p)
	created, err := a.client.CreateResourceGroup(ctx, a.ap.AccountID, name, p.Resources)
	if err == nil {
		live.ResourceGroups = append(live.ResourceGroups, created)
		return created, nil
	}
	if !cloudflare.IsTransient(err) {
		return created, err
	}
	if lerr := a.client.ReloadResourceGroups(ctx, live); lerr != nil {
		return created, err
	}
	if rg, ok := live.ResourceGroup(p.Resources); ok {
		return rg, nil
	}
	return created, err
}

func describeResources(live *cloudflare.Account, rs []desired.Resource) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, live.Display(r).String())
	}
	return strings.Join(parts, ", ")
}

// groupName names a new resource group after the repository role its
// resources come from ("cfaccess: dns-prod"), or after its zones; a name
// taken by another group gets a number.
func groupName(live *cloudflare.Account, p desired.Policy) string {
	base := "cfaccess: " + p.Name
	if p.Name == "" {
		base = "cfaccess: " + describeResources(live, p.Resources)
		if len(base) > 100 {
			base = base[:100] + "…"
		}
	}
	name := base
	for n := 2; live.GroupNamed(name); n++ {
		name = fmt.Sprintf("%s (%d)", base, n)
	}
	return name
}
