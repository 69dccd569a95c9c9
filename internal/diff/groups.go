package diff

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cfaccess/reconciler/internal/desired"
)

// Actions on mirrored user groups (a repository group with
// cloudflare_user_group: true). Taking a member out is LeaveGroup.
const (
	// CreateGroup makes the user group, with its policies.
	CreateGroup Action = "create_user_group"
	// UpdateGroup sets the user group's policies.
	UpdateGroup Action = "update_user_group"
	// JoinGroup puts an accepted member in the user group.
	JoinGroup Action = "join_user_group"
)

// MinimalRole is the role of members whose access is all through user
// groups: "Can view account, and nothing else". Cloudflare's SCIM
// provisioning gives it to the users it creates.
const MinimalRole = "Minimal Account Access"

// minimalOnly reports whether access is Minimal Account Access alone.
func minimalOnly(access []desired.Access) bool {
	return len(access) == 1 && access[0].Role == MinimalRole && access[0].Resource.Kind == desired.WholeAccount
}

// WantGroup is the desired state of a mirrored user group.
type WantGroup struct {
	Name     string // the Cloudflare user group's name
	Access   []desired.Access
	Policies []desired.Policy
	// Members are the declared members' emails (lower case) that should be
	// in the group: those with access in the account.
	Members []string
	Sources []desired.Pos
	Reasons []string
	// Pos is where the repository declares the group.
	Pos desired.Pos
}

// LiveGroup is a user group as the account has it.
type LiveGroup struct {
	ID, Name string
	Access   []desired.Access
	// Foreign is set when the group has policies cfaccess cannot write.
	Foreign bool
	Members []LiveGroupMember
}

// LiveGroupMember is a member of a user group.
type LiveGroupMember struct {
	ID, Email, Status string
}

// Waiting is a declared member of a mirrored group who cannot join it yet:
// only members who accepted their invitation can be in a user group.
type Waiting struct {
	Email, Group string
}

// groups plans the mirrored user groups: create or update each one's
// policies, put its accepted declared members in and take the others out.
// A group named by two live groups is an error. With scim, the identity
// provider owns the groups and their members: nothing is created, and
// members are neither put in nor taken out — what differs is reported.
func (p *Plan) groups(want []WantGroup, live []LiveGroup, members []Live, opts Options, pr protection) error {
	// Group members are account members, matched by id: an email is only
	// what the account's member list says (a group answer may lack it).
	byID, byEmail := map[string]*Live{}, map[string]*Live{}
	for i := range members {
		byID[members[i].ID] = &members[i]
		byEmail[strings.ToLower(members[i].Email)] = &members[i]
	}
	removed := map[string]bool{}
	for _, c := range p.Changes {
		if c.Action == Remove {
			removed[c.MemberID] = true
		}
	}
	byName := map[string][]*LiveGroup{}
	for i := range live {
		byName[live[i].Name] = append(byName[live[i].Name], &live[i])
	}
	for i := range want {
		w := &want[i]
		ls := byName[w.Name]
		if len(ls) > 1 {
			return fmt.Errorf("%d user groups of the account are named %q: rename all but one in Cloudflare, so that cfaccess knows which one the repository declares", len(ls), w.Name)
		}
		var l *LiveGroup
		if len(ls) == 1 {
			l = ls[0]
		}
		p.groupPolicies(w, l, opts.SCIM)
		p.groupJoins(w, l, byEmail, opts.SCIM, pr)
		if l != nil {
			p.groupLeaves(w, l, byID, removed, opts.SCIM, pr)
		}
	}
	return nil
}

// groupPolicies plans a mirrored group's creation (l nil: not in the
// account), or the update of its policies when they differ.
func (p *Plan) groupPolicies(w *WantGroup, l *LiveGroup, scim bool) {
	switch {
	case l == nil && scim:
		p.GroupsWaiting = append(p.GroupsWaiting, w.Name)
	case l == nil:
		p.Changes = append(p.Changes, Change{Action: CreateGroup, Group: w.Name, GroupPos: w.Pos, Add: sorted(w.Access), Access: sorted(w.Access),
			Policies: w.Policies, Sources: w.Sources, Reasons: w.Reasons})
	default:
		if add, remove := setDiff(w.Access, l.Access); len(add) > 0 || len(remove) > 0 || l.Foreign {
			p.Changes = append(p.Changes, Change{Action: UpdateGroup, Group: w.Name, GroupID: l.ID, GroupPos: w.Pos, Add: add, Remove: remove,
				Access: sorted(w.Access), Policies: w.Policies, Sources: w.Sources, Reasons: w.Reasons})
		}
	}
}

// groupJoins plans a mirrored group's declared members that are not in it
// (l nil: the group is not in the account yet): they join it once they
// have accepted their invitation.
func (p *Plan) groupJoins(w *WantGroup, l *LiveGroup, byEmail map[string]*Live, scim bool, pr protection) {
	in := map[string]bool{}
	if l != nil {
		for _, m := range l.Members {
			in[m.ID] = true
		}
	}
	for _, email := range w.Members {
		m := byEmail[email]
		switch {
		case m != nil && pr.covers(email, m.ID):
			// Never changed: in the group or not, it stays so.
		case m != nil && in[m.ID]:
		case m == nil || m.Status != "accepted":
			p.Waiting = append(p.Waiting, Waiting{Email: email, Group: w.Name})
		case scim:
			p.GroupAccess = append(p.GroupAccess, GroupAccess{Email: email, MemberID: m.ID, Group: w.Name, Missing: true})
		default:
			c := Change{Action: JoinGroup, Email: email, MemberID: m.ID, Status: m.Status, Group: w.Name, GroupPos: w.Pos, Add: sorted(w.Access),
				Sources: w.Sources, Reasons: w.Reasons}
			if l != nil {
				c.GroupID = l.ID
			}
			p.Changes = append(p.Changes, c)
		}
	}
}

// groupLeaves plans a mirrored group's live members that the repository
// does not declare in it: they leave it (removed: members leaving the
// account, and the group with it).
func (p *Plan) groupLeaves(w *WantGroup, l *LiveGroup, byID map[string]*Live, removed map[string]bool, scim bool, pr protection) {
	for _, gm := range l.Members {
		m := byID[gm.ID]
		email := strings.ToLower(gm.Email)
		if m != nil {
			email = strings.ToLower(m.Email)
		}
		switch {
		case m != nil && pr.covers(email, m.ID), pr.ids[gm.ID], removed[gm.ID], slices.Contains(w.Members, email):
			// Protected, leaving with the account, or declared.
		case scim:
			p.GroupAccess = append(p.GroupAccess, GroupAccess{Email: email, MemberID: gm.ID, Group: w.Name, GroupID: l.ID, Access: sorted(l.Access)})
		default:
			status := gm.Status
			if m != nil {
				status = m.Status
			}
			p.Changes = append(p.Changes, Change{Action: LeaveGroup, Email: email, MemberID: gm.ID, Status: status,
				Group: w.Name, GroupID: l.ID, GroupPos: w.Pos, Remove: sorted(l.Access)})
		}
	}
}
