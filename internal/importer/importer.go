package importer

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/desired"
)

// Options tune an import.
type Options struct {
	ProviderID string    // the provider id to declare
	Now        time.Time // recorded in reasons
	// Owner is the token owner's email, when known: protected.
	Owner string
	// GroupMin is the number of members sharing the same roles from which
	// they become a group (3).
	GroupMin int
}

// Result is the repository to write, and what could not be declared.
type Result struct {
	Files []desired.File
	// Skipped explains members left out of the declarations.
	Skipped []string
	// Protected lists members declared as protected rather than granted.
	Protected []string
}

// superAdmin names are kept out of grants (the built-in guardrail denies
// them); their holders become protected members.
var superAdmin = map[string]bool{"Super Administrator - All Privileges": true, "Super Administrator": true}

// role is a derived role: Cloudflare roles on a set of resources.
type role struct {
	id        string
	cfRoles   []string
	resources []desired.Resource // display form (zones by name when known)
}

func (r role) key() string {
	var b strings.Builder
	b.WriteString(strings.Join(r.cfRoles, "\x00"))
	b.WriteByte(1)
	for _, res := range r.resources {
		b.WriteString(res.String())
		b.WriteByte(0)
	}
	return b.String()
}

// Build derives the repository. Roles come from the distinct access
// patterns: a member's access is split by resource, and resources with the
// same Cloudflare roles are merged — so the zones of a domain group, or of
// several ad-hoc groups, become one role's zones, which cfaccess writes as
// one domain group; grants give each set of roles to its members, through
// a group when GroupMin or more share it. Roles stay in their scope:
// account-scoped roles on account:*, domain-scoped roles on zones, as the
// account has them.
func Build(acct *cloudflare.Account, opts Options) Result {
	b := newBuilder(acct, opts)
	b.addMembers()
	b.addUserGroups()
	b.listProtected()
	b.nameRoles()
	b.writeProviders()
	b.writeRoles()
	b.writeGroupsAndGrants()
	return b.res
}

// builder carries one import through its steps: it collects the members
// and user groups to declare, deriving their roles as it goes, names the
// roles, then writes the files in the order Result lists them.
type builder struct {
	acct *cloudflare.Account
	opts Options
	res  Result
	// roles are the derived roles by key; ordered the same roles sorted by
	// key, once named.
	roles   map[string]*role
	ordered []*role
	// members and userGroups are those to declare; protected the emails
	// declared as protected instead.
	members    []member
	userGroups []userGroup
	protected  map[string]bool
}

// member is a member to declare.
type member struct {
	email string
	roles []string // role keys
}

// userGroup is a user group to mirror.
type userGroup struct {
	name    string
	roles   []string // role keys
	members []string
}

// grant gives a set of roles to the members who have exactly that set.
type grant struct {
	roleIDs []string
	users   []string
}

// newBuilder starts an import with the defaults of opts filled in (the
// provider id cloudflare, groups from 3 members) and the token's owner
// protected.
func newBuilder(acct *cloudflare.Account, opts Options) *builder {
	if opts.ProviderID == "" {
		opts.ProviderID = "cloudflare"
	}
	if opts.GroupMin == 0 {
		opts.GroupMin = 3
	}
	b := &builder{acct: acct, opts: opts, roles: map[string]*role{}, protected: map[string]bool{}}
	if opts.Owner != "" {
		b.protected[strings.ToLower(opts.Owner)] = true
	}
	return b
}

// skipf records why something is left out of the declarations.
func (b *builder) skipf(format string, args ...any) {
	b.res.Skipped = append(b.res.Skipped, fmt.Sprintf(format, args...))
}

