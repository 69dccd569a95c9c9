package report

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/diff"
	"github.com/cfaccess/reconciler/internal/gitsource"
	"github.com/cfaccess/reconciler/internal/reconcile"
)

// Options tune the renderers.
type Options struct {
	// Color paints text output (a terminal, NO_COLOR unset).
	Color bool
	// Version names the tool's version in SARIF.
	Version string
	// MaxSize bounds a markdown plan, in bytes (0: no bound): past it,
	// the plan keeps its summary and risky changes and collapses or cuts
	// the rest (a pull-request comment holds 65,536 characters).
	MaxSize int
}

// PlanFormats are the formats of Plan.
var PlanFormats = []string{"text", "json", "markdown", "sarif"}

// Plan writes a plan (or an apply's outcome) in format: text, json,
// markdown or sarif.
func Plan(w io.Writer, format string, o *reconcile.Outcome, opts Options) error {
	switch format {
	case "json":
		return planJSON(w, o)
	case "markdown":
		return planMarkdown(w, o, opts.MaxSize)
	case "sarif":
		return validateSARIF(w, o.Checked, opts)
	case "text":
		return planText(w, o, opts.Color)
	}
	return CheckFormat(format, PlanFormats)
}

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

func planText(w io.Writer, o *reconcile.Outcome, color bool) error {
	paint := painter(color)
	var b strings.Builder
	if err := findingsText(&b, o.Checked, paint, true); err != nil {
		return err
	}
	if !o.Checked.Valid() || o.Checked.Denied() {
		_, err := io.WriteString(w, terminalSafe(b.String()))
		return err
	}
	if o.Revision.SHA != "" {
		fmt.Fprintf(&b, "Revision %s: %s (%s)\n", gitsource.Short(o.Revision.SHA), oneLine(o.Revision.Subject), oneLine(o.Revision.Author))
	}
	totals := map[diff.Action]int{}
	for _, ap := range o.Accounts {
		name := ap.Provider
		if ap.AccountName != "" {
			name += " — " + oneLine(ap.AccountName)
		}
		fmt.Fprintf(&b, "\n%s (%s)\n", paint(bold, name), ap.AccountID)
		if ap.Err != nil {
			fmt.Fprintf(&b, "  %s %v\n", paint(red, "error:"), indent(ap.Err.Error()))
			if ap.Plan == nil {
				continue
			}
			b.WriteString("  the plan that was refused:\n")
		}
		if ap.Plan == nil {
			continue
		}
		if ap.Plan.Empty() {
			b.WriteString("  no changes\n")
		}
		results := ap.Results
		for i, c := range ap.Plan.Changes {
			totals[c.Action]++
			sign, col := "+", green
			switch c.Action {
			case diff.Reinvite:
				sign = "↻"
			case diff.Remove:
				sign, col = "-", red
			case diff.Update:
				sign, col = "~", yellow
			case diff.LeaveGroup:
				sign, col = "-", red
			case diff.UpdateGroup:
				sign, col = "~", yellow
			}
			line := fmt.Sprintf("  %s %s %s", sign, c.Action, oneLine(c.Email))
			switch c.Action {
			case diff.LeaveGroup:
				line = fmt.Sprintf("  %s take %s out of user group %s", sign, oneLine(c.Email), oneLine(c.Group))
			case diff.JoinGroup:
				line = fmt.Sprintf("  %s put %s in user group %s", sign, oneLine(c.Email), oneLine(c.Group))
			case diff.CreateGroup:
				line = fmt.Sprintf("  %s create user group %s", sign, oneLine(c.Group))
			case diff.UpdateGroup:
				line = fmt.Sprintf("  %s update user group %s", sign, oneLine(c.Group))
			}
			if c.Status == "pending" {
				line += " (pending)"
			}
			b.WriteString(paint(col, line))
			for _, r := range c.Risks {
				fmt.Fprintf(&b, "  %s", paint(red, "⚠ "+r))
			}
			b.WriteByte('\n')
			for _, a := range c.Add {
				fmt.Fprintf(&b, "      %s\n", paint(green, "+ "+oneLine(ap.Display(a).String())))
			}
			for _, a := range c.Remove {
				fmt.Fprintf(&b, "      %s\n", paint(red, "- "+oneLine(ap.Display(a).String())))
			}
			for _, in := range c.Inherited {
				sign := "="
				if c.Action == diff.Remove {
					sign = "-"
				}
				fmt.Fprintf(&b, "      %s %s (via user group %s)\n", sign, oneLine(ap.Display(in.Access).String()), oneLine(in.Group))
			}
			if c.Drift != nil {
				fmt.Fprintf(&b, "      %s\n", paint(yellow, "↺ "+oneLine(driftText(c.Drift))))
			}
			if msg := reconcile.Refusal(ap, c); msg != "" {
				fmt.Fprintf(&b, "      %s\n", paint(red, "⛔ "+oneLine(msg)))
			}
			switch {
			case len(c.Sources) > 0:
				fmt.Fprintf(&b, "      from %s", oneLine(joinPos(c.Sources)))
				if len(c.Reasons) > 0 {
					fmt.Fprintf(&b, ": %s", oneLine(strings.Join(c.Reasons, "; ")))
				}
				b.WriteByte('\n')
			case c.Action == diff.Remove:
				b.WriteString("      not declared\n")
			}
			if i < len(results) {
				r := results[i]
				switch {
				case errors.Is(r.Err, reconcile.ErrHeldBack):
					fmt.Fprintf(&b, "      %s\n", paint(yellow, "⏸ held back: a guardrail on the account's live state denies"))
				case errors.Is(r.Err, reconcile.ErrProtected):
					fmt.Fprintf(&b, "      %s\n", paint(red, "✗ not applied: refused (above)"))
				case r.Err != nil:
					fmt.Fprintf(&b, "      %s %v\n", paint(red, "✗ failed:"), r.Err)
				case r.Note != "":
					fmt.Fprintf(&b, "      %s (%s)\n", paint(green, "✓ applied"), r.Note)
				default:
					fmt.Fprintf(&b, "      %s\n", paint(green, "✓ applied"))
				}
			}
		}
		for _, u := range ap.Plan.Provisioned {
			fmt.Fprintf(&b, "  = kept %s (not declared; provisioned by the identity provider, scim)\n", oneLine(u.Email))
		}
		for _, u := range ap.Plan.Unmanaged {
			fmt.Fprintf(&b, "  = unmanaged %s (not declared; prune is off)\n", oneLine(u.Email))
			for _, in := range u.Inherited {
				fmt.Fprintf(&b, "      = %s (via user group %s)\n", oneLine(ap.Display(in.Access).String()), oneLine(in.Group))
			}
		}
		outsideText(&b, ap, paint)
	}
	verb := "Plan"
	if o.Applied {
		verb = "Applied"
	}
	fmt.Fprintf(&b, "\n%s: %d to invite, %d to update, %d to remove", verb, totals[diff.Invite], totals[diff.Update], totals[diff.Remove])
	if n := totals[diff.Reinvite]; n > 0 {
		fmt.Fprintf(&b, ", %d to re-invite", n)
	}
	if n := totals[diff.LeaveGroup]; n > 0 {
		fmt.Fprintf(&b, ", %d to take out of user groups", n)
	}
	if n := totals[diff.JoinGroup]; n > 0 {
		fmt.Fprintf(&b, ", %d to put in user groups", n)
	}
	if n := totals[diff.CreateGroup] + totals[diff.UpdateGroup]; n > 0 {
		fmt.Fprintf(&b, ", %s to create or update", plural(n, "user group"))
	}
	if n := losingAccess(o); n > 0 {
		fmt.Fprintf(&b, "; %s", paint(yellow, diff.People(n)+" lose access"))
	}
	b.WriteString(".\n")
	if n := o.HeldBack(); n > 0 {
		b.WriteString(paint(yellow, fmt.Sprintf("%s held back (⏸ above) while a guardrail on the live state denies; what takes access away was applied.", plural(n, "change"))) + "\n")
	}
	if n := o.Refused(); n > 0 {
		b.WriteString(paint(red, fmt.Sprintf("%s refused (⛔ above): it would take access from a protected member; the rest of the plan goes on.", plural(n, "change"))) + "\n")
	}
	if n := o.FailedChanges() - o.Refused(); o.Applied && n > 0 {
		b.WriteString(paint(red, fmt.Sprintf("%d of these changes failed (✗ above): the next run tries them again.", n)) + "\n")
	}
	if o.Failed() {
		b.WriteString(paint(red, "Some accounts could not be planned: nothing was applied.") + "\n")
	}
	_, err := io.WriteString(w, terminalSafe(b.String()))
	return err
}

