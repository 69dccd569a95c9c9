package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/diff"
	"github.com/cfaccess/reconciler/internal/gitsource"
)

// DefaultMaxSize bounds a markdown plan (--max-size): under GitHub's
// 65,536 characters of a pull-request comment, with room to spare.
const DefaultMaxSize = 60_000

const changeTableHead = "| | Member | Access | Why |\n|---|---|---|---|\n"

// mdSection is an account of a markdown plan: its title (and "No
// changes."), its changes as table rows, and what the plan leaves alone.
type mdSection struct {
	title, tail string
	rows        []string
	// risky is set for the rows of changes with risks.
	risky []bool
}

// markdownSections renders each account of a plan, lists in its tail cut
// after maxList entries (0: every one).
func markdownSections(doc *PlanDoc, maxList int) []mdSection {
	var out []mdSection
	for _, a := range doc.Accounts {
		var t, tail strings.Builder
		markdownAccountTitle(&t, a)
		sec := mdSection{}
		if a.Planned {
			if len(a.Changes) == 0 {
				t.WriteString("No changes.\n\n")
			}
			for _, c := range a.Changes {
				sec.rows = append(sec.rows, changeRow(c))
				sec.risky = append(sec.risky, len(c.Risks) > 0)
			}
			markdownAccountTail(&tail, a, maxList)
		}
		sec.title, sec.tail = t.String(), tail.String()
		out = append(out, sec)
	}
	return out
}

// planMarkdown writes a pull-request comment: a summary line, one table
// per account, risky changes flagged; past maxSize bytes (0: no bound),
// the compact form.
func planMarkdown(w io.Writer, doc *PlanDoc, maxSize int) error {
	var b strings.Builder
	markdownHead(&b, doc, 0)
	for _, sec := range markdownSections(doc, 0) {
		b.WriteString(sec.title)
		if len(sec.rows) > 0 {
			b.WriteString(changeTableHead + strings.Join(sec.rows, "") + "\n")
		}
		b.WriteString(sec.tail)
	}
	out := strings.TrimRight(b.String(), "\n") + "\n"
	if maxSize > 0 && len(out) > maxSize {
		out = compactMarkdown(doc, maxSize)
	}
	_, err := io.WriteString(w, out)
	return err
}

// compactSection is an account of a compact plan: its risky rows and the
// others apart, and how many of each fit.
type compactSection struct {
	mdSection
	risky, other []string
	shown        [2]int // risky, other rows shown
}

// compactMarkdown renders a plan too large for a comment within maxSize
// bytes (at least as many characters): the summary, findings and every
// account's risky changes in full; the other changes collapsed per
// account, as many as fit; and a note pointing at the full plan (the JSON).
func compactMarkdown(doc *PlanDoc, maxSize int) string {
	var head strings.Builder
	markdownHead(&head, doc, 50)
	var sections []compactSection
	fixed := head.Len() + 400 // the closing note
	for _, sec := range markdownSections(doc, 50) {
		cs := compactSection{mdSection: sec}
		for i, row := range sec.rows {
			if sec.risky[i] {
				cs.risky = append(cs.risky, row)
			} else {
				cs.other = append(cs.other, row)
			}
		}
		fixed += len(sec.title) + len(sec.tail) + 2*len(changeTableHead) + 120
		sections = append(sections, cs)
	}
	fitRows(sections, maxSize-fixed)
	var b strings.Builder
	b.WriteString(head.String())
	hidden := 0
	for _, sec := range sections {
		hidden += sec.write(&b)
	}
	if hidden > 0 {
		fmt.Fprintf(&b, "✂️ **%s not shown**: this plan is longer than a comment may be (--max-size %d). The full plan: `reconciler plan --format json` (or text) on this revision.\n", plural(hidden, "change"), maxSize)
	}
	return cutMarkdown(strings.TrimRight(b.String(), "\n")+"\n", maxSize)
}

// fitRows chooses the rows shown within budget bytes: risky rows first,
// then the others; each a row of every account in turn, so that every
// account shows some.
func fitRows(sections []compactSection, budget int) {
	for kind := range 2 {
		for more := true; more; {
			more = false
			for i := range sections {
				sec := &sections[i]
				rows := sec.risky
				if kind == 1 {
					rows = sec.other
				}
				if n := sec.shown[kind]; n < len(rows) && len(rows[n]) <= budget {
					budget -= len(rows[n])
					sec.shown[kind]++
					more = true
				}
			}
		}
	}
}

