package review

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/diff"
	"github.com/cfaccess/reconciler/internal/gitsource"
)

// Input is what a review is made of.
type Input struct {
	// Checked is the checked repository; its Repo must be set.
	Checked  *check.Checked
	Revision gitsource.Revision
	// Now is the instant the review is made at: grants are active, due
	// for review and aged as of then.
	Now time.Time
	// Window is how far back the audit log was read for activity.
	Window   time.Duration
	Accounts []Account
	// Added says when the grant at a position was added, from Git
	// history; nil, or ok false, when unknown.
	Added func(desired.Pos) (GrantAdded, bool)
	// AgesUnknown says why grants have no age ("" when Git gave them).
	AgesUnknown string
}

// GrantAdded is the commit that added a grant (the last to change its
// first line).
type GrantAdded struct {
	Time   time.Time
	Commit string
}

// Account is one account as the review command read it.
type Account struct {
	Provider  string
	AccountID string
	// Live is the account; nil when it could not be read (Err).
	Live     *cloudflare.Account
	Err      error
	Activity Activity
	// Protected are the provider's protected emails.
	Protected []string
}

// Activity is what the account's audit log says of who last did
// something.
type Activity struct {
	// Since and Before bound the entries read.
	Since, Before time.Time
	// Last is the newest entry of each actor, by email (lower case).
	Last map[string]cloudflare.AuditEntry
	// Unknown says why the last activity is unknown; "" when the log was
	// read whole. NotReadable is set when the credentials may not read
	// the log at all.
	Unknown     string
	NotReadable bool
}

// LastActions returns each actor's newest entry, by email: their last
// activity. Entries without an email (system actors) are left out, and so
// are those made with cfaccess's credentials, id (a token its owner holds:
// its changes are not the owner's activity), whatever their User-Agent.
func LastActions(entries []cloudflare.AuditEntry, id cloudflare.Identity) map[string]cloudflare.AuditEntry {
	out := map[string]cloudflare.AuditEntry{}
	for _, e := range entries {
		if id.Made(e) {
			continue
		}
		if last, seen := out[e.ActorEmail]; e.ActorEmail != "" && (!seen || !e.Time.Before(last.Time)) {
			out[e.ActorEmail] = e
		}
	}
	return out
}

// Doc is the stable JSON form of an access review (format_version 1); the
// other *Doc types are its parts. Times are RFC 3339, in UTC.
type Doc struct {
	FormatVersion   int    `json:"format_version"`
	GeneratedAt     string `json:"generated_at"`
	Revision        string `json:"revision,omitempty"`
	RevisionSubject string `json:"revision_subject,omitempty"`
	// Denied is set when a guardrail denies the repository: the review
	// shows the accounts as they are, and grants as declared.
	Denied             bool `json:"denied"`
	ActivityWindowDays int  `json:"activity_window_days"`
	// GrantAges says why grants have no "added" ("" when Git gave them).
	GrantAges string     `json:"grant_ages_unknown,omitempty"`
	Summary   SummaryDoc `json:"summary"`
	// OverdueGrants are every grant of the repository past its
	// review_after and not expired, whether it gives access yet or not.
	OverdueGrants []GrantDoc `json:"overdue_grants"`
	// BreakGlassGrants are the repository's break-glass grants, active or
	// ended: applied before review, to be looked at after the fact.
	BreakGlassGrants []GrantDoc   `json:"break_glass_grants,omitempty"`
	Accounts         []AccountDoc `json:"accounts"`
}

// SummaryDoc counts over every account.
type SummaryDoc struct {
	Accounts int `json:"accounts"`
	Counts
}

// Counts are a review's figures. WithoutTwoFactor counts accepted members
// (a pending invitation has no login yet); NotInGit counts accesses
// (member × role × resource) no active grant gives; OverdueGrants grants
// past their review_after.
type Counts struct {
	Members          int `json:"members"`
	Pending          int `json:"pending"`
	WithoutTwoFactor int `json:"without_2fa"`
	NotInGit         int `json:"access_not_in_git"`
	OverdueGrants    int `json:"overdue_grants"`
}