// outsideText writes what the plan leaves alone because cfaccess does not
// control it — access through user groups it does not manage,
// organization Super Administrators — and what could not be checked.
func outsideText(b *strings.Builder, ap *reconcile.AccountPlan, paint func(code, s string) string) {
	for _, w := range ap.Plan.Waiting {
		fmt.Fprintf(b, "  … %s joins user group %s once they accept the invitation\n", oneLine(w.Email), oneLine(w.Group))
	}
	for _, g := range ap.Plan.GroupsWaiting {
		fmt.Fprintf(b, "  … user group %s: the identity provider has not created it yet (scim)\n", oneLine(g))
	}
	for _, g := range ap.Plan.GroupAccess {
		if g.Missing {
			fmt.Fprintf(b, "  %s %s is declared in user group %s, which the identity provider owns (scim): not put in\n",
				paint(yellow, "!"), oneLine(g.Email), oneLine(g.Group))
			continue
		}
		fmt.Fprintf(b, "  %s %s holds access the repository does not declare, via user group %s (not managed: prune_user_groups is off)\n",
			paint(yellow, "!"), oneLine(g.Email), oneLine(g.Group))
		for _, a := range g.Access {
			fmt.Fprintf(b, "      %s\n", paint(yellow, "= "+oneLine(ap.Display(a).String())))
		}
	}
	if ap.Live == nil {
		return
	}
	for _, m := range ap.Live.OrgAdmins {
		fmt.Fprintf(b, "  %s %s is a Super Administrator of the organization (%s): access outside this account's control\n",
			paint(yellow, "!"), oneLine(m.Email), oneLine(m.Status))
	}
	for _, nc := range ap.Live.NotChecked {
		fmt.Fprintf(b, "  %s %s\n", paint(yellow, "? "+oneLine(nc.What)+" not checked:"), oneLine(nc.Why))
	}
}