// write writes the section with the rows shown, and returns how many are
// not.
func (sec *compactSection) write(b *strings.Builder) int {
	b.WriteString(sec.title)
	if n := sec.shown[0]; len(sec.risky) > 0 {
		b.WriteString("Changes to look at twice:\n\n" + changeTableHead + strings.Join(sec.risky[:n], "") + "\n")
		if n < len(sec.risky) {
			fmt.Fprintf(b, "⚠️ **%d more changes to look at twice are not shown.**\n\n", len(sec.risky)-n)
		}
	}
	if n := sec.shown[1]; len(sec.other) > 0 {
		summary := plural(len(sec.other), "other change")
		if n < len(sec.other) {
			summary += fmt.Sprintf(", %d shown", n)
		}
		fmt.Fprintf(b, "<details><summary>%s</summary>\n\n%s%s\n</details>\n\n", summary, changeTableHead, strings.Join(sec.other[:n], ""))
	}
	b.WriteString(sec.tail)
	return len(sec.risky) - sec.shown[0] + len(sec.other) - sec.shown[1]
}

// cutMarkdown is the last bound: past maxSize (long findings, accounts
// outside cfaccess's control), the text is cut at a line, its open
// <details> closed, and the cut said.
func cutMarkdown(s string, maxSize int) string {
	const note = "\n\n✂️ **Cut here**: this plan is longer than a comment may be (--max-size). The full plan: `reconciler plan --format json` (or text) on this revision.\n"
	if len(s) <= maxSize {
		return s
	}
	cut := s[:max(0, maxSize-len(note)-64)]
	if i := strings.LastIndexByte(cut, '\n'); i > 0 {
		cut = cut[:i]
	}
	if open := strings.Count(cut, "<details") - strings.Count(cut, "</details>"); open > 0 {
		cut += strings.Repeat("\n</details>", open)
	}
	return cut + note
}

// markdownHead writes the marker, the title line, the revision and the
// findings, cut after maxFindings (0: every one).
func markdownHead(b *strings.Builder, doc *PlanDoc, maxFindings int) {
	// The marker lets CI find and update its own comment.
	b.WriteString("<!-- cfaccess-plan -->\n")
	markdownTitle(b, doc)
	if doc.Revision != "" {
		fmt.Fprintf(b, "Revision `%s` — %s\n\n", gitsource.Short(doc.Revision), mdEscape(doc.RevisionSubject))
	}
	findings := doc.Findings
	if len(findings) == 0 {
		return
	}
	errs, warns, denies := check.Count(findings)
	fmt.Fprintf(b, "<details%s><summary>%s, %s, %s</summary>\n\n", map[bool]string{true: " open", false: ""}[errs+denies > 0],
		plural(errs, "error"), plural(denies, "denial"), plural(warns, "warning"))
	for i, f := range findings {
		if maxFindings > 0 && i == maxFindings {
			fmt.Fprintf(b, "- … and %d more (run reconciler validate)\n", len(findings)-i)
			break
		}
		fmt.Fprintf(b, "- %s **%s**: %s\n", mdCode(f.Source), textLabel[f.Severity], mdEscape(f.Message))
	}
	b.WriteString("\n</details>\n\n")
}

// markdownTitle writes the title line: the verdict, or the totals.
func markdownTitle(b *strings.Builder, doc *PlanDoc) {
	s := doc.Summary
	errs, _, denies := check.Count(doc.Findings)
	switch {
	case !doc.Valid:
		fmt.Fprintf(b, "### ❌ cfaccess: the declarations are invalid (%s)\n\n", plural(errs, "error"))
	case doc.Denied:
		fmt.Fprintf(b, "### ⛔ cfaccess: denied by guardrails (%s)\n\n", plural(denies, "denial"))
	case s.AccountsFailed:
		b.WriteString("### ❌ cfaccess: some accounts could not be planned")
		if n := s.LosingAccess; n > 0 {
			fmt.Fprintf(b, " (the plans refused would take access from **%s**)", diff.People(n))
		}
		b.WriteString("\n\n")
	case s.Changes == 0:
		b.WriteString("### ✅ cfaccess plan: no changes\n\n")
	default:
		fmt.Fprintf(b, "### cfaccess plan: %d to invite, %d to update, %d to remove", s.Invite, s.Update, s.Remove)
		if n := s.LeaveGroup + s.JoinGroup + s.CreateUserGroup + s.UpdateUserGroup; n > 0 {
			fmt.Fprintf(b, ", %s", plural(n, "user-group change"))
		}
		if n := s.LosingAccess; n > 0 {
			fmt.Fprintf(b, "; **%s lose access**", diff.People(n))
		}
		if n := s.Refused; n > 0 {
			fmt.Fprintf(b, "; ⛔ **%s refused** (it would take access from a protected member)", plural(n, "change"))
		}
		b.WriteString("\n\n")
	}
}

