package reconcile

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/diff"
)

// readOnlyRole matches roles that only read.
var readOnlyRole = regexp.MustCompile(`(?i)read[ -]?only|readonly|\bread\b|viewer|reader|reporter|reporting|analyst`)

// IsAdmin matches administrator roles, not their read-only variants.
func IsAdmin(role string) bool {
	return strings.Contains(strings.ToLower(role), "admin") && !readOnlyRole.MatchString(role)
}

// annotateRisks marks, on each change of a plan, what a reviewer should
// look at twice: administrator roles, write access to the whole account,
// an email domain the account has not had before, and an email that could
// pass for another. Computed once here, for every output format.
func annotateRisks(ap *AccountPlan) {
	if ap.Plan == nil {
		return
	}
	domains := map[string]bool{}
	if ap.Live != nil {
		for _, m := range ap.Live.Members {
			_, d, _ := strings.Cut(m.Email, "@")
			domains[d] = true
		}
	}
	for i := range ap.Plan.Changes {
		c := &ap.Plan.Changes[i]
		c.Risks = risks(*c, ap.Live != nil, domains)
	}
}

func risks(c diff.Change, knowDomains bool, domains map[string]bool) []string {
	var out []string
	for _, a := range c.Add {
		switch {
		case IsAdmin(a.Role):
			out = append(out, fmt.Sprintf("administrator role %q", a.Role))
		case a.Resource.Kind == desired.WholeAccount && !readOnlyRole.MatchString(a.Role) && a.Role != "Analytics" && a.Role != "Billing" && a.Role != diff.MinimalRole:
			out = append(out, fmt.Sprintf("account-wide write access (%s)", a.Role))
		}
	}
	if why := desired.Lookalike(c.Email); why != "" {
		out = append(out, why+": check it is who you think")
	}
	if c.Action == diff.Invite && knowDomains {
		if _, domain, _ := strings.Cut(c.Email, "@"); !domains[domain] {
			out = append(out, "new email domain "+domain)
		}
	}
	return out
}