// findingsText writes diagnostics and violations, one line each with
// every value flattened and escaped, and the verdict when the repository
// is invalid or denied (for a plan, saying nothing was changed). validate
// and plan share it.
func findingsText(b *strings.Builder, c *check.Checked, paint func(code, s string) string, inPlan bool) error {
	findings := c.Findings()
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
	case !c.Valid():
		fmt.Fprintf(b, "invalid: %s, %s", plural(errs, "error"), plural(warns, "warning"))
		if inPlan {
			b.WriteString("; nothing was read or changed")
		}
		b.WriteByte('\n')
	case c.Denied():
		fmt.Fprintf(b, "denied by guardrails: %s, %s", plural(denies, "denial"), plural(warns, "warning"))
		if inPlan {
			b.WriteString("; nothing was changed")
		}
		b.WriteByte('\n')
	}
	return nil
}

// losingAccess counts the people the plans take access from.
func losingAccess(o *reconcile.Outcome) int {
	n := 0
	for _, ap := range o.Accounts {
		if ap.Plan != nil {
			n += ap.Plan.LosingAccess()
		}
	}
	return n
}

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n    ") }

func joinPos(ps []desired.Pos) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, ", ")
}

// PlanDoc is the stable JSON form of a plan (format_version 1); the other
// *Doc types are its parts.
type PlanDoc struct {
	FormatVersion int          `json:"format_version"`
	Revision      string       `json:"revision"`
	Valid         bool         `json:"valid"`
	Denied        bool         `json:"denied"`
	Applied       bool         `json:"applied"`
	Accounts      []AccountDoc `json:"accounts"`
	// Warnings and Violations are about the repository as a whole.
	Warnings   []check.Finding `json:"warnings"`
	Violations []check.Finding `json:"violations"`
	Summary    SummaryDoc      `json:"summary"`
}

type SummaryDoc struct {
	// LosingAccess counts the people the plan takes any access from, on
	// any path (what max_removals limits).
	LosingAccess    int `json:"losing_access"`
	Invite          int `json:"invite"`
	Update          int `json:"update"`
	Remove          int `json:"remove"`
	Reinvite        int `json:"reinvite"`
	LeaveGroup      int `json:"leave_group,omitempty"`
	JoinGroup       int `json:"join_user_group,omitempty"`
	CreateUserGroup int `json:"create_user_group,omitempty"`
	UpdateUserGroup int `json:"update_user_group,omitempty"`
}

type AccountDoc struct {
	Account   string      `json:"account"`
	AccountID string      `json:"account_id"`
	Name      string      `json:"name,omitempty"`
	Changes   []ChangeDoc `json:"changes"`
	Unmanaged []string    `json:"unmanaged"`
	Protected []string    `json:"protected"`
	Error     string      `json:"error,omitempty"`
	Breaker   string      `json:"breaker,omitempty"`
	// LosingAccess counts the people the plan takes access away from
	// (protected members aside), Losing names them with what they lose.
	LosingAccess int       `json:"losing_access"`
	Losing       []LossDoc `json:"losing,omitempty"`
	// Warnings and Violations are always empty in format 1, kept so that
	// its readers stay valid: findings are repository-wide, at the top
	// level.
	Warnings   []check.Finding `json:"warnings"`
	Violations []check.Finding `json:"violations"`
	// GroupAccess is access through user groups the plan leaves in place
	// (not declared, the group not managed); OrgAdmins the organization's
	// Super Administrators; NotChecked what the credentials could not
	// read. Omitted when empty.
	GroupAccess []GroupAccessDoc `json:"group_access,omitempty"`
	OrgAdmins   []string         `json:"organization_super_admins,omitempty"`
	NotChecked  []string         `json:"not_checked,omitempty"`
	// Waiting are declared members of user groups who join once they
	// accept their invitation ({email, user_group}).
	Waiting []WaitingDoc `json:"waiting,omitempty"`
	// Provisioned are members nobody declared, kept because the identity
	// provider provisioned them (scim).
	Provisioned []string `json:"provisioned,omitempty"`
}