// addMembers collects the members to declare and derives their roles. A
// member whose access cfaccess cannot express is skipped; a Super
// Administrator of the whole account, or the token's owner, is protected.
func (b *builder) addMembers() {
	for _, m := range b.acct.Members {
		switch {
		case m.Denies > 0:
			b.skipf("%s: has deny policies, which cfaccess does not manage; left undeclared", m.Email)
			continue
		case len(m.Unknown) > 0:
			b.skipf("%s: has access on resource groups cfaccess cannot express (%s); left undeclared", m.Email, strings.Join(m.Unknown, "; "))
			continue
		case len(m.Access) == 0:
			b.skipf("%s: has no access; left undeclared", m.Email)
			continue
		}
		for _, a := range m.Access {
			if superAdmin[a.Role] && a.Resource.Kind == desired.WholeAccount {
				b.protected[m.Email] = true
			}
		}
		if b.protected[m.Email] {
			continue
		}
		b.members = append(b.members, member{email: m.Email, roles: derive(b.acct, m.Access, b.roles)})
	}
}

// addUserGroups collects the user groups to mirror and derives the roles
// of their policies. User groups become mirrored groups: their policies a
// grant to the group, their members the group's members (those declared
// here).
func (b *builder) addUserGroups() {
	declared := map[string]bool{}
	for _, m := range b.members {
		declared[m.email] = true
	}
	for _, g := range b.acct.UserGroups {
		switch {
		case g.Denies > 0 || len(g.Unknown) > 0:
			b.skipf("user group %s: has policies cfaccess cannot express; left undeclared", g.Name)
			continue
		case len(g.Access) == 0:
			b.skipf("user group %s: has no policies; left undeclared", g.Name)
			continue
		case strings.HasPrefix(strings.ToUpper(g.Name), "CF"):
			b.skipf("user group %s: a name starting with CF is Cloudflare's own; left undeclared", g.Name)
			continue
		}
		ug := userGroup{name: g.Name, roles: derive(b.acct, g.Access, b.roles)}
		for _, m := range g.Members {
			if declared[strings.ToLower(m.Email)] {
				ug.members = append(ug.members, strings.ToLower(m.Email))
			}
		}
		slices.Sort(ug.members)
		b.userGroups = append(b.userGroups, ug)
	}
}

// listProtected lists the protected members in the result, sorted.
func (b *builder) listProtected() {
	b.res.Protected = slices.Sorted(maps.Keys(b.protected))
}

// nameRoles gives the roles ids from their content, unique, and orders
// them by key.
func (b *builder) nameRoles() {
	b.ordered = make([]*role, 0, len(b.roles))
	for _, r := range b.roles {
		b.ordered = append(b.ordered, r)
	}
	slices.SortFunc(b.ordered, func(x, y *role) int { return cmp.Compare(x.key(), y.key()) })
	used := map[string]bool{}
	for _, r := range b.ordered {
		r.id = unique(used, roleID(r))
	}
}

// unique returns base, or else the first of base-2, base-3… not used, and
// marks it used.
func unique(used map[string]bool, base string) string {
	id := base
	for n := 2; used[id]; n++ {
		id = base + "-" + strconv.Itoa(n)
	}
	used[id] = true
	return id
}

// roleIDs returns the ids of the roles of these keys, sorted.
func (b *builder) roleIDs(keys []string) []string {
	var ids []string
	for _, k := range keys {
		ids = append(ids, b.roles[k].id)
	}
	slices.Sort(ids)
	return ids
}

// memberGrants groups the members by role set: one grant per set, its
// users sorted, in the order of the sets' ids.
func (b *builder) memberGrants() []*grant {
	byRoles := map[string]*grant{}
	for _, m := range b.members {
		ids := b.roleIDs(m.roles)
		k := strings.Join(ids, ",")
		if byRoles[k] == nil {
			byRoles[k] = &grant{roleIDs: ids}
		}
		byRoles[k].users = append(byRoles[k].users, m.email)
	}
	grants := make([]*grant, 0, len(byRoles))
	for _, k := range slices.Sorted(maps.Keys(byRoles)) {
		slices.Sort(byRoles[k].users)
		grants = append(grants, byRoles[k])
	}
	return grants
}

