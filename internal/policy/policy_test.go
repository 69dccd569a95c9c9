package policy

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/tools/txtar"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/cfaccess/reconciler/internal/golden"

	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/policies"
)

var testNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// TestEvalGolden evaluates the built-in guardrails plus the repository's
// own (the .rego files of each testdata/eval/*.txtar) against its YAML
// files, and compares diagnostics and violations with the .golden file.
func TestEvalGolden(t *testing.T) {
	t.Parallel()
	cases, err := filepath.Glob("testdata/eval/*.txtar")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	builtin, err := BuiltinModules(policies.FS, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range cases {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var yamls, regos []desired.File
			for _, f := range ar.Files {
				file := desired.File{Path: f.Name, Data: f.Data}
				if strings.HasSuffix(f.Name, ".rego") {
					regos = append(regos, file)
				} else {
					yamls = append(yamls, file)
				}
			}
			var b strings.Builder
			repo, diags := desired.Load(yamls, desired.Options{})
			if err := diags.Err(); err != nil {
				t.Fatal(err)
			}
			engine, pdiags, err := New(t.Context(), builtin, regos)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range pdiags {
				fmt.Fprintf(&b, "%s: %s: %s\n", d.Pos, d.Severity, d.Message)
			}
			if engine != nil {
				vs, err := engine.Eval(t.Context(), Input(repo, testNow))
				if err != nil {
					fmt.Fprintf(&b, "eval error: %v\n", err)
				}
				for _, v := range vs {
					fmt.Fprintf(&b, "%s: %s: %s [%s]\n", v.Source, v.Severity, v.Message, v.Policy)
				}
			}
			golden.Compare(t, strings.TrimSuffix(path, ".txtar")+".golden", b.String())
		})
	}
}

// TestExampleRepoPolicies runs example-repo's own policy tests.
func TestExampleRepoPolicies(t *testing.T) {
	t.Parallel()
	src, diags, err := desired.ReadDir("../../example-repo", "")
	if err != nil || len(diags) > 0 {
		t.Fatalf("read example-repo: %v %v", err, diags)
	}
	results, tdiags, err := Test(t.Context(), src.Rego)
	if err != nil || len(tdiags) > 0 {
		t.Fatalf("Test: %v %v", err, tdiags)
	}
	if len(results) == 0 {
		t.Fatal("no tests ran")
	}
	for _, r := range results {
		if !r.Passed {
			t.Errorf("%s %s: %s", r.Pos, r.Name, r.Message)
		}
	}
}

func TestUsesLive(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		src  string
		want bool
	}{
		{"package cfaccess.x\ndeny contains 1 if count(input.bindings) > 1", false},
		{"package cfaccess.x\ndeny contains 1 if count(input.plan.prod.invite) > 1", true},
		{"package cfaccess.x\ndeny contains 1 if { some m in input.live.prod.members; m.status == \"pending\" }", true},
		{"package cfaccess.x\ndeny contains 1 if { x := input; x.live }", true},
		{"package cfaccess.x\ndeny contains 1 if { k := \"live\"; input[k] }", true},
		{"package cfaccess.x\ndeny contains 1 if count(data.lib.pending(\"prod\")) > 0", true},
	} {
		mods := []Module{{Path: "policies/x.rego", Data: []byte(tc.src)}}
		if strings.Contains(tc.src, "data.lib") { // a helper outside cfaccess. reads input.live
			mods = append(mods, Module{Path: "policies/lib.rego", Data: []byte("package lib\npending(a) := [m | some m in input.live[a].members; m.status == \"pending\"]\n")})
		}
		e, diags, err := New(t.Context(), nil, mods)
		if err != nil || len(diags.Errors()) > 0 {
			t.Fatalf("%s: %v %v", tc.src, err, diags)
		}
		if e.UsesLive() != tc.want {
			t.Errorf("%s: UsesLive = %v, want %v", tc.src, e.UsesLive(), tc.want)
		}
	}
	builtin, _ := BuiltinModules(policies.FS, false)
	if e, _, _ := New(t.Context(), builtin, nil); e.UsesLive() {
		t.Error("the built-in rules read input.live")
	}
}

// The built-ins whose result cannot change with input.now alone are
// evaluated once per repository state (EvalTimeless); the others, and
// every repository package (which may reach the time through data), at
// each evaluation; together they are Eval's violations.
func TestTimeless(t *testing.T) {
	t.Parallel()
	builtin, _ := BuiltinModules(policies.FS, false)
	repo := []Module{{Path: "policies/x.rego", Data: []byte("package cfaccess.x\nwarn contains \"static\" if count(input.bindings) > 0\n")}}
	e, diags, err := New(t.Context(), builtin, repo)
	if err != nil || len(diags.Errors()) > 0 {
		t.Fatal(err, diags)
	}
	var got []string
	for _, p := range e.packages {
		if p.timeless {
			got = append(got, p.name)
		}
	}
	want := []string{"cfaccess.builtin.admin_expiry", "cfaccess.builtin.reason", "cfaccess.builtin.super_admin"}
	if !slices.Equal(got, want) {
		t.Errorf("timeless %v, want %v", got, want)
	}
	for _, src := range []string{
		"package cfaccess.builtin.t\nwarn contains 1 if input.now > \"\"",
		"package cfaccess.builtin.t\nwarn contains 1 if { x := input; x.now }",
		"package cfaccess.builtin.t\nwarn contains 1 if data.cfaccess.other.x",
		"package cfaccess.builtin.t\nwarn contains 1 if count(input.live) > 0",
	} {
		m, err := ast.ParseModuleWithOpts("builtin/t.rego", src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatal(err)
		}
		if timeless(m) {
			t.Errorf("%q judged timeless", src)
		}
	}
	doc := Input(storyRepo(t), time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC))
	all, err := e.Eval(t.Context(), doc)
	if err != nil {
		t.Fatal(err)
	}
	a, err := e.EvalTimeless(t.Context(), doc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.EvalTimely(t.Context(), doc)
	if err != nil {
		t.Fatal(err)
	}
	if merged := Merge(a, b); !slices.Equal(merged, all) || len(all) == 0 {
		t.Errorf("timeless %v + timely %v = %v, want %v", a, b, merged, all)
	}
}

// storyRepo declares something each built-in guardrail on the repository
// reports.
func storyRepo(t *testing.T) *desired.Repo {
	t.Helper()
	repo, diags := desired.Load([]desired.File{{Path: "access.yaml", Data: []byte(`providers:
  prod: {provider: cloudflare, config: {account_id: 023e105f4ecef8ad9ca31a8372d0c353}}
roles:
  admin: {providers: [prod], inherits: [Administrator], resources: {allow: ["account:*"]}}
  root: {providers: [prod], inherits: [Super Administrator - All Privileges], resources: {allow: ["account:*"]}}
grants:
  - {users: [a@example.com], roles: [admin]}
  - {users: [b@example.com], roles: [root], reason: T-1, review_after: 2026-01-01}
`)}}, desired.Options{})
	if err := diags.Err(); err != nil {
		t.Fatal(err)
	}
	return repo
}