// LossDoc is a person the plan takes access from: what they lose, and
// whether they leave the account.
type LossDoc struct {
	Email     string      `json:"email"`
	Access    []AccessDoc `json:"access"`
	Removed   bool        `json:"removed,omitempty"`
	Protected bool        `json:"protected,omitempty"`
}

type WaitingDoc struct {
	Email string `json:"email,omitempty"`
	Group string `json:"user_group"`
}

type GroupAccessDoc struct {
	Email  string      `json:"email"`
	Group  string      `json:"user_group"`
	Access []AccessDoc `json:"access"`
	// Missing is set for a declared member not in the group, which the
	// identity provider owns.
	Missing bool `json:"missing,omitempty"`
}

type AccessDoc struct {
	Role     string `json:"role"`
	Resource string `json:"resource"`
}

type ChangeDoc struct {
	Action   string      `json:"action"`
	Email    string      `json:"email"`
	MemberID string      `json:"member_id,omitempty"`
	Add      []AccessDoc `json:"add"`
	Remove   []AccessDoc `json:"remove"`
	Sources  []string    `json:"sources"`
	Reasons  []string    `json:"reasons,omitempty"`
	Risks    []string    `json:"risks,omitempty"`
	Result   string      `json:"result,omitempty"` // apply: applied, or failed: …
	Note     string      `json:"note,omitempty"`   // apply: how it was applied, when not as planned
	// Group is the user group a leave_group change takes the member out
	// of; Inherited the access the member holds through user groups.
	Group     string         `json:"user_group,omitempty"`
	Inherited []InheritedDoc `json:"inherited,omitempty"`
	// Drift is the out-of-band change this change corrects, from the
	// account's audit log.
	Drift *DriftDoc `json:"drift,omitempty"`
	// Refused says why the change is not made: it would take access from
	// a protected member.
	Refused string `json:"refused,omitempty"`
}

// DriftDoc is who made an out-of-band change, how and when.
type DriftDoc struct {
	Actor     string    `json:"actor"`
	ActorType string    `json:"actor_type,omitempty"`
	Context   string    `json:"context"`
	IP        string    `json:"ip,omitempty"`
	At        time.Time `json:"at"`
	Action    string    `json:"action,omitempty"`
	Text      string    `json:"text"`
}

// driftText says who made an out-of-band change, for people: "added in
// the dashboard by mallory@example.com at 2026-11-25 10:42 UTC".
func driftText(d *diff.Drift) string {
	verb := "changed"
	first, _, _ := strings.Cut(d.Action, " ")
	switch strings.ToLower(first) {
	case "add", "create", "invite":
		verb = "added"
	case "edit", "update", "replace":
		verb = "changed"
	case "remove", "delete":
		verb = "removed"
	}
	s := verb
	if ctx := cloudflare.ContextText(d.Context); ctx != "" {
		s += " " + ctx
	}
	s += " by " + d.Actor + " at " + d.At.UTC().Format("2006-01-02 15:04 UTC")
	if d.Action != "" {
		s += " (" + d.Action + ")"
	}
	return s
}

type InheritedDoc struct {
	AccessDoc
	Via string `json:"via"`
}

