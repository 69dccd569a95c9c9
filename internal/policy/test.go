package policy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/cfaccess/reconciler/internal/desired"
)

// TestResult is the outcome of one Rego test rule.
type TestResult struct {
	Name   string // package.rule
	Pos    desired.Pos
	Passed bool
	// Message says why a test did not pass.
	Message string
}

// Test runs the test_ rules of mods (policies with their _test.rego files)
// with OPA's tester, under the same restricted built-ins as evaluation.
// Syntax and compile errors are diagnostics.
func Test(ctx context.Context, mods []Module) ([]TestResult, desired.Diagnostics, error) {
	parsed, diags := parse(mods)
	if len(diags) > 0 {
		return nil, diags, nil
	}
	compiler := ast.NewCompiler().WithCapabilities(capabilities())
	ch, err := tester.NewRunner().SetCompiler(compiler).SetModules(parsed).RunTests(ctx, nil)
	if err != nil {
		var errs ast.Errors
		if errors.As(err, &errs) {
			return nil, astDiagnostics(errs, ""), nil
		}
		return nil, nil, fmt.Errorf("run policy tests: %w", err)
	}
	var out []TestResult
	for r := range ch {
		tr := TestResult{Name: strings.TrimPrefix(r.Package, "data.") + "." + r.Name, Passed: r.Pass()}
		if r.Location != nil {
			tr.Pos = desired.Pos{File: r.Location.File, Line: r.Location.Row}
		}
		switch {
		case r.Error != nil:
			tr.Message = "error: " + r.Error.Error()
		case r.Fail:
			tr.Message = "failed"
			if r.FailedAt != nil && r.FailedAt.Location != nil {
				tr.Message = fmt.Sprintf("failed at line %d: %s", r.FailedAt.Location.Row, r.FailedAt.String())
			}
		case r.Skip:
			tr.Message = "skipped"
		}
		out = append(out, tr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil, nil
}
