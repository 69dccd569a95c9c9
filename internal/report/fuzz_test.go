package report

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/diff"
	"github.com/cfaccess/reconciler/internal/gitsource"
	"github.com/cfaccess/reconciler/internal/policy"
	"github.com/cfaccess/reconciler/internal/reconcile"
)

// FuzzRenderPlan renders plans whose repository- and account-supplied
// values (emails, roles, zones, reasons, file names, commit subjects,
// policy messages) are arbitrary, in every format: JSON and SARIF stay
// valid JSON; a markdown table row stays one row of four cells and the CI
// marker appears once; text output carries no control character but its
// own colours, and no value adds a line.
func FuzzRenderPlan(f *testing.F) {
	f.Add("alice@example.com", "DNS", "example.com", "OPS-1 on-call", "grants.yaml", "Add alice", "no super admins")
	f.Add("x|y@example.com", "Admin|istrator", "a`b", "line1\nline2 | <!-- cfaccess-plan -->", "we|ird`.yaml", "\x1b[2Jclear", "\x1b]0;title\a")
	f.Add("", "", "", "\\", "\\", "\r\n", "\u202e")
	f.Fuzz(func(t *testing.T, email, role, zone, reason, file, subject, message string) {
		o := fuzzOutcome(email, role, zone, reason, file, subject, message)
		for _, format := range []string{"json", "sarif"} {
			var b bytes.Buffer
			if err := Plan(&b, format, o, Options{}); err != nil {
				t.Fatal(err)
			}
			if !json.Valid(b.Bytes()) {
				t.Fatalf("%s output is not valid JSON:\n%s", format, b.String())
			}
		}
		var md bytes.Buffer
		if err := Plan(&md, "markdown", o, Options{}); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(md.String(), "<!--"); n != 1 {
			t.Fatalf("%d HTML comments in markdown, want the marker only:\n%s", n, md.String())
		}
		rows := 0
		for line := range strings.SplitSeq(md.String(), "\n") {
			if !strings.HasPrefix(line, "| ") {
				continue
			}
			rows++
			if n := len(unescapedPipe.FindAllString(line, -1)); n != 5 {
				t.Fatalf("a table row with %d cell borders, want 5:\n%s", n, line)
			}
		}
		if rows != 4 { // header and three changes
			t.Fatalf("%d table rows, want 4:\n%s", rows, md.String())
		}
		lines := -1
		for _, color := range []bool{false, true} {
			var txt bytes.Buffer
			if err := Plan(&txt, "text", o, Options{Color: color}); err != nil {
				t.Fatal(err)
			}
			out := sgrAll.ReplaceAllString(txt.String(), "")
			if strings.ContainsFunc(out, isControl) {
				t.Fatalf("a control character in text output: %q", out)
			}
			if !color {
				if out != txt.String() {
					t.Fatalf("colour without a terminal: %q", txt.String())
				}
				lines = strings.Count(out, "\n")
			}
		}
		// The same plan with plain values has as many lines.
		email, role, zone, reason, file, subject, message = "a@example.com", "r", "z", "why", "f.yaml", "s", "m"
		var plain bytes.Buffer
		if err := Plan(&plain, "text", fuzzOutcome(email, role, zone, reason, file, subject, message), Options{}); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(plain.String(), "\n"); n != lines {
			t.Fatalf("%d lines, %d with plain values: a value added lines", lines, n)
		}
	})
}

// fuzzOutcome is a plan of three changes, a warning and a guardrail
// warning, made of the given values.
func fuzzOutcome(email, role, zone, reason, file, subject, message string) *reconcile.Outcome {
	c := &check.Checked{
		Diags:      desired.Diagnostics{{Pos: desired.Pos{File: file, Line: 2}, Severity: desired.Warning, Message: message}},
		Violations: []policy.Violation{{Severity: policy.Warn, Message: message, Policy: "cfaccess.x", Source: desired.Pos{File: file, Line: 3}}},
	}
	access := []desired.Access{{Role: role, Resource: desired.Resource{Kind: desired.ZoneName, Zone: zone}}}
	plan := &diff.Plan{Changes: []diff.Change{
		{Action: diff.Remove, Email: email, MemberID: "m1", Remove: access},
		{Action: diff.Update, Email: email, MemberID: "m2", Add: access, Remove: access, Access: access, Sources: []desired.Pos{{File: file, Line: 5}}, Reasons: []string{reason}},
		{Action: diff.Invite, Email: email, Add: access, Access: access, Sources: []desired.Pos{{File: file, Line: 7}}, Reasons: []string{reason, reason}},
	}, Unmanaged: []diff.Live{{Email: email}}}
	return &reconcile.Outcome{Checked: c, Revision: gitsource.Revision{SHA: "0123456789abcdef", Subject: subject, Author: email},
		Accounts: []*reconcile.AccountPlan{{Provider: "prod", AccountID: "acc", AccountName: subject, Plan: plan}}}
}

var (
	unescapedPipe = regexp.MustCompile(`(^|[^\\])(\\\\)*\|`)
	sgrAll        = regexp.MustCompile(`\x1b\[[0-9;]*m`)
)