func planJSON(w io.Writer, o *reconcile.Outcome) error {
	out := PlanDoc{FormatVersion: 1, Revision: o.Revision.SHA, Valid: o.Checked.Valid(), Denied: o.Checked.Denied(), Applied: o.Applied,
		Accounts: []AccountDoc{}, Warnings: []check.Finding{}, Violations: []check.Finding{}}
	for _, f := range o.Checked.Findings() {
		if f.Policy != "" || f.Severity == "deny" {
			out.Violations = append(out.Violations, f)
		} else {
			out.Warnings = append(out.Warnings, f)
		}
	}
	for _, ap := range o.Accounts {
		aj := AccountDoc{Account: ap.Provider, AccountID: ap.AccountID, Name: ap.AccountName, Changes: []ChangeDoc{},
			Unmanaged: []string{}, Protected: []string{}, Warnings: []check.Finding{}, Violations: []check.Finding{}}
		if ap.Err != nil {
			aj.Error = ap.Err.Error()
		}
		if ap.Live != nil {
			for _, m := range ap.Live.OrgAdmins {
				aj.OrgAdmins = append(aj.OrgAdmins, m.Email)
			}
			for _, nc := range ap.Live.NotChecked {
				aj.NotChecked = append(aj.NotChecked, nc.String())
			}
		}
		if ap.Plan != nil {
			aj.Breaker = ap.Plan.Breaker
			aj.Protected = append(aj.Protected, ap.Plan.Protected...)
			aj.LosingAccess = ap.Plan.LosingAccess()
			out.Summary.LosingAccess += aj.LosingAccess
			for _, l := range ap.Plan.Losing {
				ld := LossDoc{Email: l.Email, Access: []AccessDoc{}, Removed: l.Removed, Protected: l.Protected}
				for _, a := range l.Lose {
					d := ap.Display(a)
					ld.Access = append(ld.Access, AccessDoc{d.Role, d.Resource.String()})
				}
				aj.Losing = append(aj.Losing, ld)
			}
			for _, g := range ap.Plan.GroupAccess {
				gd := GroupAccessDoc{Email: g.Email, Group: g.Group, Access: []AccessDoc{}, Missing: g.Missing}
				for _, a := range g.Access {
					d := ap.Display(a)
					gd.Access = append(gd.Access, AccessDoc{d.Role, d.Resource.String()})
				}
				aj.GroupAccess = append(aj.GroupAccess, gd)
			}
			for _, w := range ap.Plan.Waiting {
				aj.Waiting = append(aj.Waiting, WaitingDoc{Email: w.Email, Group: w.Group})
			}
			for _, u := range ap.Plan.Provisioned {
				aj.Provisioned = append(aj.Provisioned, u.Email)
			}
			for _, g := range ap.Plan.GroupsWaiting {
				aj.Waiting = append(aj.Waiting, WaitingDoc{Group: g})
			}
			for _, u := range ap.Plan.Unmanaged {
				aj.Unmanaged = append(aj.Unmanaged, u.Email)
			}
			results := ap.Results
			for i, c := range ap.Plan.Changes {
				cj := ChangeDoc{Action: string(c.Action), Email: c.Email, MemberID: c.MemberID, Add: []AccessDoc{}, Remove: []AccessDoc{},
					Sources: []string{}, Reasons: c.Reasons, Risks: c.Risks}
				for _, a := range c.Add {
					d := ap.Display(a)
					cj.Add = append(cj.Add, AccessDoc{d.Role, d.Resource.String()})
				}
				for _, a := range c.Remove {
					d := ap.Display(a)
					cj.Remove = append(cj.Remove, AccessDoc{d.Role, d.Resource.String()})
				}
				for _, s := range c.Sources {
					cj.Sources = append(cj.Sources, s.String())
				}
				cj.Group, cj.Refused = c.Group, reconcile.Refusal(ap, c)
				if d := c.Drift; d != nil {
					cj.Drift = &DriftDoc{Actor: d.Actor, ActorType: d.ActorType, Context: d.Context, IP: d.IP, At: d.At.UTC(), Action: d.Action, Text: driftText(d)}
				}
				for _, in := range c.Inherited {
					d := ap.Display(in.Access)
					cj.Inherited = append(cj.Inherited, InheritedDoc{AccessDoc{d.Role, d.Resource.String()}, "user group " + in.Group})
				}
				if i < len(results) {
					cj.Result = "applied"
					switch {
					case errors.Is(results[i].Err, reconcile.ErrHeldBack):
						cj.Result = "held back"
					case results[i].Err != nil:
						cj.Result = "failed: " + results[i].Err.Error()
					}
					if results[i].MemberID != "" {
						cj.MemberID = results[i].MemberID
					}
					cj.Note = results[i].Note
				}
				switch c.Action {
				case diff.Invite:
					out.Summary.Invite++
				case diff.Update:
					out.Summary.Update++
				case diff.Remove:
					out.Summary.Remove++
				case diff.Reinvite:
					out.Summary.Reinvite++
				case diff.LeaveGroup:
					out.Summary.LeaveGroup++
				case diff.JoinGroup:
					out.Summary.JoinGroup++
				case diff.CreateGroup:
					out.Summary.CreateUserGroup++
				case diff.UpdateGroup:
					out.Summary.UpdateUserGroup++
				}
				aj.Changes = append(aj.Changes, cj)
			}
		}
		out.Accounts = append(out.Accounts, aj)
	}
	return WriteJSON(w, out)
}

// Everything a repository or an account supplies (reasons, emails, file
// names, commit subjects, policy messages) goes through it: a value must
// not end a table cell or row, open a link, an HTML comment (CI finds its
// comment by a marker) or a code span — nor notify anyone or link
// anywhere when the comment is posted: an @mention and a bare URL get a
// zero-width space (as an entity) after "@" or the scheme, which GitHub
// and GitLab show as nothing and neither mention nor link.
func mdEscape(s string) string {
	s = Visible(mdEscaper.Replace(s))
	s = mention.ReplaceAllString(s, "$1@&#8203;$2")
	s = bareURL.ReplaceAllString(s, "$1:&#8203;//")
	return bareWWW.ReplaceAllString(s, "$1&#8203;.")
}

