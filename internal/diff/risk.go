package diff

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/cfaccess/reconciler/internal/desired"
)

// readOnlyRole matches roles that only read.
var readOnlyRole = regexp.MustCompile(`(?i)read[ -]?only|readonly|\bread\b|viewer|reader|reporter|reporting|analyst`)

// isAdmin matches administrator roles, not their read-only variants.
func isAdmin(role string) bool {
	return strings.Contains(strings.ToLower(role), "admin") && !readOnlyRole.MatchString(role)
}

// annotate marks, on each change, what a reviewer should look at twice
// (Risks), and who made the out-of-band change it corrects (Drift, when
// drift is set). Done once here, for every output format.
func (p *Plan) annotate(live []Live, drift func(Change) *Drift) {
	domains := map[string]bool{}
	for _, l := range live {
		_, d, _ := strings.Cut(l.Email, "@")
		domains[d] = true
	}
	for i := range p.Changes {
		c := &p.Changes[i]
		c.Risks = risks(*c, domains)
		if drift != nil {
			c.Drift = drift(*c)
		}
	}
}

// risks are a change's administrator roles, write access to the whole
// account, an email that could pass for another, and an email domain the
// account has not had before.
func risks(c Change, domains map[string]bool) []string {
	var out []string
	for _, a := range c.Add {
		switch {
		case isAdmin(a.Role):
			out = append(out, fmt.Sprintf("administrator role %q", a.Role))
		case a.Resource.Kind == desired.WholeAccount && !readOnlyRole.MatchString(a.Role) && a.Role != "Analytics" && a.Role != "Billing" && a.Role != MinimalRole:
			out = append(out, fmt.Sprintf("account-wide write access (%s)", a.Role))
		}
	}
	if why := desired.Lookalike(c.Email); why != "" {
		out = append(out, why+": check it is who you think")
	}
	if c.Action == Invite {
		if _, domain, _ := strings.Cut(c.Email, "@"); !domains[domain] {
			out = append(out, "new email domain "+domain)
		}
	}
	return out
}
