package daemon

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/policy"
	"github.com/cfaccess/reconciler/internal/reconcile"
)

// A candidate revision is refused when it is invalid, denied (by a
// guardrail on the repository, or by one reading the live accounts), or
// names what an account lacks; a guardrail on the live state alone
// (Live) holds grants back instead, and does not refuse it.
func TestRefusal(t *testing.T) {
	t.Parallel()
	deny := func(live bool) []policy.Violation {
		return []policy.Violation{{Severity: policy.Deny, Message: "no", Live: live}}
	}
	declared := &reconcile.Outcome{Accounts: []*reconcile.AccountPlan{
		{Provider: "dev"},
		{Provider: "prod", Err: fmt.Errorf("plan: %w", &reconcile.DeclarationError{Diags: desired.Diagnostics{
			{Pos: desired.Pos{File: "roles.yaml", Line: 3}, Severity: desired.Error, Message: "zone exmaple.com is not in account"}}})},
	}}
	failed := &reconcile.Outcome{Accounts: []*reconcile.AccountPlan{{Provider: "prod", Err: errors.New("503")}}}
	for _, tc := range []struct {
		name    string
		checked *check.Checked
		outcome *reconcile.Outcome
		want    Verdict // "" for accepted
		finding string
	}{
		{"valid, planned", &check.Checked{}, &reconcile.Outcome{}, "", ""},
		{"invalid", &check.Checked{Diags: desired.Diagnostics{{Severity: desired.Error, Message: "bad"}}}, nil, VerdictInvalid, "bad"},
		{"denied on the repository", &check.Checked{Violations: deny(false)}, nil, VerdictDenied, "no"},
		{"denied by a guardrail reading the live accounts", &check.Checked{Violations: deny(false)}, &reconcile.Outcome{}, VerdictDenied, "no"},
		{"a built-in denial on the live state: grants held back", &check.Checked{Violations: deny(true)}, &reconcile.Outcome{}, "", ""},
		{"a declaration the account lacks", &check.Checked{}, declared, VerdictInvalid, "prod: zone exmaple.com is not in account"},
		{"an account that could not be read: not the revision's fault", &check.Checked{}, failed, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := refusal(tc.checked, tc.outcome)
			switch {
			case tc.want == "" && got != nil:
				t.Errorf("refused: %v", got)
			case tc.want != "" && (got == nil || got.Verdict != tc.want):
				t.Errorf("refusal %v, want %s", got, tc.want)
			case tc.want != "" && (len(got.Findings) == 0 || got.Findings[0].Message != tc.finding):
				t.Errorf("findings %+v, want %q first", got.Findings, tc.finding)
			}
		})
	}
}