var (
	// mention is an @ that does not follow a letter, digit or _: GitHub
	// and GitLab mention after any other character (.@x, -@x, +@org/x);
	// an email's @ follows its local part.
	mention = regexp.MustCompile(`(^|[^\pL\pN_])@([\pL\pN_])`)
	bareURL = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*):\/\/`)
	bareWWW = regexp.MustCompile(`(?i)\b(www)\.`)
)

var mdEscaper = strings.NewReplacer("\\", `\\`, "|", `\|`, "<", "&lt;", ">", "&gt;", "&", "&amp;", "*", `\*`, "_", `\_`,
	"`", "\\`", "[", `\[`, "]", `\]`, "\r\n", " ", "\n", " ", "\r", " ")

// mdCode writes s as a code span inside a table: no backtick can end it,
// no newline or pipe can end the cell.
func mdCode(s string) string {
	return "`" + Visible(strings.NewReplacer("`", "'", "\r\n", " ", "\n", " ", "\r", " ", "|", `\|`).Replace(s)) + "`"
}

// Field is a value from an account, a repository or a daemon, made safe
// for one field of terminal output: on one line (newlines as ⏎), no tab
// to shift a column, and control, invisible and direction-changing
// characters as escapes. A user-group name cannot forge a line.
func Field(s string) string {
	return strings.ReplaceAll(oneLine(s), "\t", " ")
}

// oneLine flattens a value a repository supplies onto one line of text
// output, so that it cannot fake lines of a plan, and makes its control,
// invisible and direction-changing characters visible (\x1b[8m would
// otherwise pass as a colour and hide what follows).
func oneLine(s string) string {
	return Visible(strings.NewReplacer("\r\n", " ⏎ ", "\n", " ⏎ ", "\r", " ⏎ ").Replace(s))
}

