package evidence

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cfaccess/reconciler/internal/cfroles"
	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/diff"
	"github.com/cfaccess/reconciler/internal/gitsource"
)

// A change made with cfaccess's credentials is approved through Git only
// when the revision it names (its User-Agent: a claim, which is why it is
// checked) is on the followed branch and the repository at that revision
// explains it, whatever its kind:
//
//   - a member invited or updated: the access written (the request's
//     policies, named through the account's permission and resource
//     groups) is what the revision grants the member then;
//   - a member removed: the revision grants them nothing then — or it is
//     the withdrawal of a re-invitation, an invitation following at once;
//   - a user group's policies set: they are what the revision grants the
//     mirrored group of that name then;
//   - members put in a user group: the revision declares each in that
//     mirrored group, with access in the account; one taken out: it does
//     not.
//
// "Then" is the entry's time, or up to planSlack before it: a plan is
// made before its writes, and a grant may lapse in between.

// planSlack is how long before a write its plan may have been made.
const planSlack = 2 * time.Minute

// checker proves changes approved, or says why not.
type checker struct {
	hist     History
	provider string
	repos    map[string]*desired.Repo
	// emails and groups name members and user groups by id.
	emails, groups map[string]string
	catalogue      func() (*cloudflare.Account, error)
	// made reports whether an entry was made with cfaccess's credentials.
	made func(cloudflare.AuditEntry) bool
	// newest is the newest revision a change made with cfaccess's
	// credentials was approved from, so far in the log (at newestAt).
	newest   string
	newestAt time.Time
}

// verify sets c's approval: Approved when every check holds, Unverified
// with the failed check otherwise. after are the entries that follow e.
func (ck *checker) verify(ctx context.Context, c *Change, e cloudflare.AuditEntry, after []cloudflare.AuditEntry) {
	sha, modified := e.Revision()
	c.Revision = sha
	short := gitsource.Short(sha)
	switch {
	case sha == "":
		c.Why = "made with cfaccess's token, but its User-Agent names no revision: not a write of cfaccess's, or someone else's with its token"
		return
	case modified:
		c.Why = "applied by cfaccess from uncommitted changes on top of " + short
		return
	case ck.hist == nil:
		c.Why = "names revision " + short + ", but --repo has no Git history to check it against"
		return
	}
	author, title, err := ck.hist.Commit(sha)
	if err != nil {
		c.Why = "names revision " + short + ", which is not on the followed branch"
		return
	}
	c.Author, c.Title = author, title
	// Once cfaccess applied a revision, a change from an older one takes
	// the account back: a second writer on an old checkout, or someone
	// claiming an old revision that still grants what was revoked since.
	if ck.newest != "" && ck.newest != sha {
		if older, err := ck.hist.Descends(ck.newest, sha); err == nil && older {
			c.Why = fmt.Sprintf("names revision %s, older than %s, which cfaccess applied at %s", short, gitsource.Short(ck.newest), ck.newestAt.UTC().Format("2006-01-02 15:04 UTC"))
			return
		}
	}
	repo, ok := ck.repos[sha]
	if !ok {
		repo, _ = ck.hist.Declarations(ctx, sha)
		ck.repos[sha] = repo
	}
	if repo == nil {
		c.Why = "the repository at " + short + " cannot be read to check it"
		return
	}
	grants, why := ck.explain(repo, c, e, after)
	c.Grants = grants
	if why != "" {
		c.Why = short + " " + why
		return
	}
	c.Approval = Approved
	if ck.newest == "" || ck.newest != sha {
		if newer, err := ck.hist.Descends(sha, ck.newest); ck.newest == "" || err == nil && newer {
			ck.newest, ck.newestAt = sha, e.Time
		}
	}
}

