package report

import (
	"cmp"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/diff"
	"github.com/cfaccess/reconciler/internal/gitsource"
)

// An access review (reconciler review, docs/review.md) answers an
// auditor's question per account: who has what, from which grant, since
// when, until when, with or without 2FA, and when they last did
// something. NewReview assembles it from what the command read — the
// checked repository, each account's live state and audit log, the
// grants' Git history — into one ReviewDoc, which every format renders:
// markdown, CSV and JSON show the same facts.

// ReviewFormats are the formats of Review.
var ReviewFormats = []string{"markdown", "csv", "json"}

// ReviewInput is what a review is made of.
type ReviewInput struct {
	// Checked is the checked repository; its Repo must be set.
	Checked  *check.Checked
	Revision gitsource.Revision
	// Now is the instant the review is made at: grants are active, due
	// for review and aged as of then.
	Now time.Time
	// Window is how far back the audit log was read for activity.
	Window   time.Duration
	Accounts []ReviewAccount
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

// ReviewAccount is one account as the review command read it.
type ReviewAccount struct {
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

// ReviewDoc is the stable JSON form of an access review (format_version
// 1); the other Review*Doc types are its parts. Times are RFC 3339, in
// UTC.
type ReviewDoc struct {
	FormatVersion   int    `json:"format_version"`
	GeneratedAt     string `json:"generated_at"`
	Revision        string `json:"revision,omitempty"`
	RevisionSubject string `json:"revision_subject,omitempty"`
	// Denied is set when a guardrail denies the repository: the review
	// shows the accounts as they are, and grants as declared.
	Denied             bool `json:"denied"`
	ActivityWindowDays int  `json:"activity_window_days"`
	// GrantAges says why grants have no "added" ("" when Git gave them).
	GrantAges string           `json:"grant_ages_unknown,omitempty"`
	Summary   ReviewSummaryDoc `json:"summary"`
	// OverdueGrants are every grant of the repository past its
	// review_after and not expired, whether it gives access yet or not.
	OverdueGrants []ReviewGrantDoc   `json:"overdue_grants"`
	Accounts      []ReviewAccountDoc `json:"accounts"`
}

// ReviewSummaryDoc counts over every account.
type ReviewSummaryDoc struct {
	Accounts int `json:"accounts"`
	ReviewCounts
}

// ReviewCounts are a review's figures. WithoutTwoFactor counts accepted
// members (a pending invitation has no login yet); NotInGit counts
// accesses (member × role × resource) no active grant gives;
// OverdueGrants grants past their review_after.
type ReviewCounts struct {
	Members          int `json:"members"`
	Pending          int `json:"pending"`
	WithoutTwoFactor int `json:"without_2fa"`
	NotInGit         int `json:"access_not_in_git"`
	OverdueGrants    int `json:"overdue_grants"`
}

// ReviewAccountDoc is one account: its members, or why it could not be
// read.
type ReviewAccountDoc struct {
	Account   string            `json:"account"`
	AccountID string            `json:"account_id"`
	Name      string            `json:"name,omitempty"`
	Error     string            `json:"error,omitempty"`
	Activity  ReviewActivityDoc `json:"activity"`
	Summary   ReviewCounts      `json:"summary"`
	Members   []ReviewMemberDoc `json:"members"`
	// OrgSuperAdmins hold the account without being members.
	OrgSuperAdmins []string `json:"organization_super_admins,omitempty"`
	NotChecked     []string `json:"not_checked,omitempty"`
}

// ReviewActivityDoc says how the audit log was read: status "read",
// "unknown" (the query failed or was cut short: note says why) or
// "not_readable" (the credentials may not read it).
type ReviewActivityDoc struct {
	Status string `json:"status"`
	Since  string `json:"since"`
	Before string `json:"before"`
	Note   string `json:"note,omitempty"`
}

// ReviewMemberDoc is a live member.
type ReviewMemberDoc struct {
	Email     string `json:"email"`
	Status    string `json:"status"`
	TwoFactor bool   `json:"two_factor"`
	Protected bool   `json:"protected,omitempty"`
	// LastActivity is the member's newest audit entry in the window;
	// null when there is none (or the log was not read: see the
	// account's activity).
	LastActivity *ReviewActionDoc  `json:"last_activity"`
	Notes        []string          `json:"notes,omitempty"`
	Access       []ReviewAccessDoc `json:"access"`
}

// ReviewActionDoc is an audit entry: when, what ("Edit Member") and how
// ("dash", "api_token").
type ReviewActionDoc struct {
	Time    string `json:"time"`
	Action  string `json:"action,omitempty"`
	Context string `json:"context,omitempty"`
}

// ReviewAccessDoc is one role on one resource a member holds: through its
// own policies, or through a user group; and the grants that give it.
type ReviewAccessDoc struct {
	Role      string `json:"role"`
	Resource  string `json:"resource"`
	UserGroup string `json:"user_group,omitempty"`
	// InGit is set when an active grant gives the member this access.
	InGit  bool             `json:"in_git"`
	Grants []ReviewGrantDoc `json:"grants"`
	Note   string           `json:"note,omitempty"`
}

// ReviewGrantDoc is a grant: where, why, since and until when. Users and
// Groups are given in overdue_grants only.
type ReviewGrantDoc struct {
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
}

// placeholderNote is the note of a user group's placeholder: the policy every
// member needs of its own when its access is all through user groups.
const placeholderNote = "the policy of its own every member needs when its access is through user groups"

// NewReview assembles the review of in.
func NewReview(in ReviewInput) *ReviewDoc {
	now := in.Now.UTC()
	repo := in.Checked.Repo
	doc := &ReviewDoc{FormatVersion: 1, GeneratedAt: now.Format(time.RFC3339), Revision: in.Revision.SHA,
		RevisionSubject: in.Revision.Subject, Denied: in.Checked.Denied(),
		ActivityWindowDays: int(in.Window / (24 * time.Hour)), GrantAges: in.AgesUnknown,
		OverdueGrants: []ReviewGrantDoc{}, Accounts: []ReviewAccountDoc{}}
	grants := map[desired.Pos]*desired.Grant{}
	for _, g := range repo.Grants {
		grants[g.Pos] = g
		if g.ReviewDue(now) {
			gd := grantDoc(in, g, g.Roles)
			gd.Users, gd.Groups = g.Users, g.Groups
			doc.OverdueGrants = append(doc.OverdueGrants, gd)
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
		ad := reviewAccount(in, ra, grants, bindings[ra.Provider])
		doc.Summary.Accounts++
		doc.Summary.Members += ad.Summary.Members
		doc.Summary.Pending += ad.Summary.Pending
		doc.Summary.WithoutTwoFactor += ad.Summary.WithoutTwoFactor
		doc.Summary.NotInGit += ad.Summary.NotInGit
		doc.Accounts = append(doc.Accounts, ad)
	}
	return doc
}

func reviewAccount(in ReviewInput, ra ReviewAccount, grants map[desired.Pos]*desired.Grant, bindings map[string][]desired.Binding) ReviewAccountDoc {
	ad := ReviewAccountDoc{Account: ra.Provider, AccountID: ra.AccountID, Members: []ReviewMemberDoc{},
		Activity: ReviewActivityDoc{Status: "read", Since: reviewTime(ra.Activity.Since), Before: reviewTime(ra.Activity.Before), Note: ra.Activity.Unknown}}
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
		md := ReviewMemberDoc{Email: m.Email, Status: m.Status, TwoFactor: m.TwoFactor, Access: []ReviewAccessDoc{},
			Protected: slices.ContainsFunc(ra.Protected, func(e string) bool { return strings.EqualFold(e, m.Email) })}
		if e, ok := ra.Activity.Last[m.Email]; ok && ra.Activity.Unknown == "" {
			md.LastActivity = &ReviewActionDoc{Time: reviewTime(e.Time), Action: e.Action, Context: e.ActorContext}
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
		var direct, inherited []ReviewAccessDoc
		for _, a := range m.Access {
			acc := reviewAccess(in, live, a, bindings[m.Email], grants)
			if !acc.InGit && a.Role == diff.MinimalRole && len(groups) > 0 {
				acc.Note = placeholderNote
			}
			direct = append(direct, acc)
		}
		for _, g := range groups {
			for _, a := range g.Access {
				acc := reviewAccess(in, live, a, bindings[m.Email], grants)
				acc.UserGroup = g.Name
				inherited = append(inherited, acc)
			}
			if g.Denies > 0 || len(g.Unknown) > 0 {
				md.Notes = append(md.Notes, "user group "+g.Name+" has access cfaccess cannot express (deny policies or other resource groups)")
			}
		}
		byDisplay := func(a, b ReviewAccessDoc) int {
			return cmp.Or(cmp.Compare(a.UserGroup, b.UserGroup), cmp.Compare(a.Role, b.Role), cmp.Compare(a.Resource, b.Resource))
		}
		slices.SortFunc(direct, byDisplay)
		slices.SortFunc(inherited, byDisplay)
		md.Access = append(append(md.Access, direct...), inherited...)
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

// reviewAccess finds the grants behind one live access of a member: its
// bindings of the same Cloudflare role on the same resource (zones
// resolved in the account), however the member holds it. The active
// grants when there are any, otherwise those that are not (expired, not
// yet started) to say why.
func reviewAccess(in ReviewInput, live *cloudflare.Account, a desired.Access, bs []desired.Binding, grants map[desired.Pos]*desired.Grant) ReviewAccessDoc {
	acc := ReviewAccessDoc{Role: a.Role, Resource: live.Display(a.Resource).String(), Grants: []ReviewGrantDoc{}}
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

func grantDoc(in ReviewInput, g *desired.Grant, roles []string) ReviewGrantDoc {
	now := in.Now
	gd := ReviewGrantDoc{Source: g.Pos.String(), Roles: roles, Reason: g.Reason, Active: g.ActiveAt(now),
		NotBefore: reviewTime(g.NotBefore), Expires: reviewTime(g.Expires), ReviewAfter: reviewTime(g.ReviewAfter),
		ReviewOverdue: g.ReviewDue(now)}
	if gd.Roles == nil {
		gd.Roles = []string{}
	}
	if in.Added != nil {
		if added, ok := in.Added(g.Pos); ok {
			days := max(int(now.Sub(added.Time)/(24*time.Hour)), 0)
			gd.Added, gd.AddedCommit, gd.AgeDays = reviewTime(added.Time), added.Commit, &days
		}
	}
	return gd
}

// reviewTime writes t in RFC 3339, in UTC; "" for the zero time.
func reviewTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// Review writes a review in format: markdown, csv or json.
func Review(w io.Writer, format string, doc *ReviewDoc) error {
	switch format {
	case "markdown":
		return reviewMarkdown(w, doc)
	case "csv":
		return reviewCSV(w, doc)
	case "json":
		return WriteJSON(w, doc)
	}
	return CheckFormat(format, ReviewFormats)
}

// reviewDate shows an RFC 3339 time for people: the date alone at
// midnight (as dates are written in the repository), otherwise the date
// and minute, in UTC.
func reviewDate(s string) string {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return s
	}
	t = t.UTC()
	if t.Equal(t.Truncate(24 * time.Hour)) {
		return t.Format(time.DateOnly)
	}
	return t.Format("2006-01-02 15:04 UTC")
}

// reviewMinute shows an RFC 3339 time to the minute, in UTC.
func reviewMinute(s string) string {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return s
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// counts says a review's figures in words.
func (c ReviewCounts) words() string {
	members := plural(c.Members, "member")
	if c.Pending > 0 {
		members += fmt.Sprintf(" (%d pending)", c.Pending)
	}
	accesses := fmt.Sprintf("%d accesses", c.NotInGit)
	if c.NotInGit == 1 {
		accesses = "1 access"
	}
	return fmt.Sprintf("%s, %s without 2FA, %s not in Git, %s overdue for review", members,
		plural(c.WithoutTwoFactor, "member"), accesses, plural(c.OverdueGrants, "grant"))
}

// grantMarkdown is a grant in a table cell: where, why, since and until
// when, and whether its review is overdue. now is the review's instant
// (RFC 3339, UTC, as the grant's times: they compare as strings).
func grantMarkdown(g ReviewGrantDoc, now string) string {
	parts := []string{mdCode(g.Source)}
	if g.Reason != "" {
		parts[0] += " " + mdEscape(g.Reason)
	}
	if g.Added != "" {
		parts = append(parts, fmt.Sprintf("added %s (%s ago)", reviewDate(g.Added), plural(*g.AgeDays, "day")))
	}
	switch {
	case g.Active && g.Expires != "":
		parts = append(parts, "expires "+reviewDate(g.Expires))
	case !g.Active && g.NotBefore > now:
		parts = append(parts, "⏳ starts "+reviewDate(g.NotBefore))
	case !g.Active && g.Expires != "":
		parts = append(parts, "⌛ expired "+reviewDate(g.Expires))
	}
	if g.ReviewAfter != "" {
		parts = append(parts, "review after "+reviewDate(g.ReviewAfter))
	}
	s := strings.Join(parts, "; ")
	if g.ReviewOverdue {
		s += " ⚠️ **review overdue**"
	}
	return s
}

func reviewMarkdown(w io.Writer, doc *ReviewDoc) error {
	var b strings.Builder
	// The marker lets CI find its own pull request or comment.
	b.WriteString("<!-- cfaccess-review -->\n")
	day := doc.GeneratedAt
	if t, err := time.Parse(time.RFC3339, day); err == nil {
		day = t.UTC().Format(time.DateOnly)
	}
	fmt.Fprintf(&b, "# Access review, %s\n\n", day)
	fmt.Fprintf(&b, "Made at %s", reviewMinute(doc.GeneratedAt))
	if doc.Revision != "" {
		fmt.Fprintf(&b, " from revision `%s` — %s", gitsource.Short(doc.Revision), mdEscape(doc.RevisionSubject))
	}
	fmt.Fprintf(&b, ". Last activity is the newest entry of the account's audit log in the %s before; Cloudflare logs changes, not reads.\n\n",
		plural(doc.ActivityWindowDays, "day"))
	if doc.Denied {
		b.WriteString("⛔ A guardrail denies the repository (run `reconciler validate`): grants are shown as declared.\n\n")
	}
	if doc.GrantAges != "" {
		fmt.Fprintf(&b, "Grant ages unknown: %s.\n\n", mdEscape(doc.GrantAges))
	}
	s := doc.Summary
	fmt.Fprintf(&b, "**%s: %s.**\n\n", plural(s.Accounts, "account"), s.words())
	if len(doc.Accounts) > 1 {
		b.WriteString("| Account | Members | Pending | Without 2FA | Not in Git | Overdue grants |\n|---|---|---|---|---|---|\n")
		for _, a := range doc.Accounts {
			fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d |\n", reviewTitle(a), a.Summary.Members, a.Summary.Pending,
				a.Summary.WithoutTwoFactor, a.Summary.NotInGit, a.Summary.OverdueGrants)
		}
		b.WriteByte('\n')
	}
	if len(doc.OverdueGrants) > 0 {
		b.WriteString("## Grants overdue for review\n\n| Grant | Who | Roles | Reason | Review after |\n|---|---|---|---|---|\n")
		for _, g := range doc.OverdueGrants {
			var who []string
			for _, u := range g.Users {
				who = append(who, mdEscape(u))
			}
			for _, x := range g.Groups {
				who = append(who, "group "+mdEscape(x))
			}
			var roles []string
			for _, r := range g.Roles {
				roles = append(roles, mdEscape(r))
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", mdCode(g.Source), strings.Join(who, ", "), strings.Join(roles, ", "),
				mdEscape(g.Reason), reviewDate(g.ReviewAfter))
		}
		b.WriteString("\nApprove each by moving its `review_after` on in this pull request, or remove the grant.\n\n")
	}
	for _, a := range doc.Accounts {
		fmt.Fprintf(&b, "## %s\n\n", reviewTitle(a))
		fmt.Fprintf(&b, "Account `%s`", mdEscape(a.AccountID))
		if a.Error != "" {
			fmt.Fprintf(&b, ": ❌ could not be read: %s\n\n", mdEscape(a.Error))
			continue
		}
		fmt.Fprintf(&b, ": %s.\n\n", a.Summary.words())
		if len(a.Members) > 0 {
			b.WriteString("| Member | Status | 2FA | Access | Grant | Last activity |\n|---|---|---|---|---|---|\n")
		}
		for _, m := range a.Members {
			member := mdEscape(m.Email)
			for _, n := range m.Notes {
				member += "<br>_" + mdEscape(n) + "_"
			}
			twoFA := "❌ no"
			switch {
			case m.Status == "pending":
				twoFA = "—"
			case m.TwoFactor:
				twoFA = "✅ yes"
			}
			activity := "none in the window"
			switch {
			case a.Activity.Status != "read":
				activity = "unknown"
			case m.LastActivity != nil:
				activity = reviewMinute(m.LastActivity.Time)
				if what := strings.TrimSpace(m.LastActivity.Action + " " + cloudflare.ContextText(m.LastActivity.Context)); what != "" {
					activity += " (" + mdEscape(what) + ")"
				}
			}
			status := mdEscape(m.Status)
			if len(m.Access) == 0 {
				fmt.Fprintf(&b, "| %s | %s | %s | none | | %s |\n", member, status, twoFA, activity)
				continue
			}
			for i, acc := range m.Access {
				access := mdEscape(acc.Role + " on " + acc.Resource)
				if acc.UserGroup != "" {
					access += " (via user group " + mdEscape(acc.UserGroup) + ")"
				}
				var grant []string
				for _, g := range acc.Grants {
					grant = append(grant, grantMarkdown(g, doc.GeneratedAt))
				}
				switch {
				case acc.Note != "":
					grant = append(grant, "_"+mdEscape(acc.Note)+"_")
				case !acc.InGit:
					grant = append(grant, "⚠️ **"+notInGit(acc)+"**")
				}
				if i == 0 {
					fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", member, status, twoFA, access, strings.Join(grant, "<br>"), activity)
				} else {
					fmt.Fprintf(&b, "| | | | %s | %s | |\n", access, strings.Join(grant, "<br>"))
				}
			}
		}
		if len(a.Members) > 0 {
			b.WriteByte('\n')
		}
		if a.Activity.Status != "read" {
			fmt.Fprintf(&b, "❔ %s\n\n", mdEscape(a.Activity.Note))
		}
		for _, e := range a.OrgSuperAdmins {
			fmt.Fprintf(&b, "⚠️ %s is a Super Administrator of the organization: access outside this account's control\n\n", mdEscape(e))
		}
		for _, nc := range a.NotChecked {
			fmt.Fprintf(&b, "❔ %s\n\n", mdEscape(nc))
		}
	}
	_, err := io.WriteString(w, strings.TrimRight(b.String(), "\n")+"\n")
	return err
}

func reviewTitle(a ReviewAccountDoc) string {
	title := mdEscape(a.Account)
	if a.Name != "" {
		title += " — " + mdEscape(a.Name)
	}
	return title
}

// reviewCSVHeader names the columns of the CSV form: one row per member
// and access (a member without access has one row, its access empty; an
// account that could not be read one row, with the error in note). Cells
// listing several grants separate them with "; ", in the same order in
// every such cell.
var reviewCSVHeader = []string{"account", "account_id", "email", "status", "two_factor", "protected", "role", "resource",
	"user_group", "in_git", "grants", "reasons", "added", "age_days", "expires", "review_after", "review_overdue",
	"last_activity", "note"}

func reviewCSV(w io.Writer, doc *ReviewDoc) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(reviewCSVHeader); err != nil {
		return err
	}
	for _, a := range doc.Accounts {
		if a.Error != "" {
			row := make([]string, len(reviewCSVHeader))
			row[0], row[1], row[len(row)-1] = a.Account, a.AccountID, "could not be read: "+a.Error
			if err := cw.Write(csvCells(row)); err != nil {
				return err
			}
			continue
		}
		for _, m := range a.Members {
			activity := ""
			switch {
			case a.Activity.Status != "read":
				activity = "unknown"
			case m.LastActivity != nil:
				activity = m.LastActivity.Time
			}
			base := []string{a.Account, a.AccountID, m.Email, m.Status, strconv.FormatBool(m.TwoFactor), strconv.FormatBool(m.Protected)}
			if len(m.Access) == 0 {
				row := append(slices.Clone(base), make([]string, len(reviewCSVHeader)-len(base))...)
				row[len(row)-2], row[len(row)-1] = activity, "no access"
				if err := cw.Write(csvCells(row)); err != nil {
					return err
				}
			}
			for _, acc := range m.Access {
				var sources, reasons, added, ages, expires, reviews []string
				overdue := false
				for _, g := range acc.Grants {
					sources = append(sources, g.Source)
					reasons = append(reasons, g.Reason)
					added = append(added, g.Added)
					age := ""
					if g.AgeDays != nil {
						age = strconv.Itoa(*g.AgeDays)
					}
					ages = append(ages, age)
					expires = append(expires, g.Expires)
					reviews = append(reviews, g.ReviewAfter)
					overdue = overdue || g.ReviewOverdue
				}
				note := acc.Note
				if !acc.InGit && note == "" {
					note = notInGit(acc)
				}
				row := append(slices.Clone(base), acc.Role, acc.Resource, acc.UserGroup, strconv.FormatBool(acc.InGit),
					joinCSV(sources), joinCSV(reasons), joinCSV(added), joinCSV(ages), joinCSV(expires), joinCSV(reviews),
					strconv.FormatBool(overdue), activity, note)
				if err := cw.Write(csvCells(row)); err != nil {
					return err
				}
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// notInGit says why an access is not in Git: no grant gives it, or the
// grants that did are not active (expired, or not started).
func notInGit(acc ReviewAccessDoc) string {
	if len(acc.Grants) > 0 {
		return "not in Git: no active grant"
	}
	return "not in Git"
}

// joinCSV joins the values of several grants; "" when every one is empty.
func joinCSV(vs []string) string {
	if !slices.ContainsFunc(vs, func(s string) bool { return s != "" }) {
		return ""
	}
	return strings.Join(vs, "; ")
}

// csvCells makes cells safe to open in a spreadsheet: on one line, with
// invisible characters escaped, and a cell that would start a formula
// (=, +, -, @, tab, carriage return: OWASP's "CSV injection") prefixed
// with a quote, which spreadsheets show as text.
func csvCells(row []string) []string {
	for i, s := range row {
		s = Visible(strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s))
		if s != "" && strings.ContainsRune("=+-@\t", rune(s[0])) {
			s = "'" + s
		}
		row[i] = s
	}
	return row
}
