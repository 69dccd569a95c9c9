package cloudflare

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/diff"
)

// Writer makes the changes of one plan on the account it was planned
// from: Cloudflare's write protocol, change by change. It lays access out
// as policies on resource groups (reusing a group that covers exactly the
// resources, creating one otherwise), reads every member and user group
// back after writing it, sends a member's update again when its status
// changed meanwhile, re-invites by withdrawing and inviting again, and
// keeps a user group from gaining access while someone who should have
// left it is still in it.
//
// It works on its own copy of the read: the resource groups it lists or
// creates, and the user groups it rewrites, change that copy, never the
// plan's.
type Writer struct {
	c    *Client
	acct *Account
	// groupsErr is a failed list of the resource groups, not tried again
	// by this writer; created are the user groups this writer made, by
	// name; stayed, the members a failed leave_group left in a group, by
	// group id.
	groupsErr error
	created   map[string]string
	stayed    map[string][]string
}

// Writer returns a writer for the account read as live.
func (c *Client) Writer(live *Account) *Writer {
	acct := *live
	acct.ResourceGroups = slices.Clone(live.ResourceGroups)
	acct.UserGroups = slices.Clone(live.UserGroups)
	return &Writer{c: c, acct: &acct, created: map[string]string{}, stayed: map[string][]string{}}
}

// Applied is what a change did.
type Applied struct {
	// MemberID is the member changed (for an invitation, the new one).
	MemberID string
	// Note says how a change became another ("already a member: updated
	// instead") or was not needed ("accepted meanwhile").
	Note string
}

// errNotApplied marks a write that Cloudflare answered with success but
// that reading it back shows did not take (as a member PUT without the
// right status does, Terraform provider PR 6581).
var errNotApplied = errors.New("the change did not take")

// Apply makes one change. The error is why it failed: Cloudflare's
// answer, or errNotApplied when the read-back differs.
func (w *Writer) Apply(ctx context.Context, c diff.Change) (Applied, error) {
	a := Applied{MemberID: c.MemberID}
	var err error
	switch c.Action {
	case diff.Remove:
		err = w.c.Remove(ctx, w.acct.ID, c.MemberID)
	case diff.LeaveGroup:
		if err = w.c.LeaveUserGroup(ctx, w.acct.ID, c.GroupID, c.MemberID); err != nil {
			w.stayed[c.GroupID] = append(w.stayed[c.GroupID], c.Email)
		}
	case diff.CreateGroup, diff.UpdateGroup:
		err = w.writeGroup(ctx, c)
	case diff.JoinGroup:
		err = w.join(ctx, c)
	case diff.Update:
		err = w.update(ctx, c)
	case diff.Reinvite:
		a, err = w.reinvite(ctx, c)
	case diff.Invite:
		a, err = w.invite(ctx, c)
	default:
		err = fmt.Errorf("unknown action %q", c.Action)
	}
	return a, err
}

// join puts a member in a user group, one this writer made included.
func (w *Writer) join(ctx context.Context, c diff.Change) error {
	gid := c.GroupID
	if gid == "" {
		if gid = w.created[c.Group]; gid == "" {
			return fmt.Errorf("user group %q was not created: %s cannot join it", c.Group, c.Email)
		}
	}
	return w.c.JoinUserGroup(ctx, w.acct.ID, gid, c.MemberID)
}

// update sets a member's policies.
func (w *Writer) update(ctx context.Context, c diff.Change) error {
	pols, err := w.policies(ctx, c)
	if err != nil {
		return err
	}
	return w.replace(ctx, c.MemberID, c.Status, pols, c)
}

// reinvite sends a pending member's invitation again, with the access
// declared now. Cloudflare cannot resend an invitation: it is withdrawn
// and made again.
func (w *Writer) reinvite(ctx context.Context, c diff.Change) (Applied, error) {
	a := Applied{MemberID: c.MemberID}
	pols, err := w.policies(ctx, c)
	if err != nil {
		return a, err
	}
	// Withdrawing is only safe while the invitation is pending: read
	// the member first. The plan's read may be older than an
	// acceptance (a read reused while the audit log showed no change;
	// whether accepting is logged is not documented), and removing an
	// accepted member would cut their access.
	if m, err := w.c.GetMember(ctx, w.acct, c.MemberID); err != nil {
		return a, fmt.Errorf("reading %s before re-inviting: %w", c.Email, err)
	} else if m.Status != "pending" {
		a.Note = "accepted meanwhile: not re-sent"
		return a, nil
	}
	if err := w.c.Remove(ctx, w.acct.ID, c.MemberID); err != nil {
		return a, err
	}
	if a.MemberID, err = w.c.Invite(ctx, w.acct.ID, c.Email, pols); err != nil {
		return a, err
	}
	_, err = w.verify(ctx, a.MemberID, c)
	return a, err
}

