package importer

import (
	"cmp"
	"fmt"
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
	if opts.ProviderID == "" {
		opts.ProviderID = "cloudflare"
	}
	if opts.GroupMin == 0 {
		opts.GroupMin = 3
	}
	var res Result
	roles := map[string]*role{}
	type member struct {
		email string
		roles []string // role keys
	}
	var members []member
	protected := map[string]bool{}
	if opts.Owner != "" {
		protected[strings.ToLower(opts.Owner)] = true
	}
	for _, m := range acct.Members {
		switch {
		case m.Denies > 0:
			res.Skipped = append(res.Skipped, fmt.Sprintf("%s: has deny policies, which cfaccess does not manage; left undeclared", m.Email))
			continue
		case len(m.Unknown) > 0:
			res.Skipped = append(res.Skipped, fmt.Sprintf("%s: has access on resource groups cfaccess cannot express (%s); left undeclared", m.Email, strings.Join(m.Unknown, "; ")))
			continue
		case len(m.Access) == 0:
			res.Skipped = append(res.Skipped, fmt.Sprintf("%s: has no access; left undeclared", m.Email))
			continue
		}
		for _, a := range m.Access {
			if superAdmin[a.Role] && a.Resource.Kind == desired.WholeAccount {
				protected[m.Email] = true
			}
		}
		if protected[m.Email] {
			continue
		}
		members = append(members, member{email: m.Email, roles: derive(acct, m.Access, roles)})
	}
	// User groups become mirrored groups: their policies a grant to the
	// group, their members the group's members (those declared here).
	type userGroup struct {
		name    string
		roles   []string // role keys
		members []string
	}
	var userGroups []userGroup
	declared := map[string]bool{}
	for _, m := range members {
		declared[m.email] = true
	}
	for _, g := range acct.UserGroups {
		switch {
		case g.Denies > 0 || len(g.Unknown) > 0:
			res.Skipped = append(res.Skipped, fmt.Sprintf("user group %s: has policies cfaccess cannot express; left undeclared", g.Name))
			continue
		case len(g.Access) == 0:
			res.Skipped = append(res.Skipped, fmt.Sprintf("user group %s: has no policies; left undeclared", g.Name))
			continue
		case strings.HasPrefix(strings.ToUpper(g.Name), "CF"):
			res.Skipped = append(res.Skipped, fmt.Sprintf("user group %s: a name starting with CF is Cloudflare's own; left undeclared", g.Name))
			continue
		}
		ug := userGroup{name: g.Name, roles: derive(acct, g.Access, roles)}
		for _, m := range g.Members {
			if declared[strings.ToLower(m.Email)] {
				ug.members = append(ug.members, strings.ToLower(m.Email))
			}
		}
		slices.Sort(ug.members)
		userGroups = append(userGroups, ug)
	}
	for e := range protected {
		res.Protected = append(res.Protected, e)
	}
	slices.Sort(res.Protected)

	// Role ids from their content, unique.
	ordered := make([]*role, 0, len(roles))
	for _, r := range roles {
		ordered = append(ordered, r)
	}
	slices.SortFunc(ordered, func(a, b *role) int { return cmp.Compare(a.key(), b.key()) })
	used := map[string]bool{}
	for _, r := range ordered {
		base := roleID(r)
		id := base
		for n := 2; used[id]; n++ {
			id = base + "-" + strconv.Itoa(n)
		}
		used[id] = true
		r.id = id
	}

	// Grants by role set.
	type grant struct {
		roleIDs []string
		users   []string
	}
	grants := map[string]*grant{}
	for _, m := range members {
		var ids []string
		for _, k := range m.roles {
			ids = append(ids, roles[k].id)
		}
		slices.Sort(ids)
		k := strings.Join(ids, ",")
		if grants[k] == nil {
			grants[k] = &grant{roleIDs: ids}
		}
		grants[k].users = append(grants[k].users, m.email)
	}
	gkeys := make([]string, 0, len(grants))
	for k := range grants {
		gkeys = append(gkeys, k)
	}
	slices.Sort(gkeys)

	reason := fmt.Sprintf("imported from account %s on %s", acct.Name, opts.Now.UTC().Format(time.DateOnly))
	var providers, roleFile, groupFile, grantFile strings.Builder
	fmt.Fprintf(&providers, "# Imported from Cloudflare account %s on %s.\n", q(acct.Name), opts.Now.UTC().Format(time.RFC3339))
	providers.WriteString("# prune is off: members nobody declared are reported, not removed. Review the\n# declarations, then set prune: true to let cfaccess remove undeclared members.\n")
	providers.WriteString("version: 1\nproviders:\n")
	fmt.Fprintf(&providers, "  %s:\n    name: %s\n    provider: cloudflare\n    config:\n      account_id: %s\n    reconcile:\n      prune: false\n",
		opts.ProviderID, q(acct.Name), acct.ID)
	if len(res.Protected) > 0 {
		providers.WriteString("      protected:\n")
		for _, e := range res.Protected {
			fmt.Fprintf(&providers, "        - %s\n", q(e))
		}
	}
	res.Files = append(res.Files, desired.File{Path: "providers.yaml", Data: []byte(providers.String())})

	if len(ordered) > 0 {
		roleFile.WriteString("# Roles derived from the account's distinct access patterns.\nversion: 1\nroles:\n")
		for _, r := range ordered {
			fmt.Fprintf(&roleFile, "  %s:\n    name: %s\n    providers: [%s]\n    inherits:\n", r.id, q(roleName(r)), opts.ProviderID)
			for _, n := range r.cfRoles {
				fmt.Fprintf(&roleFile, "      - %s\n", q(n))
			}
			roleFile.WriteString("    resources:\n      allow:\n")
			for _, res := range r.resources {
				fmt.Fprintf(&roleFile, "        - %s\n", q(res.String()))
			}
		}
		res.Files = append(res.Files, desired.File{Path: "roles.yaml", Data: []byte(roleFile.String())})
	}

	groupIDs := map[string]bool{}
	grantFile.WriteString("version: 1\ngrants:\n")
	for _, k := range gkeys {
		g := grants[k]
		slices.Sort(g.users)
		fmt.Fprintf(&grantFile, "  - roles: [%s]\n", strings.Join(g.roleIDs, ", "))
		if len(g.users) >= opts.GroupMin {
			gid := g.roleIDs[0] + "-members"
			for n := 2; groupIDs[gid]; n++ {
				gid = g.roleIDs[0] + "-members-" + strconv.Itoa(n)
			}
			groupIDs[gid] = true
			if groupFile.Len() == 0 {
				groupFile.WriteString("# Members who share the same roles.\nversion: 1\ngroups:\n")
			}
			fmt.Fprintf(&groupFile, "  %s:\n    members:\n", gid)
			for _, u := range g.users {
				fmt.Fprintf(&groupFile, "      - %s\n", q(u))
			}
			fmt.Fprintf(&grantFile, "    groups: [%s]\n", gid)
		} else {
			grantFile.WriteString("    users:\n")
			for _, u := range g.users {
				fmt.Fprintf(&grantFile, "      - %s\n", q(u))
			}
		}
		fmt.Fprintf(&grantFile, "    reason: %s\n", q(reason))
	}
	for _, ug := range userGroups {
		base := "usergroup-" + slug(ug.name)
		gid := base
		for n := 2; groupIDs[gid]; n++ {
			gid = base + "-" + strconv.Itoa(n)
		}
		groupIDs[gid] = true
		if groupFile.Len() == 0 {
			groupFile.WriteString("version: 1\ngroups:\n")
		}
		fmt.Fprintf(&groupFile, "  # The account's user group %s: cfaccess keeps its policies and members.\n", q(ug.name))
		fmt.Fprintf(&groupFile, "  %s:\n    name: %s\n    cloudflare_user_group: true\n    members:", gid, q(ug.name))
		if len(ug.members) == 0 {
			groupFile.WriteString(" []\n")
		} else {
			groupFile.WriteString("\n")
		}
		for _, u := range ug.members {
			fmt.Fprintf(&groupFile, "      - %s\n", q(u))
		}
		var ids []string
		for _, k := range ug.roles {
			ids = append(ids, roles[k].id)
		}
		slices.Sort(ids)
		fmt.Fprintf(&grantFile, "  - roles: [%s]\n    groups: [%s]\n    reason: %s\n", strings.Join(ids, ", "), gid, q(reason))
	}
	if groupFile.Len() > 0 {
		res.Files = append(res.Files, desired.File{Path: "groups.yaml", Data: []byte(groupFile.String())})
	}
	if len(gkeys) > 0 || len(userGroups) > 0 {
		res.Files = append(res.Files, desired.File{Path: "grants.yaml", Data: []byte(grantFile.String())})
	}
	return res
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
