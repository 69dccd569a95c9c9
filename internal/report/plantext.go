package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/diff"
	"github.com/cfaccess/reconciler/internal/gitsource"
)

const (
	red    = "\x1b[31m"
	green  = "\x1b[32m"
	yellow = "\x1b[33m"
	bold   = "\x1b[1m"
	reset  = "\x1b[0m"
)

// painter colours text for a terminal, or leaves it.
func painter(color bool) func(code, s string) string {
	return func(code, s string) string {
		if !color {
			return s
		}
		return code + s + reset
	}
}

// planText writes a plan for a terminal: the findings, then each
// account's changes, one line each with what they give and take, why,
// and after apply what became of them; then the totals.
func planText(w io.Writer, doc *PlanDoc, color bool) error {
	paint := painter(color)
	var b strings.Builder
	findingsText(&b, doc.Findings, doc.Valid, doc.Denied, paint, true)
	if !doc.Valid || doc.Denied {
		_, err := io.WriteString(w, terminalSafe(b.String()))
		return err
	}
	if doc.Revision != "" {
		fmt.Fprintf(&b, "Revision %s: %s (%s)\n", gitsource.Short(doc.Revision), oneLine(doc.RevisionSubject), oneLine(doc.RevisionAuthor))
	}
	for _, a := range doc.Accounts {
		accountText(&b, a, paint)
	}
	summaryText(&b, doc, paint)
	_, err := io.WriteString(w, terminalSafe(b.String()))
	return err
}

// accountText writes an account's title, why it cannot be applied, its
// changes, and the members and access the plan leaves alone.
func accountText(b *strings.Builder, a AccountDoc, paint func(code, s string) string) {
	name := a.Account
	if a.Name != "" {
		name += " — " + oneLine(a.Name)
	}
	fmt.Fprintf(b, "\n%s (%s)\n", paint(bold, name), a.AccountID)
	if a.Failed {
		fmt.Fprintf(b, "  %s %v\n", paint(red, "error:"), indent(a.Error))
		if !a.Planned {
			return
		}
		b.WriteString("  the plan that was refused:\n")
	}
	if !a.Planned {
		return
	}
	if len(a.Changes) == 0 {
		b.WriteString("  no changes\n")
	}
	for _, c := range a.Changes {
		changeText(b, c, paint)
	}
	for _, email := range a.Provisioned {
		fmt.Fprintf(b, "  = kept %s (not declared; provisioned by the identity provider, scim)\n", oneLine(email))
	}
	for _, u := range a.UnmanagedMembers {
		fmt.Fprintf(b, "  = unmanaged %s (not declared; prune is off)\n", oneLine(u.Email))
		for _, in := range u.Inherited {
			fmt.Fprintf(b, "      = %s (via user group %s)\n", oneLine(in.String()), oneLine(in.Group))
		}
	}
	for _, x := range a.Outside {
		outsideText(b, x, paint)
	}
}

// changeSigns are how a change's action is marked in text: a sign and a
// colour (+, green, when not listed).
var changeSigns = map[diff.Action]struct{ sign, color string }{
	diff.Reinvite: {"↻", green}, diff.Remove: {"-", red}, diff.Update: {"~", yellow},
	diff.LeaveGroup: {"-", red}, diff.UpdateGroup: {"~", yellow},
}

// changeLine is the first line of a change: what it does, to whom.
func changeLine(c ChangeDoc, sign string) string {
	switch diff.Action(c.Action) {
	case diff.LeaveGroup:
		return fmt.Sprintf("  %s take %s out of user group %s", sign, oneLine(c.Email), oneLine(c.Group))
	case diff.JoinGroup:
		return fmt.Sprintf("  %s put %s in user group %s", sign, oneLine(c.Email), oneLine(c.Group))
	case diff.CreateGroup:
		return fmt.Sprintf("  %s create user group %s", sign, oneLine(c.Group))
	case diff.UpdateGroup:
		return fmt.Sprintf("  %s update user group %s", sign, oneLine(c.Group))
	}
	return fmt.Sprintf("  %s %s %s", sign, c.Action, oneLine(c.Email))
}