// invite invites a member, and reads it back.
func (w *Writer) invite(ctx context.Context, c diff.Change) (Applied, error) {
	a := Applied{MemberID: c.MemberID}
	pols, err := w.policies(ctx, c)
	if err != nil {
		return a, err
	}
	a.MemberID, err = w.c.Invite(ctx, w.acct.ID, c.Email, pols)
	if errors.Is(err, ErrAlreadyMember) {
		// A previous run invited them and stopped before recording it:
		// find the member and make its access right instead of inviting
		// twice.
		m, err := w.c.findMember(ctx, w.acct.ID, c.Email)
		if err != nil {
			return a, fmt.Errorf("%s is already a member, but reading it back failed: %w", c.Email, err)
		}
		a.MemberID, a.Note = m.ID, "already a member: updated instead"
		return a, w.replace(ctx, m.ID, m.Status, pols, c)
	}
	if err != nil {
		return a, err
	}
	_, err = w.verify(ctx, a.MemberID, c)
	return a, err
}

// writeGroup creates a mirrored user group, or sets its policies, and
// checks that what Cloudflare answers holds the access declared.
func (w *Writer) writeGroup(ctx context.Context, c diff.Change) error {
	if who := w.stayed[c.GroupID]; len(who) > 0 && len(c.Add) > 0 {
		// Giving the group more would give it to those who should have
		// left it: the next run tries both again.
		return fmt.Errorf("not applied: taking %s out of user group %q failed, and this change would give them more", strings.Join(who, ", "), c.Group)
	}
	pols, err := w.policies(ctx, c)
	if err != nil {
		return err
	}
	var g UserGroup
	if c.Action == diff.CreateGroup {
		if g, err = w.c.CreateUserGroup(ctx, w.acct, c.Group, pols); err != nil {
			return err
		}
		w.created[c.Group] = g.ID
	} else if g, err = w.c.UpdateUserGroup(ctx, w.acct, c.GroupID, c.Group, pols); err != nil {
		return err
	}
	want := slices.Compact(slices.SortedFunc(slices.Values(c.Access), desired.Access.Compare))
	if g.Denies == 0 && len(g.Unknown) == 0 && slices.Equal(g.Access, want) {
		return nil
	}
	add, remove := accessDiff(want, g.Access)
	return fmt.Errorf("%w: Cloudflare answered success, but user group %q reads back %s: the next run tries again", errNotApplied, c.Group, w.describeGap(add, remove))
}

// replace sets a member's policies, sending its status, and reads it back.
// When the member's status changed since it was read (an invitation
// accepted meanwhile), Cloudflare drops the change: it is sent once more
// with the status read back.
func (w *Writer) replace(ctx context.Context, memberID, status string, pols []Policy, c diff.Change) error {
	if err := w.c.ReplacePolicies(ctx, w.acct.ID, memberID, status, pols); err != nil {
		return err
	}
	m, err := w.verify(ctx, memberID, c)
	if errors.Is(err, errNotApplied) && m.Status != status {
		if err := w.c.ReplacePolicies(ctx, w.acct.ID, memberID, m.Status, pols); err != nil {
			return err
		}
		_, err = w.verify(ctx, memberID, c)
	}
	return err
}

// verify reads the member back after a write and compares its effective
// access with what was written.
func (w *Writer) verify(ctx context.Context, memberID string, c diff.Change) (Member, error) {
	m, err := w.c.GetMember(ctx, w.acct, memberID)
	if err != nil {
		return m, fmt.Errorf("reading %s back after the change: %w", c.Email, err)
	}
	want := slices.Compact(slices.SortedFunc(slices.Values(c.Access), desired.Access.Compare))
	if m.Denies == 0 && len(m.Unknown) == 0 && slices.Equal(m.Access, want) {
		return m, nil
	}
	add, remove := accessDiff(want, m.Access)
	return m, fmt.Errorf("%w: Cloudflare answered success, but %s (member %s) reads back %s: the next run tries again", errNotApplied, c.Email, memberID, w.describeGap(add, remove))
}

