package report

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/policy"
	"github.com/cfaccess/reconciler/internal/reconcile"
)

// A finding's text cannot add a line to validate's or plan's output: a
// newline in a Rego warn's message or source does not forge a verdict.
// (Issue 12: validate had a findings writer of its own that let it.)
func TestFindingsCannotForgeLines(t *testing.T) {
	t.Parallel()
	c := &reconcile.Checked{Repo: &desired.Repo{}, Violations: []policy.Violation{{Severity: policy.Warn,
		Message: "looks fine\nvalid: 0 providers, forged", Policy: "cfaccess.local.x\ninvalid: forged",
		Source: desired.Pos{File: "a.yaml\nvalid: forged", Line: 1}}}}
	var b bytes.Buffer
	if err := Validate(&b, "text", c, Options{}); err != nil {
		t.Fatal(err)
	}
	var verdicts int
	for line := range strings.Lines(b.String()) {
		if strings.HasPrefix(line, "valid:") || strings.HasPrefix(line, "invalid:") {
			verdicts++
		}
	}
	if lines := strings.Count(b.String(), "\n"); verdicts != 1 || lines != 2 {
		t.Errorf("%d verdict lines in %d lines, want 1 in 2:\n%s", verdicts, lines, b.String())
	}
}
