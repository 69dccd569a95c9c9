package report

import (
	"io"

	"github.com/cfaccess/reconciler/internal/reconcile"
)

// Options tune the renderers.
type Options struct {
	// Color paints text output (a terminal, NO_COLOR unset).
	Color bool
	// Version names the tool's version in SARIF.
	Version string
	// MaxSize bounds a markdown plan, in bytes (0: no bound): past it,
	// the plan keeps its summary and risky changes and collapses or cuts
	// the rest (a pull-request comment holds 65,536 characters).
	MaxSize int
}

// PlanFormats are the formats of Plan.
var PlanFormats = []string{"text", "json", "markdown", "sarif"}

// Plan writes a plan (or an apply's outcome) in format: text, json,
// markdown or sarif. Every format renders the same PlanDoc.
func Plan(w io.Writer, format string, o *reconcile.Outcome, opts Options) error {
	if err := CheckFormat(format, PlanFormats); err != nil {
		return err
	}
	doc := NewPlanDoc(o)
	switch format {
	case "json":
		return WriteJSON(w, doc)
	case "markdown":
		return planMarkdown(w, doc, opts.MaxSize)
	case "sarif":
		return findingsSARIF(w, doc.Findings, opts)
	}
	return planText(w, doc, opts.Color)
}