// accessDiff returns what want has that got lacks, and the reverse.
func accessDiff(want, got []desired.Access) (missing, extra []desired.Access) {
	for _, a := range want {
		if !slices.Contains(got, a) {
			missing = append(missing, a)
		}
	}
	for _, a := range got {
		if !slices.Contains(want, a) {
			extra = append(extra, a)
		}
	}
	return missing, extra
}

func (w *Writer) describeGap(missing, extra []desired.Access) string {
	name := func(as []desired.Access) string {
		var parts []string
		for _, a := range as {
			parts = append(parts, desired.Access{Role: a.Role, Resource: w.acct.Display(a.Resource)}.String())
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
func (w *Writer) policies(ctx context.Context, c diff.Change) ([]Policy, error) {
	// The groups members use are known from the read; the others are
	// listed once. A failed list is an error only for a change that needs
	// a group no member uses yet.
	listErr := w.loadResourceGroups(ctx)
	layout := c.Policies
	if len(layout) == 0 {
		layout = desired.PoliciesOf(c.Access)
	}
	var out []Policy
	for _, p := range layout {
		var ids []string
		for _, role := range p.Roles {
			pg, err := w.acct.PermissionGroup(role)
			if err != nil {
				return nil, err
			}
			ids = append(ids, pg.ID)
		}
		rg, ok := w.acct.ResourceGroup(p.Resources)
		if !ok {
			if listErr != nil {
				return nil, fmt.Errorf("no resource group known covers %s, and the account's resource groups could not be listed to look further: %w", w.describeResources(p.Resources), listErr)
			}
			created, err := w.createResourceGroup(ctx, p)
			if err != nil {
				return nil, err
			}
			rg = created
		}
		out = append(out, Policy{PermissionGroups: slices.Compact(slices.Sorted(slices.Values(ids))), ResourceGroups: []string{rg.ID}})
	}
	return out, nil
}

// loadResourceGroups lists the account's resource groups into the
// writer's copy, once: a failed list is not tried again by this writer.
func (w *Writer) loadResourceGroups(ctx context.Context) error {
	if w.acct.allGroups || w.groupsErr != nil {
		return w.groupsErr
	}
	if w.groupsErr = w.c.loadResourceGroups(ctx, w.acct); w.groupsErr != nil {
		return w.groupsErr
	}
	return nil
}

// createResourceGroup makes the resource group for a policy's resources.
// Creation is not retried (a retry after a lost answer would make a
// second group): after a failure the groups are listed again, and a group
// that did get made is used.
func (w *Writer) createResourceGroup(ctx context.Context, p desired.Policy) (ResourceGroup, error) {
	created, err := w.c.CreateResourceGroup(ctx, w.acct.ID, w.groupName(p), p.Resources)
	if err == nil {
		w.acct.ResourceGroups = append(w.acct.ResourceGroups, created)
		return created, nil
	}
	if !IsTransient(err) {
		return created, err
	}
	if lerr := w.c.loadResourceGroups(ctx, w.acct); lerr != nil {
		return created, err
	}
	if rg, ok := w.acct.ResourceGroup(p.Resources); ok {
		return rg, nil
	}
	return created, err
}

func (w *Writer) describeResources(rs []desired.Resource) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, w.acct.Display(r).String())
	}
	return strings.Join(parts, ", ")
}

// groupName names a new resource group after the repository role its
// resources come from ("cfaccess: dns-prod"), or after its zones; a name
// taken by another group gets a number.
func (w *Writer) groupName(p desired.Policy) string {
	base := "cfaccess: " + p.Name
	if p.Name == "" {
		base = "cfaccess: " + w.describeResources(p.Resources)
		if len(base) > 100 {
			base = base[:100] + "…"
		}
	}
	name := base
	for n := 2; w.acct.groupNamed(name); n++ {
		name = fmt.Sprintf("%s (%d)", base, n)
	}
	return name
}
