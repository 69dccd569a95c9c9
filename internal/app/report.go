package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"

	"github.com/cfaccess/reconciler/internal/desired"
)

var validateRenderers = map[string]func(io.Writer, *checked) error{
	"text":  renderValidateText,
	"json":  renderValidateJSON,
	"sarif": renderValidateSARIF,
}

// finding is a diagnostic, failed policy test or violation, flattened for
// output.
type finding struct {
	Source   string `json:"source"`
	Severity string `json:"severity"` // error, warning, deny, warn
	Message  string `json:"message"`
	Policy   string `json:"policy,omitempty"`
}

// findings lists everything to report, in reading order: diagnostics and
// failed policy tests, then violations (denials first).
func (c *checked) findings() []finding {
	var out []finding
	for _, d := range c.diags {
		out = append(out, finding{Source: d.Pos.String(), Severity: d.Severity.String(), Message: d.Message})
	}
	for _, t := range c.tests {
		if !t.Passed {
			out = append(out, finding{Source: t.Pos.String(), Severity: "error", Message: fmt.Sprintf("policy test %s %s", t.Name, t.Message)})
		}
	}
	for _, v := range c.violations {
		out = append(out, finding{Source: v.Source.String(), Severity: string(v.Severity), Message: v.Message, Policy: v.Policy})
	}
	return out
}

// count tallies findings by how they block: errors, warnings, denials.
func count(fs []finding) (errs, warns, denies int) {
	for _, f := range fs {
		switch f.Severity {
		case "error":
			errs++
		case "deny":
			denies++
		default:
			warns++
		}
	}
	return errs, warns, denies
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// textLabel is how a severity reads in compiler-style output.
var textLabel = map[string]string{"error": "error", "warning": "warning", "deny": "denied", "warn": "warning"}

func renderValidateText(w io.Writer, c *checked) error {
	var b strings.Builder
	findings := c.findings()
	for _, f := range findings {
		fmt.Fprintf(&b, "%s: %s: %s", f.Source, textLabel[f.Severity], oneLine(f.Message))
		if f.Policy != "" {
			fmt.Fprintf(&b, " [%s]", f.Policy)
		}
		b.WriteByte('\n')
	}
	errs, warns, denies := count(findings)
	switch {
	case !c.valid():
		fmt.Fprintf(&b, "invalid: %s, %s\n", plural(errs, "error"), plural(warns, "warning"))
	case c.denied():
		fmt.Fprintf(&b, "denied by guardrails: %s, %s\n", plural(denies, "denial"), plural(warns, "warning"))
	default:
		fmt.Fprintf(&b, "valid: %s, %s, %s, %s in %s; %s\n",
			plural(len(c.repo.Providers), "provider"), plural(len(c.repo.Roles), "role"),
			plural(len(c.repo.Groups), "group"), plural(len(c.repo.Grants), "grant"),
			plural(c.files, "file"), plural(warns, "warning"))
	}
	_, err := io.WriteString(w, terminalSafe(b.String()))
	return err
}

// validateJSON is the stable JSON form of a validation.
type validateJSON struct {
	FormatVersion int       `json:"format_version"`
	Valid         bool      `json:"valid"`
	Denied        bool      `json:"denied"`
	Findings      []finding `json:"findings"`
	Summary       *summary  `json:"summary,omitempty"`
}

type summary struct {
	Files     int `json:"files"`
	Providers int `json:"providers"`
	Roles     int `json:"roles"`
	Groups    int `json:"groups"`
	Grants    int `json:"grants"`
	Errors    int `json:"errors"`
	Warnings  int `json:"warnings"`
	Denials   int `json:"denials"`
}

func renderValidateJSON(w io.Writer, c *checked) error {
	findings := c.findings()
	errs, warns, denies := count(findings)
	out := validateJSON{FormatVersion: 1, Valid: c.valid(), Denied: c.denied(), Findings: findings,
		Summary: &summary{Files: c.files, Errors: errs, Warnings: warns, Denials: denies}}
	if out.Findings == nil {
		out.Findings = []finding{}
	}
	if c.repo != nil {
		out.Summary.Providers, out.Summary.Roles = len(c.repo.Providers), len(c.repo.Roles)
		out.Summary.Groups, out.Summary.Grants = len(c.repo.Groups), len(c.repo.Grants)
	}
	return writeJSON(w, out)
}

// writeJSON writes v as indented JSON, with invisible and
// direction-changing characters escaped (\u202e): they can only appear
// inside strings, where the escape means the same.
func writeJSON(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	out := buf.String()
	if strings.ContainsFunc(out, hidden) {
		var b strings.Builder
		for _, r := range out {
			switch {
			case !hidden(r):
				b.WriteRune(r)
			case r > 0xFFFF:
				r1, r2 := utf16.EncodeRune(r)
				fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
			default:
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		}
		out = b.String()
	}
	_, err := io.WriteString(w, out)
	return err
}

// SARIF 2.1.0, the subset code scanning reads.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri"`
	Version        string      `json:"version"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID               string       `json:"id"`
	ShortDescription sarifMessage `json:"shortDescription"`
}

type sarifResult struct {
	RuleID    string          `json:"ruleId"`
	Level     string          `json:"level"`
	Message   sarifMessage    `json:"message"`
	Locations []sarifLocation `json:"locations"`
}

type sarifMessage struct {
	Text string `json:"text"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

// sarifRuleID names the rule of a finding: the policy package for
// violations, cfaccess/declaration for declaration problems.
func sarifRuleID(f finding) string {
	if f.Policy != "" {
		return f.Policy
	}
	return "cfaccess/declaration-" + f.Severity
}

func renderValidateSARIF(w io.Writer, c *checked) error {
	v, _ := Version()
	run := sarifRun{Tool: sarifTool{Driver: sarifDriver{Name: "cfaccess", InformationURI: "https://github.com/cfaccess/reconciler", Version: v}}, Results: []sarifResult{}}
	seen := map[string]bool{}
	for _, f := range c.findings() {
		id := sarifRuleID(f)
		if !seen[id] {
			seen[id] = true
			desc := "cfaccess guardrail " + f.Policy
			if f.Policy == "" {
				desc = "access declaration " + f.Severity
			}
			run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRule{ID: id, ShortDescription: sarifMessage{desc}})
		}
		level := "warning"
		if f.Severity == "error" || f.Severity == "deny" {
			level = "error"
		}
		pos := desired.ParsePos(f.Source)
		loc := sarifLocation{PhysicalLocation: sarifPhysical{ArtifactLocation: sarifArtifact{URI: pos.File}}}
		if pos.Line > 0 {
			loc.PhysicalLocation.Region = &sarifRegion{StartLine: pos.Line}
		}
		run.Results = append(run.Results, sarifResult{RuleID: id, Level: level, Message: sarifMessage{f.Message}, Locations: []sarifLocation{loc}})
	}
	if run.Tool.Driver.Rules == nil {
		run.Tool.Driver.Rules = []sarifRule{}
	}
	return writeJSON(w, sarifLog{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0", Runs: []sarifRun{run}})
}
