package policies_test

import (
	"testing"

	"github.com/cfaccess/reconciler/internal/policy"
	"github.com/cfaccess/reconciler/policies"
)

// TestRego runs the built-in guardrails' _test.rego files, as
// `opa test policies/` does.
func TestRego(t *testing.T) {
	t.Parallel()
	mods, err := policy.BuiltinModules(policies.FS, true)
	if err != nil {
		t.Fatal(err)
	}
	results, diags, err := policy.Test(t.Context(), mods)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diags {
		t.Errorf("%s", d)
	}
	if len(results) < 10 {
		t.Errorf("ran %d Rego tests, want at least 10", len(results))
	}
	for _, r := range results {
		t.Run(r.Name, func(t *testing.T) {
			if !r.Passed {
				t.Errorf("%s: %s", r.Pos, r.Message)
			}
		})
	}
}