// addFile adds a file to the result.
func (b *builder) addFile(path, data string) {
	b.res.Files = append(b.res.Files, desired.File{Path: path, Data: []byte(data)})
}

// writeProviders writes providers.yaml: the account, with prune off and
// the protected members.
func (b *builder) writeProviders() {
	var w strings.Builder
	fmt.Fprintf(&w, "# Imported from Cloudflare account %s on %s.\n", q(b.acct.Name), b.opts.Now.UTC().Format(time.RFC3339))
	w.WriteString("# prune is off: members nobody declared are reported, not removed. Review the\n# declarations, then set prune: true to let cfaccess remove undeclared members.\n")
	w.WriteString("version: 1\nproviders:\n")
	fmt.Fprintf(&w, "  %s:\n    name: %s\n    provider: cloudflare\n    config:\n      account_id: %s\n    reconcile:\n      prune: false\n",
		b.opts.ProviderID, q(b.acct.Name), b.acct.ID)
	if len(b.res.Protected) > 0 {
		w.WriteString("      protected:\n")
		writeList(&w, "        ", b.res.Protected)
	}
	b.addFile("providers.yaml", w.String())
}

// writeRoles writes roles.yaml, when there are roles: each with its
// Cloudflare roles and its resources.
func (b *builder) writeRoles() {
	if len(b.ordered) == 0 {
		return
	}
	var w strings.Builder
	w.WriteString("# Roles derived from the account's distinct access patterns.\nversion: 1\nroles:\n")
	for _, r := range b.ordered {
		fmt.Fprintf(&w, "  %s:\n    name: %s\n    providers: [%s]\n    inherits:\n", r.id, q(roleName(r)), b.opts.ProviderID)
		writeList(&w, "      ", r.cfRoles)
		w.WriteString("    resources:\n      allow:\n")
		for _, res := range r.resources {
			fmt.Fprintf(&w, "        - %s\n", q(res.String()))
		}
	}
	b.addFile("roles.yaml", w.String())
}

// writeGroupsAndGrants writes groups.yaml and grants.yaml, each when it
// has anything to say: the members' grants first, then the mirrored user
// groups.
func (b *builder) writeGroupsAndGrants() {
	grants := b.memberGrants()
	w := grantWriter{
		groupIDs: map[string]bool{},
		groupMin: b.opts.GroupMin,
		reason:   fmt.Sprintf("imported from account %s on %s", b.acct.Name, b.opts.Now.UTC().Format(time.DateOnly)),
	}
	w.grants.WriteString("version: 1\ngrants:\n")
	for _, g := range grants {
		w.memberGrant(g)
	}
	for _, ug := range b.userGroups {
		w.userGroupGrant(ug, b.roleIDs(ug.roles))
	}
	if w.groups.Len() > 0 {
		b.addFile("groups.yaml", w.groups.String())
	}
	if len(grants) > 0 || len(b.userGroups) > 0 {
		b.addFile("grants.yaml", w.grants.String())
	}
}

// grantWriter writes groups.yaml and grants.yaml together: a grant to
// groupMin or more members goes through a group of them, and group ids
// are unique across those groups and the mirrored user groups.
type grantWriter struct {
	groups, grants strings.Builder
	groupIDs       map[string]bool
	groupMin       int
	reason         string
}

// memberGrant writes a grant of roles to members: through a group of them
// when they are groupMin or more, else to each.
func (w *grantWriter) memberGrant(g *grant) {
	fmt.Fprintf(&w.grants, "  - roles: [%s]\n", strings.Join(g.roleIDs, ", "))
	if len(g.users) >= w.groupMin {
		gid := unique(w.groupIDs, g.roleIDs[0]+"-members")
		if w.groups.Len() == 0 {
			w.groups.WriteString("# Members who share the same roles.\nversion: 1\ngroups:\n")
		}
		fmt.Fprintf(&w.groups, "  %s:\n    members:\n", gid)
		writeList(&w.groups, "      ", g.users)
		fmt.Fprintf(&w.grants, "    groups: [%s]\n", gid)
	} else {
		w.grants.WriteString("    users:\n")
		writeList(&w.grants, "      ", g.users)
	}
	fmt.Fprintf(&w.grants, "    reason: %s\n", q(w.reason))
}

