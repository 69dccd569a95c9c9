package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/gitsource"
	"github.com/cfaccess/reconciler/internal/review"
)

// An access review (reconciler review, docs/review.md) is built by
// review.New; every format renders its one Doc: markdown, CSV and JSON
// show the same facts.

// ReviewFormats are the formats of Review.
var ReviewFormats = []string{"markdown", "csv", "json"}

// Review writes a review in format: markdown, csv or json.
func Review(w io.Writer, format string, doc *review.Doc) error {
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

// countsWords says a review's figures in words.
func countsWords(c review.Counts) string {
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
func grantMarkdown(g review.GrantDoc, now string) string {
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

// reviewMarkdown writes a review for a pull request: the head and
// totals, the grants overdue for review, then a table of each account's
// members.
func reviewMarkdown(w io.Writer, doc *review.Doc) error {
	var b strings.Builder
	reviewHeadMarkdown(&b, doc)
	overdueMarkdown(&b, doc.OverdueGrants)
	breakGlassMarkdown(&b, doc.BreakGlassGrants)
	for _, a := range doc.Accounts {
		reviewAccountMarkdown(&b, a, doc.GeneratedAt)
	}
	_, err := io.WriteString(w, strings.TrimRight(b.String(), "\n")+"\n")
	return err
}

// reviewHeadMarkdown writes the marker, the title, when and from what the
// review was made, and the totals (per account when there are several).
func reviewHeadMarkdown(b *strings.Builder, doc *review.Doc) {
	// The marker lets CI find its own pull request or comment.
	b.WriteString("<!-- cfaccess-review -->\n")
	day := doc.GeneratedAt
	if t, err := time.Parse(time.RFC3339, day); err == nil {
		day = t.UTC().Format(time.DateOnly)
	}
	fmt.Fprintf(b, "# Access review, %s\n\n", day)
	fmt.Fprintf(b, "Made at %s", reviewMinute(doc.GeneratedAt))
	if doc.Revision != "" {
		fmt.Fprintf(b, " from revision `%s` — %s", gitsource.Short(doc.Revision), mdEscape(doc.RevisionSubject))
	}
	fmt.Fprintf(b, ". Last activity is the newest entry of the account's audit log in the %s before; Cloudflare logs changes, not reads.\n\n",
		plural(doc.ActivityWindowDays, "day"))
	if doc.Denied {
		b.WriteString("⛔ A guardrail denies the repository (run `reconciler validate`): grants are shown as declared.\n\n")
	}
	if doc.GrantAges != "" {
		fmt.Fprintf(b, "Grant ages unknown: %s.\n\n", mdEscape(doc.GrantAges))
	}
	s := doc.Summary
	var unread []string
	for _, a := range doc.Accounts {
		if a.Error != "" {
			unread = append(unread, mdEscape(a.Account))
		}
	}
	if len(unread) > 0 {
		// First, before any figure: the figures leave these accounts out.
		fmt.Fprintf(b, "❌ **%s could not be read (%s): this review is incomplete; the reasons are below.**\n\n",
			plural(len(unread), "account"), strings.Join(unread, ", "))
	}
	fmt.Fprintf(b, "**%s: %s.**\n\n", plural(s.Accounts, "account"), countsWords(s.Counts))
	if len(doc.Accounts) > 1 {
		b.WriteString("| Account | Members | Pending | Without 2FA | Not in Git | Overdue grants |\n|---|---|---|---|---|---|\n")
		for _, a := range doc.Accounts {
			fmt.Fprintf(b, "| %s | %d | %d | %d | %d | %d |\n", reviewTitle(a), a.Summary.Members, a.Summary.Pending,
				a.Summary.WithoutTwoFactor, a.Summary.NotInGit, a.Summary.OverdueGrants)
		}
		b.WriteByte('\n')
	}
}

// overdueMarkdown writes the grants overdue for review, and how to
// approve them.
func overdueMarkdown(b *strings.Builder, grants []review.GrantDoc) {
	if len(grants) == 0 {
		return
	}
	b.WriteString("## Grants overdue for review\n\n| Grant | Who | Roles | Reason | Review after |\n|---|---|---|---|---|\n")
	for _, g := range grants {
		var roles []string
		for _, r := range g.Roles {
			roles = append(roles, mdEscape(r))
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", mdCode(g.Source), grantWho(g), strings.Join(roles, ", "),
			mdEscape(g.Reason), reviewDate(g.ReviewAfter))
	}
	b.WriteString("\nApprove each by moving its `review_after` on in this pull request, or remove the grant.\n\n")
}

// grantWho is a grant's users and groups, escaped for a table cell.
func grantWho(g review.GrantDoc) string {
	var who []string
	for _, u := range g.Users {
		who = append(who, mdEscape(u))
	}
	for _, x := range g.Groups {
		who = append(who, "group "+mdEscape(x))
	}
	return strings.Join(who, ", ")
}

// breakGlassMarkdown lists the break-glass grants, for a look after the
// fact.
func breakGlassMarkdown(b *strings.Builder, grants []review.GrantDoc) {
	if len(grants) == 0 {
		return
	}
	b.WriteString("## Break-glass grants, not reviewed before use\n\n| Grant | Who | Roles | Reason | Expires | Added |\n|---|---|---|---|---|---|\n")
	for _, g := range grants {
		added := "–"
		if g.AddedCommit != "" {
			added = reviewDate(g.Added) + " " + mdCode(gitsource.Short(g.AddedCommit))
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", mdCode(g.Source), grantWho(g), mdEscape(strings.Join(g.Roles, ", ")),
			mdEscape(g.Reason), reviewDate(g.Expires), added)
	}
	b.WriteString("\nEach was applied before anyone reviewed it: review its commit, and remove the grant once it has ended.\n\n")
}

// reviewAccountMarkdown writes an account: its figures, a table of its
// members, and what the review could not see. now is the review's instant.
func reviewAccountMarkdown(b *strings.Builder, a review.AccountDoc, now string) {
	fmt.Fprintf(b, "## %s\n\n", reviewTitle(a))
	fmt.Fprintf(b, "Account `%s`", mdEscape(a.AccountID))
	if a.Error != "" {
		fmt.Fprintf(b, ": ❌ could not be read: %s\n\n", mdEscape(a.Error))
		return
	}
	fmt.Fprintf(b, ": %s.\n\n", countsWords(a.Summary))
	if len(a.Members) > 0 {
		b.WriteString("| Member | Status | 2FA | Access | Grant | Last activity |\n|---|---|---|---|---|---|\n")
	}
	for _, m := range a.Members {
		memberMarkdown(b, m, a.Activity.Status == "read", now)
	}
	if len(a.Members) > 0 {
		b.WriteByte('\n')
	}
	if a.Activity.Status != "read" {
		fmt.Fprintf(b, "❔ %s\n\n", mdEscape(a.Activity.Note))
	}
	for _, e := range a.OrgSuperAdmins {
		fmt.Fprintf(b, "⚠️ %s is a Super Administrator of the organization: access outside this account's control\n\n", mdEscape(e))
	}
	for _, nc := range a.NotChecked {
		fmt.Fprintf(b, "❔ %s\n\n", mdEscape(nc))
	}
}

// memberMarkdown writes a member's rows: the first with the member, its
// 2FA and last activity (known when the audit log was read), then one
// per further access.
func memberMarkdown(b *strings.Builder, m review.MemberDoc, activityRead bool, now string) {
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
	case !activityRead:
		activity = "unknown"
	case m.LastActivity != nil:
		activity = reviewMinute(m.LastActivity.Time)
		if what := strings.TrimSpace(m.LastActivity.Action + " " + cloudflare.ContextText(m.LastActivity.Context)); what != "" {
			activity += " (" + mdEscape(what) + ")"
		}
	}
	status := mdEscape(m.Status)
	if len(m.Access) == 0 {
		fmt.Fprintf(b, "| %s | %s | %s | none | | %s |\n", member, status, twoFA, activity)
		return
	}
	for i, acc := range m.Access {
		access := mdEscape(acc.Role + " on " + acc.Resource)
		if acc.UserGroup != "" {
			access += " (via user group " + mdEscape(acc.UserGroup) + ")"
		}
		var grant []string
		for _, g := range acc.Grants {
			grant = append(grant, grantMarkdown(g, now))
		}
		switch {
		case acc.Note != "":
			grant = append(grant, "_"+mdEscape(acc.Note)+"_")
		case !acc.InGit:
			grant = append(grant, "⚠️ **"+notInGit(acc)+"**")
		}
		if i == 0 {
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", member, status, twoFA, access, strings.Join(grant, "<br>"), activity)
		} else {
			fmt.Fprintf(b, "| | | | %s | %s | |\n", access, strings.Join(grant, "<br>"))
		}
	}
}

func reviewTitle(a review.AccountDoc) string {
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

func reviewCSV(w io.Writer, doc *review.Doc) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(reviewCSVHeader); err != nil {
		return err
	}
	for _, a := range doc.Accounts {
		for _, row := range accountCSV(a) {
			if err := cw.Write(csvCells(row)); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// accountCSV are the rows of an account: one per member and access, or
// the one saying why it could not be read.
func accountCSV(a review.AccountDoc) [][]string {
	if a.Error != "" {
		row := make([]string, len(reviewCSVHeader))
		row[0], row[1], row[len(row)-1] = a.Account, a.AccountID, "could not be read: "+a.Error
		return [][]string{row}
	}
	var rows [][]string
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
			rows = append(rows, row)
		}
		for _, acc := range m.Access {
			rows = append(rows, accessCSV(base, acc, activity))
		}
	}
	return rows
}

// accessCSV is the row of one access of a member (base its first cells):
// the grants behind it, and the member's last activity.
func accessCSV(base []string, acc review.AccessDoc, activity string) []string {
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
	return append(slices.Clone(base), acc.Role, acc.Resource, acc.UserGroup, strconv.FormatBool(acc.InGit),
		joinCSV(sources), joinCSV(reasons), joinCSV(added), joinCSV(ages), joinCSV(expires), joinCSV(reviews),
		strconv.FormatBool(overdue), activity, note)
}

// notInGit says why an access is not in Git: no grant gives it, or the
// grants that did are not active (expired, or not started).
func notInGit(acc review.AccessDoc) string {
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