// AccountDoc is one account: its members, or why it could not be read.
type AccountDoc struct {
	Account   string      `json:"account"`
	AccountID string      `json:"account_id"`
	Name      string      `json:"name,omitempty"`
	Error     string      `json:"error,omitempty"`
	Activity  ActivityDoc `json:"activity"`
	Summary   Counts      `json:"summary"`
	Members   []MemberDoc `json:"members"`
	// OrgSuperAdmins hold the account without being members.
	OrgSuperAdmins []string `json:"organization_super_admins,omitempty"`
	NotChecked     []string `json:"not_checked,omitempty"`
}

// ActivityDoc says how the audit log was read: status "read", "unknown"
// (the query failed or was cut short: note says why) or "not_readable"
// (the credentials may not read it).
type ActivityDoc struct {
	Status string `json:"status"`
	Since  string `json:"since"`
	Before string `json:"before"`
	Note   string `json:"note,omitempty"`
}

// MemberDoc is a live member.
type MemberDoc struct {
	Email     string `json:"email"`
	Status    string `json:"status"`
	TwoFactor bool   `json:"two_factor"`
	Protected bool   `json:"protected,omitempty"`
	// LastActivity is the member's newest audit entry in the window; null
	// when there is none (or the log was not read: see the account's
	// activity).
	LastActivity *ActionDoc  `json:"last_activity"`
	Notes        []string    `json:"notes,omitempty"`
	Access       []AccessDoc `json:"access"`
}

// ActionDoc is an audit entry: when, what ("Edit Member") and how
// ("dash", "api_token").
type ActionDoc struct {
	Time    string `json:"time"`
	Action  string `json:"action,omitempty"`
	Context string `json:"context,omitempty"`
}

// AccessDoc is one role on one resource a member holds: through its own
// policies, or through a user group; and the grants that give it.
type AccessDoc struct {
	Role      string `json:"role"`
	Resource  string `json:"resource"`
	UserGroup string `json:"user_group,omitempty"`
	// InGit is set when an active grant gives the member this access.
	InGit  bool       `json:"in_git"`
	Grants []GrantDoc `json:"grants"`
	Note   string     `json:"note,omitempty"`
}

// GrantDoc is a grant: where, why, since and until when. Users and Groups
// are given in overdue_grants only.
type GrantDoc struct {
	Source string   `json:"source"`
	Users  []string `json:"users,omitempty"`
	Groups []string `json:"groups,omitempty"`
	// Roles are the repository roles of the grant that give the access
	// (in overdue_grants: all of them).
	Roles  []string `json:"roles"`
	Reason string   `json:"reason"`
	Active bool     `json:"active"`
	// Added is when the grant was added, from Git (the commit that last
	// changed its first line), AgeDays the whole days since.
	Added         string `json:"added,omitempty"`
	AddedCommit   string `json:"added_commit,omitempty"`
	AgeDays       *int   `json:"age_days,omitempty"`
	NotBefore     string `json:"not_before,omitempty"`
	Expires       string `json:"expires,omitempty"`
	ReviewAfter   string `json:"review_after,omitempty"`
	ReviewOverdue bool   `json:"review_overdue"`
	// BreakGlass: applied without review (break_glass).
	BreakGlass bool `json:"break_glass,omitempty"`
}

// placeholderNote is the note of a user group's placeholder: the policy
// every member needs of its own when its access is all through user
// groups.
const placeholderNote = "the policy of its own every member needs when its access is through user groups"

