package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/policy"
)

// A finding's text cannot add a line to validate's or plan's output: a
// newline in a Rego warn's message or source does not forge a verdict.
// (Issue 12: validate had a findings writer of its own that let it.)
func TestFindingsCannotForgeLines(t *testing.T) {
	t.Parallel()
	c := &check.Checked{Repo: &desired.Repo{}, Violations: []policy.Violation{{Severity: policy.Warn,
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

// The Code Quality report GitLab reads: one issue per finding, at its file
// and line, with a stable fingerprint.
func TestCodeQuality(t *testing.T) {
	t.Parallel()
	o := fuzzOutcome("a@example.com", "DNS", "example.com", "r", "grants.yaml", "s", "no reason")
	var b1, b2 bytes.Buffer
	if err := Validate(&b1, "codequality", o.Checked, Options{}); err != nil {
		t.Fatal(err)
	}
	_ = Validate(&b2, "codequality", o.Checked, Options{})
	var issues []struct {
		Description, Severity, Fingerprint string
		CheckName                          string `json:"check_name"`
		Location                           struct {
			Path  string
			Lines struct{ Begin int }
		}
	}
	if err := json.Unmarshal(b1.Bytes(), &issues); err != nil || b1.String() != b2.String() {
		t.Fatalf("%v\n%s", err, b1.String())
	}
	if len(issues) != 2 || issues[0].Location.Path != "grants.yaml" || issues[0].Location.Lines.Begin == 0 ||
		issues[0].Fingerprint == issues[1].Fingerprint || issues[1].CheckName != "cfaccess.x" || issues[1].Severity != "minor" {
		t.Errorf("issues %+v", issues)
	}
}