// Visible writes control, invisible and direction-changing characters as
// escapes (\x1b, \u202e).
func Visible(s string) string {
	if !strings.ContainsFunc(s, hidden) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if hidden(r) {
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// hidden reports characters that are not what they seem on a screen:
// controls (tab and newline aside), line separators, and format
// characters — zero-width, joiners, direction overrides.
func hidden(r rune) bool {
	return isControl(r) || unicode.Is(unicode.Cf, r)
}

// sgr matches the colour sequences text output paints with.
var sgr = regexp.MustCompile(`^\x1b\[[0-9;]*m`)

// terminalSafe makes control characters other than newline and tab
// visible (\x1b, \u0085...), keeping only colour sequences: a reason or a
// file name cannot move the cursor, clear the screen or retitle the
// terminal of the person reviewing a plan.
func terminalSafe(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if m := sgr.FindString(s[i:]); m != "" {
			b.WriteString(m)
			i += len(m)
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if isControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func isControl(r rune) bool {
	return r != '\n' && r != '\t' && (unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r))
}

// renderPlanMarkdown writes a pull-request comment: a summary line, one
// table per account, risky changes flagged.
// outsideMarkdown lists what the plan leaves alone because cfaccess does
// not control it, and what could not be checked.
func outsideMarkdown(b *strings.Builder, ap *reconcile.AccountPlan) {
	if len(ap.Plan.Provisioned) > 0 {
		var emails []string
		for _, u := range ap.Plan.Provisioned {
			emails = append(emails, mdEscape(u.Email))
		}
		fmt.Fprintf(b, "Kept (not declared, provisioned by the identity provider): %s\n\n", strings.Join(emails, ", "))
	}
	for _, w := range ap.Plan.Waiting {
		fmt.Fprintf(b, "⏳ %s joins user group %s once they accept the invitation\n\n", mdEscape(w.Email), mdEscape(w.Group))
	}
	for _, g := range ap.Plan.GroupsWaiting {
		fmt.Fprintf(b, "⏳ user group %s: the identity provider has not created it yet (scim)\n\n", mdEscape(g))
	}
	for _, g := range ap.Plan.GroupAccess {
		if g.Missing {
			fmt.Fprintf(b, "⚠️ %s is declared in user group %s, which the identity provider owns (scim): not put in\n\n", mdEscape(g.Email), mdEscape(g.Group))
			continue
		}
		var access []string
		for _, a := range g.Access {
			access = append(access, mdEscape(ap.Display(a).String()))
		}
		fmt.Fprintf(b, "⚠️ %s holds %s via user group %s, not declared (the group is not managed: prune_user_groups is off)\n\n",
			mdEscape(g.Email), strings.Join(access, ", "), mdEscape(g.Group))
	}
	if ap.Live == nil {
		return
	}
	for _, m := range ap.Live.OrgAdmins {
		fmt.Fprintf(b, "⚠️ %s is a Super Administrator of the organization: access outside this account's control\n\n", mdEscape(m.Email))
	}
	for _, nc := range ap.Live.NotChecked {
		fmt.Fprintf(b, "❔ %s not checked: %s\n\n", mdEscape(nc.What), mdEscape(nc.Why))
	}
}

func planMarkdown(w io.Writer, o *reconcile.Outcome, maxSize int) error {
	var b strings.Builder
	markdownHead(&b, o, 0)
	for _, ap := range o.Accounts {
		markdownAccountTitle(&b, ap)
		if ap.Plan == nil {
			continue
		}
		if ap.Plan.Empty() {
			b.WriteString("No changes.\n\n")
		} else {
			b.WriteString(changeTableHead)
			for _, c := range ap.Plan.Changes {
				b.WriteString(changeRow(ap, c))
			}
			b.WriteByte('\n')
		}
		markdownAccountTail(&b, ap, 0)
	}
	out := strings.TrimRight(b.String(), "\n") + "\n"
	if maxSize > 0 && len(out) > maxSize {
		out = compactMarkdown(o, maxSize)
	}
	_, err := io.WriteString(w, out)
	return err
}

const changeTableHead = "| | Member | Access | Why |\n|---|---|---|---|\n"

// DefaultMaxSize bounds a markdown plan (--max-size): under GitHub's
// 65,536 characters of a pull-request comment, with room to spare.
const DefaultMaxSize = 60_000

// compactMarkdown renders a plan too large for a comment within maxSize
// bytes (at least as many characters): the summary, findings and every
// account's risky changes in full; the other changes collapsed per
// account, as many as fit; and a note pointing at the full plan (the JSON).
func compactMarkdown(o *reconcile.Outcome, maxSize int) string {
	var head strings.Builder
	markdownHead(&head, o, 50)
	type section struct {
		title, tail  string
		risky, other []string
	}
	var sections []section
	fixed := head.Len() + 400 // the closing note
	for _, ap := range o.Accounts {
		var t, tail strings.Builder
		markdownAccountTitle(&t, ap)
		sec := section{}
		if ap.Plan != nil {
			if ap.Plan.Empty() {
				t.WriteString("No changes.\n\n")
			}
			for _, c := range ap.Plan.Changes {
				if len(c.Risks) > 0 {
					sec.risky = append(sec.risky, changeRow(ap, c))
				} else {
					sec.other = append(sec.other, changeRow(ap, c))
				}
			}
			markdownAccountTail(&tail, ap, 50)
		}
		sec.title, sec.tail = t.String(), tail.String()
		fixed += len(sec.title) + len(sec.tail) + 2*len(changeTableHead) + 120
		sections = append(sections, sec)
	}
	budget := maxSize - fixed
	shown := make([][2]int, len(sections)) // risky, other rows shown
	// Risky rows first, then the others; each a row of every account in
	// turn, so that every account shows some.
	for kind := range 2 {
		for more := true; more; {
			more = false
			for i, sec := range sections {
				rows := sec.risky
				if kind == 1 {
					rows = sec.other
				}
				if n := shown[i][kind]; n < len(rows) && len(rows[n]) <= budget {
					budget -= len(rows[n])
					shown[i][kind]++
					more = true
				}
			}
		}
	}
	var b strings.Builder
	b.WriteString(head.String())
	hidden := 0
	for i, sec := range sections {
		b.WriteString(sec.title)
		if n := shown[i][0]; len(sec.risky) > 0 {
			b.WriteString("Changes to look at twice:\n\n" + changeTableHead + strings.Join(sec.risky[:n], "") + "\n")
			if n < len(sec.risky) {
				fmt.Fprintf(&b, "⚠️ **%d more changes to look at twice are not shown.**\n\n", len(sec.risky)-n)
			}
		}
		if n := shown[i][1]; len(sec.other) > 0 {
			summary := plural(len(sec.other), "other change")
			if n < len(sec.other) {
				summary += fmt.Sprintf(", %d shown", n)
			}
			fmt.Fprintf(&b, "<details><summary>%s</summary>\n\n%s%s\n</details>\n\n", summary, changeTableHead, strings.Join(sec.other[:n], ""))
		}
		hidden += len(sec.risky) - shown[i][0] + len(sec.other) - shown[i][1]
		b.WriteString(sec.tail)
	}
	if hidden > 0 {
		fmt.Fprintf(&b, "✂️ **%s not shown**: this plan is longer than a comment may be (--max-size %d). The full plan: `reconciler plan --format json` (or text) on this revision.\n", plural(hidden, "change"), maxSize)
	}
	return cutMarkdown(strings.TrimRight(b.String(), "\n")+"\n", maxSize)
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
// findings.
func markdownHead(b *strings.Builder, o *reconcile.Outcome, maxFindings int) {
	// The marker lets CI find and update its own comment.
	b.WriteString("<!-- cfaccess-plan -->\n")
	totals := map[diff.Action]int{}
	for _, ap := range o.Accounts {
		if ap.Plan != nil {
			for _, c := range ap.Plan.Changes {
				totals[c.Action]++
			}
		}
	}
	findings := o.Checked.Findings()
	errs, warns, denies := check.Count(findings)
	switch {
	case !o.Checked.Valid():
		fmt.Fprintf(b, "### ❌ cfaccess: the declarations are invalid (%s)\n\n", plural(errs, "error"))
	case o.Checked.Denied():
		fmt.Fprintf(b, "### ⛔ cfaccess: denied by guardrails (%s)\n\n", plural(denies, "denial"))
	case o.Failed():
		b.WriteString("### ❌ cfaccess: some accounts could not be planned")
		if n := losingAccess(o); n > 0 {
			fmt.Fprintf(b, " (the plans refused would take access from **%s**)", diff.People(n))
		}
		b.WriteString("\n\n")
	case o.Changes() == 0:
		b.WriteString("### ✅ cfaccess plan: no changes\n\n")
	default:
		fmt.Fprintf(b, "### cfaccess plan: %d to invite, %d to update, %d to remove", totals[diff.Invite], totals[diff.Update], totals[diff.Remove])
		if n := totals[diff.LeaveGroup] + totals[diff.JoinGroup] + totals[diff.CreateGroup] + totals[diff.UpdateGroup]; n > 0 {
			fmt.Fprintf(b, ", %s", plural(n, "user-group change"))
		}
		if n := losingAccess(o); n > 0 {
			fmt.Fprintf(b, "; **%s lose access**", diff.People(n))
		}
		if n := o.Refused(); n > 0 {
			fmt.Fprintf(b, "; ⛔ **%s refused** (it would take access from a protected member)", plural(n, "change"))
		}
		b.WriteString("\n\n")
	}
	if o.Revision.SHA != "" {
		fmt.Fprintf(b, "Revision `%s` — %s\n\n", gitsource.Short(o.Revision.SHA), mdEscape(o.Revision.Subject))
	}
	if len(findings) > 0 {
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
}

func markdownAccountTitle(b *strings.Builder, ap *reconcile.AccountPlan) {
	title := ap.Provider
	if ap.AccountName != "" {
		title += " — " + mdEscape(ap.AccountName)
	}
	fmt.Fprintf(b, "#### %s\n\n", title)
	if ap.Err != nil {
		fmt.Fprintf(b, "❌ %s\n\n", mdEscape(ap.Err.Error()))
	}
}

func markdownAccountTail(b *strings.Builder, ap *reconcile.AccountPlan, maxList int) {
	if len(ap.Plan.Unmanaged) > 0 {
		var emails []string
		for i, u := range ap.Plan.Unmanaged {
			if maxList > 0 && i == maxList {
				emails = append(emails, fmt.Sprintf("… and %d more", len(ap.Plan.Unmanaged)-i))
				break
			}
			emails = append(emails, mdEscape(u.Email))
		}
		fmt.Fprintf(b, "Unmanaged (not declared, prune off): %s\n\n", strings.Join(emails, ", "))
	}
	outsideMarkdown(b, ap)
}

// changeRow is a change as a row of the markdown table.
func changeRow(ap *reconcile.AccountPlan, c diff.Change) string {
	icon := map[diff.Action]string{diff.Invite: "➕ invite", diff.Update: "✏️ update", diff.Remove: "➖ remove", diff.Reinvite: "🔁 re-invite",
		diff.LeaveGroup: "➖ out of user group " + mdEscape(c.Group), diff.JoinGroup: "➕ into user group " + mdEscape(c.Group),
		diff.CreateGroup: "➕ create user group " + mdEscape(c.Group), diff.UpdateGroup: "✏️ update user group " + mdEscape(c.Group)}[c.Action]
	var access []string
	for _, a := range c.Add {
		access = append(access, "+ "+mdEscape(ap.Display(a).String()))
	}
	for _, a := range c.Remove {
		access = append(access, "− "+mdEscape(ap.Display(a).String()))
	}
	for _, in := range c.Inherited {
		access = append(access, "= "+mdEscape(ap.Display(in.Access).String())+" (via user group "+mdEscape(in.Group)+")")
	}
	why := "not declared"
	if len(c.Sources) > 0 {
		why = mdCode(joinPos(c.Sources))
		if len(c.Reasons) > 0 {
			why += " " + mdEscape(strings.Join(c.Reasons, "; "))
		}
	} else if c.Action != diff.Remove {
		why = ""
	}
	for _, r := range c.Risks {
		why += " ⚠️ **" + mdEscape(r) + "**"
	}
	if c.Drift != nil {
		why += " ↺ " + mdEscape(driftText(c.Drift))
	}
	if msg := reconcile.Refusal(ap, c); msg != "" {
		why += " ⛔ **" + mdEscape(msg) + "**"
	}
	return fmt.Sprintf("| %s | %s | %s | %s |\n", icon, mdEscape(c.Email), strings.Join(access, "<br>"), strings.TrimSpace(why))
}