// New assembles the review of in.
func New(in Input) *Doc {
	now := in.Now.UTC()
	repo := in.Checked.Repo
	doc := &Doc{FormatVersion: 1, GeneratedAt: now.Format(time.RFC3339), Revision: in.Revision.SHA,
		RevisionSubject: in.Revision.Subject, Denied: in.Checked.Denied(),
		ActivityWindowDays: int(in.Window / (24 * time.Hour)), GrantAges: in.AgesUnknown,
		OverdueGrants: []GrantDoc{}, Accounts: []AccountDoc{}}
	grants := map[desired.Pos]*desired.Grant{}
	for _, g := range repo.Grants {
		grants[g.Pos] = g
		if g.ReviewDue(now) {
			gd := grantDoc(in, g, g.Roles)
			gd.Users, gd.Groups = g.Users, g.Groups
			doc.OverdueGrants = append(doc.OverdueGrants, gd)
		}
		if g.BreakGlass {
			gd := grantDoc(in, g, g.Roles)
			gd.Users, gd.Groups = g.Users, g.Groups
			doc.BreakGlassGrants = append(doc.BreakGlassGrants, gd)
		}
	}
	doc.Summary.OverdueGrants = len(doc.OverdueGrants)
	// The bindings of each account's members, active or not, by email.
	bindings := map[string]map[string][]desired.Binding{}
	for _, b := range repo.Bindings(now) {
		if bindings[b.Provider] == nil {
			bindings[b.Provider] = map[string][]desired.Binding{}
		}
		bindings[b.Provider][b.Email] = append(bindings[b.Provider][b.Email], b)
	}
	for _, ra := range in.Accounts {
		ad := accountDoc(in, ra, grants, bindings[ra.Provider])
		doc.Summary.Accounts++
		doc.Summary.Members += ad.Summary.Members
		doc.Summary.Pending += ad.Summary.Pending
		doc.Summary.WithoutTwoFactor += ad.Summary.WithoutTwoFactor
		doc.Summary.NotInGit += ad.Summary.NotInGit
		doc.Accounts = append(doc.Accounts, ad)
	}
	return doc
}

// accountDoc is one account's review: how its audit log was read, and
// each live member with the grants behind their access.
func accountDoc(in Input, ra Account, grants map[desired.Pos]*desired.Grant, bindings map[string][]desired.Binding) AccountDoc {
	ad := AccountDoc{Account: ra.Provider, AccountID: ra.AccountID, Members: []MemberDoc{},
		Activity: ActivityDoc{Status: "read", Since: timeDoc(ra.Activity.Since), Before: timeDoc(ra.Activity.Before), Note: ra.Activity.Unknown}}
	switch {
	case ra.Activity.NotReadable:
		ad.Activity.Status = "not_readable"
	case ra.Activity.Unknown != "":
		ad.Activity.Status = "unknown"
	}
	if ra.Err != nil {
		ad.Error = ra.Err.Error()
	}
	live := ra.Live
	if live == nil {
		return ad
	}
	ad.Name = live.Name
	for _, m := range live.OrgAdmins {
		ad.OrgSuperAdmins = append(ad.OrgSuperAdmins, m.Email)
	}
	for _, nc := range live.NotChecked {
		ad.NotChecked = append(ad.NotChecked, nc.String())
	}
	overdue := map[desired.Pos]bool{}
	for _, m := range live.Members {
		md := memberDoc(in, ra, m, grants, bindings[m.Email])
		ad.Summary.Members++
		switch {
		case m.Status == "pending":
			ad.Summary.Pending++
		case !m.TwoFactor:
			ad.Summary.WithoutTwoFactor++
		}
		for _, acc := range md.Access {
			if !acc.InGit && acc.Note == "" {
				ad.Summary.NotInGit++
			}
			for _, g := range acc.Grants {
				if g.ReviewOverdue {
					overdue[desired.ParsePos(g.Source)] = true
				}
			}
		}
		ad.Members = append(ad.Members, md)
	}
	ad.Summary.OverdueGrants = len(overdue)
	return ad
}