func markdownAccountTitle(b *strings.Builder, a AccountDoc) {
	title := a.Account
	if a.Name != "" {
		title += " — " + mdEscape(a.Name)
	}
	fmt.Fprintf(b, "#### %s\n\n", title)
	if a.Failed {
		fmt.Fprintf(b, "❌ %s\n\n", mdEscape(a.Error))
	}
}

// markdownAccountTail writes the members and access the plan leaves
// alone, lists cut after maxList entries (0: every one).
func markdownAccountTail(b *strings.Builder, a AccountDoc, maxList int) {
	if len(a.Unmanaged) > 0 {
		var emails []string
		for i, email := range a.Unmanaged {
			if maxList > 0 && i == maxList {
				emails = append(emails, fmt.Sprintf("… and %d more", len(a.Unmanaged)-i))
				break
			}
			emails = append(emails, mdEscape(email))
		}
		fmt.Fprintf(b, "Unmanaged (not declared, prune off): %s\n\n", strings.Join(emails, ", "))
	}
	if len(a.Provisioned) > 0 {
		var emails []string
		for _, email := range a.Provisioned {
			emails = append(emails, mdEscape(email))
		}
		fmt.Fprintf(b, "Kept (not declared, provisioned by the identity provider): %s\n\n", strings.Join(emails, ", "))
	}
	for _, x := range a.Outside {
		outsideMarkdown(b, x)
	}
}

// outsideMarkdown writes one thing the plan leaves alone because cfaccess
// does not control it, or could not check (outsideText in text).
func outsideMarkdown(b *strings.Builder, x OutsideDoc) {
	switch x.Kind {
	case OutsideWaiting:
		fmt.Fprintf(b, "⏳ %s joins user group %s once they accept the invitation\n\n", mdEscape(x.Email), mdEscape(x.Group))
	case OutsideGroupWaiting:
		fmt.Fprintf(b, "⏳ user group %s: the identity provider has not created it yet (scim)\n\n", mdEscape(x.Group))
	case OutsideGroupMissing:
		fmt.Fprintf(b, "⚠️ %s is declared in user group %s, which the identity provider owns (scim): not put in\n\n", mdEscape(x.Email), mdEscape(x.Group))
	case OutsideGroupAccess:
		var access []string
		for _, a := range x.Access {
			access = append(access, mdEscape(a.String()))
		}
		fmt.Fprintf(b, "⚠️ %s holds %s via user group %s, not declared (the group is not managed: prune_user_groups is off)\n\n",
			mdEscape(x.Email), strings.Join(access, ", "), mdEscape(x.Group))
	case OutsideOrgAdmin:
		fmt.Fprintf(b, "⚠️ %s is a Super Administrator of the organization: access outside this account's control\n\n", mdEscape(x.Email))
	case OutsideNotChecked:
		fmt.Fprintf(b, "❔ %s not checked: %s\n\n", mdEscape(x.What), mdEscape(x.Why))
	}
}

// changeRow is a change as a row of the markdown table.
func changeRow(c ChangeDoc) string {
	icon := map[diff.Action]string{diff.Invite: "➕ invite", diff.Update: "✏️ update", diff.Remove: "➖ remove", diff.Reinvite: "🔁 re-invite",
		diff.LeaveGroup: "➖ out of user group " + mdEscape(c.Group), diff.JoinGroup: "➕ into user group " + mdEscape(c.Group),
		diff.CreateGroup: "➕ create user group " + mdEscape(c.Group), diff.UpdateGroup: "✏️ update user group " + mdEscape(c.Group)}[diff.Action(c.Action)]
	var access []string
	for _, a := range c.Add {
		access = append(access, "+ "+mdEscape(a.String()))
	}
	for _, a := range c.Remove {
		access = append(access, "− "+mdEscape(a.String()))
	}
	for _, in := range c.Inherited {
		access = append(access, "= "+mdEscape(in.String())+" (via user group "+mdEscape(in.Group)+")")
	}
	why := "not declared"
	if len(c.Sources) > 0 {
		why = mdCode(strings.Join(c.Sources, ", "))
		if len(c.Reasons) > 0 {
			why += " " + mdEscape(strings.Join(c.Reasons, "; "))
		}
	} else if c.Action != string(diff.Remove) {
		why = ""
	}
	for _, r := range c.Risks {
		why += " ⚠️ **" + mdEscape(r) + "**"
	}
	if c.Drift != nil {
		why += " ↺ " + mdEscape(c.Drift.Text)
	}
	if c.Refused != "" {
		why += " ⛔ **" + mdEscape(c.Refused) + "**"
	}
	return fmt.Sprintf("| %s | %s | %s | %s |\n", icon, mdEscape(c.Email), strings.Join(access, "<br>"), strings.TrimSpace(why))
}
