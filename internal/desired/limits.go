package desired

import (
	"fmt"
	"strings"
	"time"
)

// LimitDiagnostics checks how long each grant of a role with limits and
// without not_before lasts, counted from now: within the role's
// max_duration (for a break_glass grant, within its
// break_glass.max_duration too). A grant that fails is an error at its
// file:line naming the limit. Such a grant only passes more easily as
// time goes on, so a revision accepted once stays valid. (A grant with
// not_before is checked once, when loaded: durationDiagnostics.)
func (r *Repo) LimitDiagnostics(now time.Time) Diagnostics {
	var out Diagnostics
	for _, g := range r.Grants {
		if g.NotBefore.IsZero() {
			out = append(out, g.durationDiagnostics(r.Roles, now)...)
		}
	}
	return out
}

// durationDiagnostics checks a grant's length against the limits of its
// roles, from its not_before, or from now when it has none.
func (g *Grant) durationDiagnostics(roles map[string]*Role, now time.Time) Diagnostics {
	if g.Expires.IsZero() {
		return nil // a standing grant of a limited role is refused at load
	}
	var out Diagnostics
	for _, id := range g.Roles {
		role, ok := roles[id]
		if !ok {
			continue
		}
		limit, kind := role.MaxDuration, "max_duration"
		if g.BreakGlass && role.BreakGlass != nil && (limit == 0 || role.BreakGlass.MaxDuration < limit) {
			limit, kind = role.BreakGlass.MaxDuration, "break_glass.max_duration"
		}
		if limit == 0 {
			continue
		}
		start, from := g.NotBefore, "its not_before "+g.NotBefore.UTC().Format(time.RFC3339)
		if start.IsZero() {
			start, from = now, "now (it has no not_before, so it counts from when it is checked)"
		}
		if d := g.Expires.Sub(start); d > limit {
			out = append(out, Diagnostic{Pos: g.Pos, Severity: Error, Message: fmt.Sprintf(
				"grant: role %q has %s %s: this grant expires %s, %s after %s; shorten it",
				id, kind, formatDuration(limit), g.Expires.UTC().Format(time.RFC3339), formatDuration(d), from)})
		}
	}
	return out
}

// formatDuration writes a duration as people write it: 8h, 1h30m, 2d4h.
func formatDuration(d time.Duration) string {
	var b strings.Builder
	if days := d / (24 * time.Hour); days > 0 {
		fmt.Fprintf(&b, "%dd", days)
		d -= days * 24 * time.Hour
	}
	s := d.Round(time.Second).String() // "8h0m0s", "30m0s", "0s"
	if s != "0s" {
		s = strings.TrimSuffix(s, "0s")
		if strings.HasSuffix(s, "h0m") {
			s = strings.TrimSuffix(s, "0m")
		}
		b.WriteString(s)
	}
	if b.Len() == 0 {
		return "0s"
	}
	return b.String()
}
