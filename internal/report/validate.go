package report

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/desired"
)

// ValidateFormats are the formats of Validate.
var ValidateFormats = []string{"text", "json", "sarif", "codequality"}

// Validate writes a validation's findings and verdict in format: text,
// json, sarif or codequality (GitLab's Code Quality report, shown in merge
// requests).
func Validate(w io.Writer, format string, c *check.Checked, opts Options) error {
	switch format {
	case "text":
		return validateText(w, c, opts.Color)
	case "json":
		return validateJSON(w, c)
	case "sarif":
		return findingsSARIF(w, c.Findings(), opts)
	case "codequality":
		return validateCodeQuality(w, c)
	}
	return CheckFormat(format, ValidateFormats)
}

// codeQualityIssue is an issue of GitLab's Code Quality report (a subset
// of Code Climate's format: description, check_name, fingerprint,
// severity, location.path, location.lines.begin).
type codeQualityIssue struct {
	Description string              `json:"description"`
	CheckName   string              `json:"check_name"`
	Fingerprint string              `json:"fingerprint"`
	Severity    string              `json:"severity"` // info, minor, major, critical, blocker
	Location    codeQualityLocation `json:"location"`
}

type codeQualityLocation struct {
	Path  string           `json:"path"`
	Lines codeQualityLines `json:"lines"`
}

type codeQualityLines struct {
	Begin int `json:"begin"`
}

func validateCodeQuality(w io.Writer, c *check.Checked) error {
	issues := []codeQualityIssue{}
	for _, f := range c.Findings() {
		pos := desired.ParsePos(f.Source)
		severity := map[string]string{"error": "blocker", "deny": "critical", "warn": "minor", "warning": "minor"}[f.Severity]
		if severity == "" {
			severity = "info"
		}
		id := sarifRuleID(f)
		// Stable across runs, distinct per finding: GitLab tells new
		// findings from fixed ones by it.
		sum := sha256.Sum256([]byte(id + "\x00" + f.Source + "\x00" + f.Message))
		issues = append(issues, codeQualityIssue{Description: f.Message, CheckName: id, Fingerprint: hex.EncodeToString(sum[:16]),
			Severity: severity, Location: codeQualityLocation{Path: pos.File, Lines: codeQualityLines{Begin: max(pos.Line, 1)}}})
	}
	return WriteJSON(w, issues)
}

