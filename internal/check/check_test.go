package check

import (
	"slices"
	"testing"
	"time"

	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/policy"
)

// A revision compiled once gives, at every instant, the violations a
// fresh compilation would: the guardrails that read the time (review_after)
// are evaluated at each instant, and the input is built again when a grant
// starts or expires (a repository rule reading grants' activity), or when
// the clock goes back.
func TestCompiledOnceEvaluatedAtEachInstant(t *testing.T) {
	t.Parallel()
	src := &desired.Source{Root: ".", YAML: []desired.File{{Path: "access.yaml", Data: []byte(`providers:
  prod: {provider: cloudflare, config: {account_id: 023e105f4ecef8ad9ca31a8372d0c353}}
roles:
  admin: {providers: [prod], inherits: [Administrator], resources: {allow: ["account:*"]}}
grants:
  - {users: [a@example.com], roles: [admin], reason: T-1, review_after: 2026-12-10}
  - {users: [b@example.com], roles: [admin], reason: T-2, expires: 2026-12-20}
`)}}, Rego: []desired.File{{Path: "policies/active.rego", Data: []byte(`package cfaccess.local
deny contains "T-2 is active" if { some g in input.grants; g.active; g.reason == "T-2" }
`)}}}
	compiled, err := Compile(t.Context(), src, nil, Options{Reuse: true})
	if err != nil || !compiled.Valid() {
		t.Fatal(err, compiled.Diags)
	}
	messages := func(vs []policy.Violation) []string {
		var out []string
		for _, v := range vs {
			out = append(out, v.Message)
		}
		slices.Sort(out)
		return out
	}
	day := func(d int) time.Time { return time.Date(2026, 12, d, 12, 0, 0, 0, time.UTC) }
	for _, tc := range []struct {
		now              time.Time
		review, t2Active bool
	}{
		{day(5), false, true},
		{day(12), true, true},  // the same grants active: the input reused, review_after due now
		{day(21), true, false}, // T-2 expired: the input built again
		{day(6), false, true},  // the clock set back
	} {
		got := compiled.At(t.Context(), tc.now)
		fresh, err := Check(t.Context(), src, nil, tc.now, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(messages(got.Violations), messages(fresh.Violations)) {
			t.Errorf("%v: %v, a fresh check %v", tc.now, messages(got.Violations), messages(fresh.Violations))
		}
		review := slices.ContainsFunc(got.Violations, func(v policy.Violation) bool { return v.Policy == "cfaccess.builtin.review_after" })
		active := slices.Contains(messages(got.Violations), "T-2 is active")
		if review != tc.review || active != tc.t2Active || got.Denied() != tc.t2Active {
			t.Errorf("%v: review due %v, T-2 active %v, denied %v; want %v, %v", tc.now, review, active, got.Denied(), tc.review, tc.t2Active)
		}
	}
}