// explain returns the grants behind a change at its revision, or why the
// revision does not explain it ("grants …", "declares …").
func (ck *checker) explain(repo *desired.Repo, c *Change, e cloudflare.AuditEntry, after []cloudflare.AuditEntry) ([]string, string) {
	at := []time.Time{e.Time, e.Time.Add(-planSlack)}
	switch {
	case e.Kind == cloudflare.AuditMember:
		email := c.Subject
		if !strings.Contains(email, "@") {
			return nil, "cannot be checked: the member's email is unknown"
		}
		if e.ActionType == "delete" {
			var grants []string
			for _, t := range at {
				m := memberAt(repo, ck.provider, email, t)
				if !m.active {
					return nil, ""
				}
				grants = m.grants
			}
			if ck.reinvited(email, e, after) {
				return grants, "" // the withdrawal of a re-invitation
			}
			return grants, "grants " + email + " access: the removal is not explained"
		}
		written, why := ck.access(e.Written)
		if why != "" {
			return nil, why
		}
		var want []desired.Access
		for _, t := range at {
			m := memberAt(repo, ck.provider, email, t)
			if want = m.own; equalAccess(want, written) {
				c.BreakGlass = m.breakGlass
				return m.grants, ""
			}
		}
		return nil, fmt.Sprintf("grants %s %s, not what was written: %s", email, accessText(want), accessText(written))
	case e.GroupMembers:
		return ck.explainMembership(repo, c, e, at)
	case e.Kind == cloudflare.AuditUserGroup && e.ActionType == "delete":
		return nil, "cannot explain it: cfaccess never deletes a user group"
	case e.Kind == cloudflare.AuditUserGroup:
		name := ck.groupName(c, e)
		written, why := ck.access(e.Written)
		if why != "" {
			return nil, why
		}
		var want []desired.Access
		for _, t := range at {
			g, ok := groupAt(repo, ck.provider, name, t)
			if !ok {
				return nil, fmt.Sprintf("declares no user group named %q (cloudflare_user_group)", name)
			}
			if want = g.access; equalAccess(want, written) {
				return g.grants, ""
			}
		}
		return nil, fmt.Sprintf("grants user group %q %s, not what was written: %s", name, accessText(want), accessText(written))
	}
	return nil, "cannot explain a change of this kind"
}

// explainMembership explains members put in, or taken out of, a user
// group.
func (ck *checker) explainMembership(repo *desired.Repo, c *Change, e cloudflare.AuditEntry, at []time.Time) ([]string, string) {
	name := ck.groupName(c, e)
	ids := []string{e.MemberID}
	if e.ActionType != "delete" {
		switch {
		case e.Written == nil || len(e.Written.Members) == 0:
			return nil, "cannot be checked: the audit log does not show which members were put in"
		case e.Written.Truncated:
			return nil, "does not explain a write this large, which cfaccess never sends"
		}
		ids = e.Written.Members
	}
	var grants []string
	for _, id := range ids {
		email := ck.emails[id]
		if email == "" {
			return nil, "cannot be checked: the email of member " + id + " is unknown"
		}
		in := false
		for _, t := range at {
			m := memberAt(repo, ck.provider, email, t)
			if slices.Contains(m.groups, name) && m.active {
				in = true
				grants = append(grants, m.grants...)
			}
		}
		switch {
		case e.ActionType == "delete" && in:
			return nil, fmt.Sprintf("declares %s in user group %q: taking them out is not explained", email, name)
		case e.ActionType != "delete" && !in:
			return nil, fmt.Sprintf("does not declare %s in user group %q", email, name)
		}
	}
	return slices.Compact(grants), ""
}

// groupName is the user group of a change, by name.
func (ck *checker) groupName(c *Change, e cloudflare.AuditEntry) string {
	if n := cmp.Or(e.GroupName, ck.groups[e.GroupID]); n != "" {
		return n
	}
	if cat, err := ck.catalogue(); err == nil {
		for _, g := range cat.UserGroups {
			if g.ID == e.GroupID {
				ck.groups[g.ID] = g.Name
				return g.Name
			}
		}
	}
	return c.Subject
}

// reinvited reports whether e, a removal, is followed at once by an
// invitation of the same email made with cfaccess's credentials: how
// cfaccess re-sends an invitation.
func (ck *checker) reinvited(email string, e cloudflare.AuditEntry, after []cloudflare.AuditEntry) bool {
	for _, x := range after {
		if x.Time.Sub(e.Time) > planSlack {
			return false
		}
		if x.Kind == cloudflare.AuditMember && x.ActionType == "create" && strings.EqualFold(x.Email, email) && ck.made(x) {
			return true
		}
	}
	return false
}