// memberDoc is a live member: its last activity, what to know about it,
// and each access it holds (its own first, then through user groups)
// with the grants behind it.
func memberDoc(in Input, ra Account, m cloudflare.Member, grants map[desired.Pos]*desired.Grant, bindings []desired.Binding) MemberDoc {
	live := ra.Live
	md := MemberDoc{Email: m.Email, Status: m.Status, TwoFactor: m.TwoFactor, Access: []AccessDoc{},
		Protected: slices.ContainsFunc(ra.Protected, func(e string) bool { return strings.EqualFold(e, m.Email) })}
	if e, ok := ra.Activity.Last[m.Email]; ok && ra.Activity.Unknown == "" {
		md.LastActivity = &ActionDoc{Time: timeDoc(e.Time), Action: e.Action, Context: e.ActorContext}
	}
	if md.Protected {
		md.Notes = append(md.Notes, "protected: cfaccess never changes this member")
	}
	if m.Legacy {
		md.Notes = append(md.Notes, "described by legacy roles")
	}
	if m.Denies > 0 {
		md.Notes = append(md.Notes, fmt.Sprintf("deny policies: %d (not shown: cfaccess never writes them)", m.Denies))
	}
	if len(m.Unknown) > 0 {
		md.Notes = append(md.Notes, "access cfaccess cannot express: "+strings.Join(m.Unknown, ", "))
	}
	groups := live.GroupsOf(m.ID)
	var direct, inherited []AccessDoc
	for _, a := range m.Access {
		acc := accessDoc(in, live, a, bindings, grants)
		if !acc.InGit && a.Role == diff.MinimalRole && len(groups) > 0 {
			acc.Note = placeholderNote
		}
		direct = append(direct, acc)
	}
	for _, g := range groups {
		for _, a := range g.Access {
			acc := accessDoc(in, live, a, bindings, grants)
			acc.UserGroup = g.Name
			inherited = append(inherited, acc)
		}
		if g.Denies > 0 || len(g.Unknown) > 0 {
			md.Notes = append(md.Notes, "user group "+g.Name+" has access cfaccess cannot express (deny policies or other resource groups)")
		}
	}
	byDisplay := func(a, b AccessDoc) int {
		return cmp.Or(cmp.Compare(a.UserGroup, b.UserGroup), cmp.Compare(a.Role, b.Role), cmp.Compare(a.Resource, b.Resource))
	}
	slices.SortFunc(direct, byDisplay)
	slices.SortFunc(inherited, byDisplay)
	md.Access = append(append(md.Access, direct...), inherited...)
	return md
}

// accessDoc finds the grants behind one live access of a member: its
// bindings of the same Cloudflare role on the same resource (zones
// resolved in the account), however the member holds it. The active
// grants when there are any, otherwise those that are not (expired, not
// yet started) to say why.
func accessDoc(in Input, live *cloudflare.Account, a desired.Access, bs []desired.Binding, grants map[desired.Pos]*desired.Grant) AccessDoc {
	acc := AccessDoc{Role: a.Role, Resource: live.Display(a.Resource).String(), Grants: []GrantDoc{}}
	var active, inactive []desired.Binding
	for _, b := range bs {
		if b.Access.Role != a.Role {
			continue
		}
		if res, err := live.Resolve(b.Access.Resource); err != nil || res != a.Resource {
			continue
		}
		if b.Active {
			active = append(active, b)
		} else {
			inactive = append(inactive, b)
		}
	}
	behind := active
	if len(active) == 0 {
		behind = inactive
	}
	acc.InGit = len(active) > 0
	var order []desired.Pos
	roles := map[desired.Pos][]string{}
	for _, b := range behind {
		if _, seen := roles[b.Source]; !seen {
			order = append(order, b.Source)
		}
		if !slices.Contains(roles[b.Source], b.Role) {
			roles[b.Source] = append(roles[b.Source], b.Role)
		}
	}
	for _, pos := range order {
		if g := grants[pos]; g != nil {
			acc.Grants = append(acc.Grants, grantDoc(in, g, roles[pos]))
		}
	}
	return acc
}

// grantDoc is a grant as of the review's instant, with the roles of it
// that give an access, and its age when Git gave it.
func grantDoc(in Input, g *desired.Grant, roles []string) GrantDoc {
	now := in.Now
	gd := GrantDoc{Source: g.Pos.String(), Roles: roles, Reason: g.Reason, Active: g.ActiveAt(now),
		NotBefore: timeDoc(g.NotBefore), Expires: timeDoc(g.Expires), ReviewAfter: timeDoc(g.ReviewAfter),
		ReviewOverdue: g.ReviewDue(now), BreakGlass: g.BreakGlass}
	if gd.Roles == nil {
		gd.Roles = []string{}
	}
	if in.Added != nil {
		if added, ok := in.Added(g.Pos); ok {
			days := max(int(now.Sub(added.Time)/(24*time.Hour)), 0)
			gd.Added, gd.AddedCommit, gd.AgeDays = timeDoc(added.Time), added.Commit, &days
		}
	}
	return gd
}

// timeDoc writes t in RFC 3339, in UTC; "" for the zero time.
func timeDoc(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