// userGroupGrant writes a mirrored user group with its members, and the
// grant of its policies' roles (roleIDs) to it.
func (w *grantWriter) userGroupGrant(ug userGroup, roleIDs []string) {
	gid := unique(w.groupIDs, "usergroup-"+slug(ug.name))
	if w.groups.Len() == 0 {
		w.groups.WriteString("version: 1\ngroups:\n")
	}
	fmt.Fprintf(&w.groups, "  # The account's user group %s: cfaccess keeps its policies and members.\n", q(ug.name))
	fmt.Fprintf(&w.groups, "  %s:\n    name: %s\n    cloudflare_user_group: true\n    members:", gid, q(ug.name))
	if len(ug.members) == 0 {
		w.groups.WriteString(" []\n")
	} else {
		w.groups.WriteString("\n")
	}
	writeList(&w.groups, "      ", ug.members)
	fmt.Fprintf(&w.grants, "  - roles: [%s]\n    groups: [%s]\n    reason: %s\n", strings.Join(roleIDs, ", "), gid, q(w.reason))
}

// writeList writes items as a YAML list of quoted strings at indent.
func writeList(w *strings.Builder, indent string, items []string) {
	for _, s := range items {
		fmt.Fprintf(w, "%s- %s\n", indent, q(s))
	}
}

// derive splits access into roles — resources with the same Cloudflare
// roles merged into one role — adds them to roles and returns their keys,
// sorted.
func derive(acct *cloudflare.Account, access []desired.Access, roles map[string]*role) []string {
	byResource := map[desired.Resource][]string{}
	for _, a := range access {
		r := acct.Display(a.Resource)
		byResource[r] = append(byResource[r], a.Role)
	}
	byRoles := map[string]*role{}
	for r, names := range byResource {
		slices.Sort(names)
		k := strings.Join(names, "\x00")
		if byRoles[k] == nil {
			byRoles[k] = &role{cfRoles: names}
		}
		byRoles[k].resources = append(byRoles[k].resources, r)
	}
	var keys []string
	for _, r := range byRoles {
		slices.SortFunc(r.resources, desired.Resource.Compare)
		k := r.key()
		if roles[k] == nil {
			roles[k] = r
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// q quotes a string for YAML (a JSON string is a valid YAML scalar).
func q(s string) string { return strconv.Quote(s) }

// roleID derives a readable id: the Cloudflare roles and the scope,
// slugged ("dns-analytics-example-com").
func roleID(r *role) string {
	var parts []string
	for _, n := range r.cfRoles {
		parts = append(parts, slug(n))
	}
	if len(parts) > 3 {
		parts = append(parts[:3], "more")
	}
	switch {
	case len(r.resources) > 1:
		parts = append(parts, "several")
	case r.resources[0].Kind == desired.WholeAccount:
		parts = append(parts, "account")
	case r.resources[0].Kind == desired.ZoneName:
		parts = append(parts, slug(r.resources[0].Zone))
	default:
		parts = append(parts, "zone-"+r.resources[0].Zone[:8])
	}
	id := strings.Join(parts, "-")
	if len(id) > 100 {
		id = id[:100]
	}
	return strings.Trim(id, "-")
}

func roleName(r *role) string {
	var res []string
	for _, x := range r.resources {
		switch x.Kind {
		case desired.WholeAccount:
			res = append(res, "the whole account")
		default:
			res = append(res, x.Zone)
		}
	}
	return strings.Join(r.cfRoles, ", ") + " on " + strings.Join(res, ", ")
}

func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(s) {
		if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' {
			b.WriteRune(c)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.Trim(b.String(), "-")
}