// access names what a write gave, through the account's catalogue: roles
// by name, zones by name. It says why when it cannot.
func (ck *checker) access(w *cloudflare.Written) ([]desired.Access, string) {
	switch {
	case w == nil:
		return nil, "cannot be checked: the audit log does not show what was written"
	case w.Truncated:
		return nil, "does not explain a write this large, which cfaccess never sends"
	case len(w.Roles) > 0:
		return nil, "does not explain legacy roles, which cfaccess never writes"
	}
	cat, err := ck.catalogue()
	if err != nil {
		return nil, "cannot be checked: the account's roles and resource groups could not be read to name what was written: " + err.Error()
	}
	var out []desired.Access
	for _, p := range w.Policies {
		switch {
		case p.Deny:
			return nil, "does not explain a deny policy, which cfaccess never writes"
		case p.Inline > 0:
			return nil, "does not explain a resource group given inline, which cfaccess never sends"
		}
		var roles []string
		for _, id := range p.PermissionGroups {
			pg, ok := cat.PermissionGroupByID(id)
			if !ok {
				return nil, "cannot be checked: permission group " + id + " is not in the account"
			}
			roles = append(roles, pg.Name)
		}
		for _, id := range p.ResourceGroups {
			rg, ok := cat.ResourceGroupByID(id)
			if !ok || len(rg.Resources) == 0 {
				return nil, "cannot be checked: resource group " + id + " is not in the account now, or covers what cfaccess never writes"
			}
			for _, role := range roles {
				for _, r := range rg.Resources {
					out = append(out, desired.Access{Role: role, Resource: cat.Display(r)})
				}
			}
		}
	}
	return out, ""
}

// member is what a revision grants an email at an instant.
type member struct {
	// own is the access of its own policies (Minimal Account Access when
	// all of its access is through mirrored user groups), zones by name;
	// groups the mirrored groups it is in (Cloudflare names); active
	// whether it holds any access; grants the grants behind it.
	own    []desired.Access
	groups []string
	active bool
	grants []string
	// breakGlass: a break-glass grant gives some of it.
	breakGlass bool
}

// memberAt is what repo grants email on provider's account at t.
func memberAt(repo *desired.Repo, provider, email string, t time.Time) member {
	var m member
	var bs []desired.Binding
	for _, g := range repo.Grants {
		if !g.ActiveAt(t) || !repo.GrantReaches(g, provider) {
			continue
		}
		bs = repo.AppendGrantBindings(bs[:0], g, t)
		for _, b := range bs {
			if b.Provider != provider || !strings.EqualFold(b.Email, email) || !b.Active {
				continue
			}
			m.active = true
			m.breakGlass = m.breakGlass || g.BreakGlass
			m.grants = appendGrant(m.grants, b.Source, b.Reason)
			if b.Group == "" {
				m.own = append(m.own, b.Access)
			}
		}
	}
	if !m.active {
		return m
	}
	for _, grp := range repo.Groups {
		if grp.UserGroup && slices.Contains(grp.Members, strings.ToLower(email)) {
			m.groups = append(m.groups, grp.CloudflareName())
		}
	}
	if len(m.own) == 0 {
		m.own = []desired.Access{{Role: diff.MinimalRole, Resource: desired.Resource{Kind: desired.WholeAccount}}}
	}
	return m
}

// group is what a revision grants a mirrored user group at an instant.
type group struct {
	access []desired.Access
	grants []string
}

// groupAt is what repo grants the mirrored user group named name on
// provider's account at t; false when it declares none of that name.
func groupAt(repo *desired.Repo, provider, name string, t time.Time) (group, bool) {
	var ids []string
	for id, grp := range repo.Groups {
		if grp.UserGroup && grp.CloudflareName() == name {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return group{}, false
	}
	var g group
	for _, gr := range repo.Grants {
		if !gr.ActiveAt(t) || !repo.GrantReaches(gr, provider) || !slices.ContainsFunc(gr.Groups, func(id string) bool { return slices.Contains(ids, id) }) {
			continue
		}
		for _, roleID := range gr.Roles {
			if as := repo.RoleAccess(roleID, provider); len(as) > 0 {
				g.access = append(g.access, as...)
				g.grants = appendGrant(g.grants, gr.Pos, gr.Reason)
			}
		}
	}
	return g, true
}

func appendGrant(out []string, pos desired.Pos, reason string) []string {
	s := pos.String()
	if reason != "" {
		s += " " + reason
	}
	if !slices.Contains(out, s) {
		out = append(out, s)
	}
	return out
}

// equalAccess compares two sets of access, former role names read as the
// current ones.
func equalAccess(a, b []desired.Access) bool {
	return slices.Equal(canonical(a), canonical(b))
}

func canonical(as []desired.Access) []desired.Access {
	renamed := cfroles.Renamed()
	out := make([]desired.Access, len(as))
	for i, a := range as {
		if n, ok := renamed[a.Role]; ok {
			a.Role = n
		}
		if a.Resource.Kind == desired.ZoneName {
			a.Resource.Zone = strings.ToLower(a.Resource.Zone)
		}
		out[i] = a
	}
	slices.SortFunc(out, desired.Access.Compare)
	return slices.Compact(out)
}

func accessText(as []desired.Access) string {
	as = canonical(as)
	if len(as) == 0 {
		return "nothing"
	}
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = a.String()
	}
	return strings.Join(parts, ", ")
}