// changeText writes a change: its line and risks, the access it gives,
// takes and leaves through user groups, the drift it corrects, why it is
// refused or made, and after apply what became of it.
func changeText(b *strings.Builder, c ChangeDoc, paint func(code, s string) string) {
	sign, col := "+", green
	if s, ok := changeSigns[diff.Action(c.Action)]; ok {
		sign, col = s.sign, s.color
	}
	line := changeLine(c, sign)
	if c.Pending {
		line += " (pending)"
	}
	b.WriteString(paint(col, line))
	for _, r := range c.Risks {
		fmt.Fprintf(b, "  %s", paint(red, "⚠ "+r))
	}
	b.WriteByte('\n')
	for _, a := range c.Add {
		fmt.Fprintf(b, "      %s\n", paint(green, "+ "+oneLine(a.String())))
	}
	for _, a := range c.Remove {
		fmt.Fprintf(b, "      %s\n", paint(red, "- "+oneLine(a.String())))
	}
	for _, in := range c.Inherited {
		sign := "="
		if c.Action == string(diff.Remove) {
			sign = "-"
		}
		fmt.Fprintf(b, "      %s %s (via user group %s)\n", sign, oneLine(in.String()), oneLine(in.Group))
	}
	if c.Drift != nil {
		fmt.Fprintf(b, "      %s\n", paint(yellow, "↺ "+oneLine(c.Drift.Text)))
	}
	if c.Refused != "" {
		fmt.Fprintf(b, "      %s\n", paint(red, "⛔ "+oneLine(c.Refused)))
	}
	switch {
	case len(c.Sources) > 0:
		fmt.Fprintf(b, "      from %s", oneLine(strings.Join(c.Sources, ", ")))
		if len(c.Reasons) > 0 {
			fmt.Fprintf(b, ": %s", oneLine(strings.Join(c.Reasons, "; ")))
		}
		b.WriteByte('\n')
	case c.Action == string(diff.Remove):
		b.WriteString("      not declared\n")
	}
	resultText(b, c, paint)
}

// resultText writes what apply did with a change (nothing before apply).
func resultText(b *strings.Builder, c ChangeDoc, paint func(code, s string) string) {
	switch {
	case c.Outcome == "":
	case c.Outcome == ChangeHeldBack:
		fmt.Fprintf(b, "      %s\n", paint(yellow, "⏸ held back: a guardrail on the account's live state denies"))
	case c.Outcome == ChangeRefused:
		fmt.Fprintf(b, "      %s\n", paint(red, "✗ not applied: refused (above)"))
	case c.Outcome == ChangeFailed:
		fmt.Fprintf(b, "      %s %v\n", paint(red, "✗ failed:"), c.Failure)
	case c.Note != "":
		fmt.Fprintf(b, "      %s (%s)\n", paint(green, "✓ applied"), c.Note)
	default:
		fmt.Fprintf(b, "      %s\n", paint(green, "✓ applied"))
	}
}

// outsideText writes one thing the plan leaves alone because cfaccess
// does not control it — access through user groups it does not manage,
// organization Super Administrators — or could not check.
func outsideText(b *strings.Builder, x OutsideDoc, paint func(code, s string) string) {
	switch x.Kind {
	case OutsideWaiting:
		fmt.Fprintf(b, "  … %s joins user group %s once they accept the invitation\n", oneLine(x.Email), oneLine(x.Group))
	case OutsideGroupWaiting:
		fmt.Fprintf(b, "  … user group %s: the identity provider has not created it yet (scim)\n", oneLine(x.Group))
	case OutsideGroupMissing:
		fmt.Fprintf(b, "  %s %s is declared in user group %s, which the identity provider owns (scim): not put in\n",
			paint(yellow, "!"), oneLine(x.Email), oneLine(x.Group))
	case OutsideGroupAccess:
		fmt.Fprintf(b, "  %s %s holds access the repository does not declare, via user group %s (not managed: prune_user_groups is off)\n",
			paint(yellow, "!"), oneLine(x.Email), oneLine(x.Group))
		for _, a := range x.Access {
			fmt.Fprintf(b, "      %s\n", paint(yellow, "= "+oneLine(a.String())))
		}
	case OutsideOrgAdmin:
		fmt.Fprintf(b, "  %s %s is a Super Administrator of the organization (%s): access outside this account's control\n",
			paint(yellow, "!"), oneLine(x.Email), oneLine(x.Status))
	case OutsideNotChecked:
		fmt.Fprintf(b, "  %s %s\n", paint(yellow, "? "+oneLine(x.What)+" not checked:"), oneLine(x.Why))
	}
}