// Instant writes a time for people, in UTC to the second; "—" for none
// (the status page and `reconciler status`).
func Instant(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// CheckFormat refuses a format not among formats, naming them.
func CheckFormat(format string, formats []string) error {
	if slices.Contains(formats, format) {
		return nil
	}
	last := len(formats) - 1
	return fmt.Errorf("--format %q: choose %s or %s", format, strings.Join(formats[:last], ", "), formats[last])
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// textLabel is how a severity reads in compiler-style output.
var textLabel = map[string]string{"error": "error", "warning": "warning", "deny": "denied", "warn": "warning"}

// validateText reads like a compiler: a line per finding, then the
// verdict. The findings are written as plan's are (findingsText).
func validateText(w io.Writer, c *check.Checked, color bool) error {
	var b strings.Builder
	findingsText(&b, c.Findings(), c.Valid(), c.Denied(), painter(color), false)
	if c.Valid() && !c.Denied() {
		_, warns, _ := check.Count(c.Findings())
		fmt.Fprintf(&b, "valid: %s, %s, %s, %s in %s; %s\n",
			plural(len(c.Repo.Providers), "provider"), plural(len(c.Repo.Roles), "role"),
			plural(len(c.Repo.Groups), "group"), plural(len(c.Repo.Grants), "grant"),
			plural(c.Files, "file"), plural(warns, "warning"))
	}
	_, err := io.WriteString(w, terminalSafe(b.String()))
	return err
}

// validateDoc is the stable JSON form of a validation.
type validateDoc struct {
	FormatVersion int             `json:"format_version"`
	Valid         bool            `json:"valid"`
	Denied        bool            `json:"denied"`
	Findings      []check.Finding `json:"findings"`
	Summary       *summary        `json:"summary,omitempty"`
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

func validateJSON(w io.Writer, c *check.Checked) error {
	findings := c.Findings()
	errs, warns, denies := check.Count(findings)
	out := validateDoc{FormatVersion: 1, Valid: c.Valid(), Denied: c.Denied(), Findings: findings,
		Summary: &summary{Files: c.Files, Errors: errs, Warnings: warns, Denials: denies}}
	if out.Findings == nil {
		out.Findings = []check.Finding{}
	}
	if c.Repo != nil {
		out.Summary.Providers, out.Summary.Roles = len(c.Repo.Providers), len(c.Repo.Roles)
		out.Summary.Groups, out.Summary.Grants = len(c.Repo.Groups), len(c.Repo.Grants)
	}
	return WriteJSON(w, out)
}

// WriteJSON writes v as indented JSON, with invisible and
// direction-changing characters escaped (\u202e): they can only appear
// inside strings, where the escape means the same.
func WriteJSON(w io.Writer, v any) error {
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
	FullDescription  sarifMessage `json:"fullDescription"`
	Help             sarifHelp    `json:"help"`
	HelpURI          string       `json:"helpUri"`
}

type sarifHelp struct {
	Text     string `json:"text"`
	Markdown string `json:"markdown"`
}

// docsURL is where the documentation lives, for SARIF's helpUri.
const docsURL = "https://github.com/cfaccess/reconciler/blob/main/"

// builtinRules describe the built-in guardrails, for SARIF.
var builtinRules = map[string]string{
	"cfaccess.builtin.super_admin":  "Denies Super Administrator - All Privileges (or its former name) on the whole account: nobody holds every key of the account through a grant.",
	"cfaccess.builtin.user_groups":  "Denies Super Administrator on the whole account held through a user group the plan leaves the member in.",
	"cfaccess.builtin.admin_expiry": "Warns when an administrator role is granted without expires: administrator access should be just in time.",
	"cfaccess.builtin.reason":       "Warns when a grant has no reason: reviewers and auditors need to know why access was given.",
	"cfaccess.builtin.review_after": "Warns when a grant is past its review_after date: confirm it is still needed and move the date on, or remove the grant.",
}

// sarifRuleFor describes the rule of a finding.
func sarifRuleFor(id string, f check.Finding) sarifRule {
	r := sarifRule{ID: id}
	switch {
	case f.Policy == "" && f.Severity == "error":
		r.ShortDescription.Text = "Invalid access declaration"
		r.FullDescription.Text = "An access declaration cannot be loaded as written. The message names the file, the line and what to change. Nothing is applied while a declaration is invalid."
		r.HelpURI = docsURL + "docs/troubleshooting.md#loading-the-repository"
	case f.Policy == "":
		r.ShortDescription.Text = "Access declaration warning"
		r.FullDescription.Text = "An access declaration loads, but something about it is likely a mistake (a role name Cloudflare does not know, an unused group, a grant outside its window)."
		r.HelpURI = docsURL + "docs/troubleshooting.md#loading-the-repository"
	case builtinRules[f.Policy] != "":
		r.ShortDescription.Text = "cfaccess guardrail " + f.Policy
		r.FullDescription.Text = builtinRules[f.Policy]
		r.HelpURI = docsURL + "README.md#guardrails"
	default:
		r.ShortDescription.Text = "cfaccess guardrail " + f.Policy
		r.FullDescription.Text = "A guardrail of this access repository (Rego under policies/) found this. Its package is " + f.Policy + "."
		r.HelpURI = docsURL + "docs/reference.md#guardrail-input"
	}
	r.Help = sarifHelp{Text: r.FullDescription.Text + " See " + r.HelpURI,
		Markdown: r.FullDescription.Text + " [Documentation](" + r.HelpURI + ")"}
	return r
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
func sarifRuleID(f check.Finding) string {
	if f.Policy != "" {
		return f.Policy
	}
	return "cfaccess/declaration-" + f.Severity
}

// findingsSARIF writes findings as a SARIF log, one result each, and a
// rule per result's id (validate and plan share it).
func findingsSARIF(w io.Writer, findings []check.Finding, opts Options) error {
	v := opts.Version
	run := sarifRun{Tool: sarifTool{Driver: sarifDriver{Name: "cfaccess", InformationURI: "https://github.com/cfaccess/reconciler", Version: v}}, Results: []sarifResult{}}
	seen := map[string]bool{}
	for _, f := range findings {
		id := sarifRuleID(f)
		if !seen[id] {
			seen[id] = true
			run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRuleFor(id, f))
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
	return WriteJSON(w, sarifLog{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0", Runs: []sarifRun{run}})
}
