package report

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/diff"
	"github.com/cfaccess/reconciler/internal/gitsource"
	"github.com/cfaccess/reconciler/internal/golden"
	"github.com/cfaccess/reconciler/internal/reconcile"
)

// bigOutcome is a plan of 2,000 changes over two accounts, every 100th
// risky (an administrator granted).
func bigOutcome() *reconcile.Outcome {
	var accounts []*reconcile.AccountPlan
	for a, name := range []string{"prod", "staging"} {
		plan := &diff.Plan{}
		for i := range 1000 {
			access := []desired.Access{{Role: "Domain DNS", Resource: desired.Resource{Kind: desired.ZoneName, Zone: fmt.Sprintf("zone%03d.example.com", i%200)}}}
			c := diff.Change{Action: diff.Invite, Email: fmt.Sprintf("user%04d@example.com", a*1000+i), Add: access, Access: access,
				Sources: []desired.Pos{{File: fmt.Sprintf("grants/%02d.yaml", i/100), Line: 2 + i%100}}, Reasons: []string{fmt.Sprintf("OPS-%d onboarding", i)}}
			if i%100 == 7 {
				c.Add = append(c.Add, desired.Access{Role: "Administrator", Resource: desired.Resource{Kind: desired.WholeAccount}})
				c.Risks = []string{"grants Administrator on the whole account"}
			}
			plan.Changes = append(plan.Changes, c)
		}
		accounts = append(accounts, &reconcile.AccountPlan{Provider: name, AccountID: fmt.Sprintf("%032d", a), AccountName: strings.ToUpper(name), Plan: plan})
	}
	return &reconcile.Outcome{Checked: &check.Checked{}, Revision: gitsource.Revision{SHA: "0123456789abcdef0123", Subject: "onboard 2,000 people"}, Accounts: accounts}
}

// A 2,000-change plan fits a pull-request comment: the summary and every
// risky change in full, the rest collapsed per account as far as they
// fit, and a note pointing at the full plan.
func TestMarkdownMaxSize(t *testing.T) {
	t.Parallel()
	o := bigOutcome()
	var full, fit bytes.Buffer
	if err := Plan(&full, "markdown", o, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := Plan(&fit, "markdown", o, Options{MaxSize: DefaultMaxSize}); err != nil {
		t.Fatal(err)
	}
	out := fit.String()
	if n := utf8.RuneCountInString(out); full.Len() <= DefaultMaxSize || n > DefaultMaxSize {
		t.Fatalf("full plan %d bytes, fitted %d characters: want over and under %d", full.Len(), n, DefaultMaxSize)
	}
	if !strings.Contains(out, "### cfaccess plan: 2000 to invite, 0 to update, 0 to remove") {
		t.Error("the summary is missing")
	}
	for _, c := range append(o.Accounts[0].Plan.Changes, o.Accounts[1].Plan.Changes...) {
		if len(c.Risks) > 0 && !strings.Contains(out, "| ➕ invite | "+mdEscape(c.Email)+" |") {
			t.Errorf("risky change for %s missing", c.Email)
		}
	}
	if strings.Count(out, "<details><summary>") != 2 || !strings.Contains(out, "not shown**") {
		t.Error("the rest is not collapsed per account, or the cut is not said")
	}
	golden.Compare(t, "testdata/plan-2000.md", out)
	var small bytes.Buffer
	if err := Plan(&small, "markdown", fuzzOutcome("a@example.com", "DNS", "example.com", "r", "g.yaml", "s", "m"), Options{MaxSize: DefaultMaxSize}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(small.String(), "<details><summary>") && strings.Contains(small.String(), "not shown") {
		t.Error("a small plan is cut")
	}
}

// Whatever makes a plan long — findings, unmanaged members, risky changes
// — the comment stays under the limit, and every account shows its risky
// changes in turn.
func TestMarkdownMaxSizeWorstCases(t *testing.T) {
	t.Parallel()
	o := bigOutcome()
	for i := range 1000 {
		o.Checked.Diags = append(o.Checked.Diags, desired.Diagnostic{Pos: desired.Pos{File: "grants/x.yaml", Line: i + 1}, Severity: desired.Warning, Message: fmt.Sprintf("warning number %d about something rather long to say", i)})
	}
	for i := range 3000 {
		o.Accounts[0].Plan.Unmanaged = append(o.Accounts[0].Plan.Unmanaged, diff.Live{Email: fmt.Sprintf("unmanaged%04d@example.com", i)})
	}
	for _, ap := range o.Accounts {
		for i := range ap.Plan.Changes {
			if i%2 == 0 {
				ap.Plan.Changes[i].Risks = []string{"grants Administrator on the whole account"}
			}
		}
	}
	var b bytes.Buffer
	if err := Plan(&b, "markdown", o, Options{MaxSize: DefaultMaxSize}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if n := utf8.RuneCountInString(out); n > DefaultMaxSize {
		t.Errorf("%d characters, over %d", n, DefaultMaxSize)
	}
	if strings.Count(out, "<details") != strings.Count(out, "</details>") {
		t.Error("an open <details>")
	}
	for _, acct := range []string{"user0000@example.com", "user1000@example.com"} { // the first risky change of each account
		if !strings.Contains(out, "| ➕ invite | "+mdEscape(acct)+" |") {
			t.Errorf("%s's risky change missing: accounts do not take turns", acct)
		}
	}
	if !strings.Contains(out, "more changes to look at twice are not shown") {
		t.Error("risky changes cut without saying")
	}
}