// summaryText writes the totals, and what was held back, refused or
// failed.
func summaryText(b *strings.Builder, doc *PlanDoc, paint func(code, s string) string) {
	s := doc.Summary
	verb := "Plan"
	if doc.Applied {
		verb = "Applied"
	}
	if s.AccountsFailed {
		// The totals are not the whole plan: say so where they are read.
		verb += " (of the accounts that could be planned)"
	}
	fmt.Fprintf(b, "\n%s: %d to invite, %d to update, %d to remove", verb, s.Invite, s.Update, s.Remove)
	if n := s.Reinvite; n > 0 {
		fmt.Fprintf(b, ", %d to re-invite", n)
	}
	if n := s.LeaveGroup; n > 0 {
		fmt.Fprintf(b, ", %d to take out of user groups", n)
	}
	if n := s.JoinGroup; n > 0 {
		fmt.Fprintf(b, ", %d to put in user groups", n)
	}
	if n := s.CreateUserGroup + s.UpdateUserGroup; n > 0 {
		fmt.Fprintf(b, ", %s to create or update", plural(n, "user group"))
	}
	if n := s.LosingAccess; n > 0 {
		fmt.Fprintf(b, "; %s", paint(yellow, diff.People(n)+" lose access"))
	}
	b.WriteString(".\n")
	if n := s.HeldBack; n > 0 {
		b.WriteString(paint(yellow, fmt.Sprintf("%s held back (⏸ above) while a guardrail on the live state denies; what takes access away was applied.", plural(n, "change"))) + "\n")
	}
	if n := s.Refused; n > 0 {
		b.WriteString(paint(red, fmt.Sprintf("%s refused (⛔ above): it would take access from a protected member; the rest of the plan goes on.", plural(n, "change"))) + "\n")
	}
	if n := s.FailedChanges - s.Refused; doc.Applied && n > 0 {
		b.WriteString(paint(red, fmt.Sprintf("%d of these changes failed (✗ above): the next run tries them again.", n)) + "\n")
	}
	if s.AccountsFailed {
		b.WriteString(paint(red, "Some accounts could not be planned (error: above), so nothing was applied to any account.") + "\n")
	}
}

// findingsText writes diagnostics and violations, one line each with
// every value flattened and escaped, and the verdict when the repository
// is invalid or denied (for a plan, saying nothing was changed). validate
// and plan share it.
func findingsText(b *strings.Builder, findings []check.Finding, valid, denied bool, paint func(code, s string) string, inPlan bool) {
	for _, f := range findings {
		label := textLabel[f.Severity]
		if f.Severity == "error" || f.Severity == "deny" {
			label = paint(red, label)
		}
		fmt.Fprintf(b, "%s: %s: %s", oneLine(f.Source), label, oneLine(f.Message))
		if f.Policy != "" {
			fmt.Fprintf(b, " [%s]", oneLine(f.Policy))
		}
		b.WriteByte('\n')
	}
	errs, warns, denies := check.Count(findings)
	switch {
	case !valid:
		fmt.Fprintf(b, "invalid: %s, %s", plural(errs, "error"), plural(warns, "warning"))
		if inPlan {
			b.WriteString("; nothing was read or changed")
		}
		b.WriteByte('\n')
	case denied:
		fmt.Fprintf(b, "denied by guardrails: %s, %s", plural(denies, "denial"), plural(warns, "warning"))
		if inPlan {
			b.WriteString("; nothing was changed")
		}
		b.WriteByte('\n')
	}
}

// indent lines up an error's further lines under its first.
func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n    ") }
