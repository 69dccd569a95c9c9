package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/cfaccess/reconciler/internal/desired"
)

// Severity of a violation: Deny blocks, Warn is reported.
type Severity string

const (
	Deny Severity = "deny"
	Warn Severity = "warn"
)

// Violation is one deny or warn element.
type Violation struct {
	Severity Severity
	// Policy is the Rego package that produced it, such as
	// "cfaccess.builtin.super_admin".
	Policy  string
	Message string
	// Source is where the violation is: the element's source, or the
	// position of the rule when the element is a plain string.
	Source desired.Pos
	// Live is set for a built-in guardrail on the live state (access
	// outside the repository): its denial holds back what the plan would
	// grant, not the repository, nor what it takes away.
	Live bool
}

func (v Violation) String() string {
	return fmt.Sprintf("%s: %s (%s)", v.Source, v.Message, v.Policy)
}

// builtinPrefix starts the file names of built-in modules in messages.
const builtinPrefix = "builtin/"

// forbiddenBuiltins are Rego built-ins that reach the network, the process
// environment (where tokens live) or the wall clock.
var forbiddenBuiltins = []string{"http.send", "net.lookup_ip_addr", "opa.runtime", "time.now_ns"}

// capabilities is OPA's current set less the forbidden built-ins.
func capabilities() *ast.Capabilities {
	caps := ast.CapabilitiesForThisVersion()
	caps.Builtins = slices.DeleteFunc(slices.Clone(caps.Builtins), func(b *ast.Builtin) bool {
		return slices.Contains(forbiddenBuiltins, b.Name)
	})
	return caps
}

// Engine evaluates a fixed set of guardrails. It is safe for concurrent use.
type Engine struct {
	query    rego.PreparedEvalQuery
	packages []pkgInfo
	usesLive bool
	// liveBuiltins are the built-in packages that read input.live or
	// input.plan.
	liveBuiltins []string
}

// UsesLive reports whether any of the repository's guardrails reads
// input.live or input.plan (or the whole input): only then is the whole
// input kept to evaluate them again with the live state — for a
// 50,000-member account it is tens of megabytes. Built-in guardrails on
// the live state run on their own (EvalLiveBuiltins).
func (e *Engine) UsesLive() bool { return e.usesLive }

// LiveBuiltins reports whether a built-in guardrail reads the live state.
func (e *Engine) LiveBuiltins() bool { return len(e.liveBuiltins) > 0 }

// readsLive reports whether a module refers to input.live, input.plan, or
// to input as a whole (which could reach them).
func readsLive(m *ast.Module) bool {
	found := false
	ast.WalkRefs(m, func(r ast.Ref) bool {
		if !r[0].Equal(ast.InputRootDocument) {
			return false
		}
		if len(r) == 1 {
			found = true
			return true
		}
		if key, ok := r[1].Value.(ast.String); !ok || key == "live" || key == "plan" {
			found = true
		}
		return found
	})
	return found
}

type pkgInfo struct {
	path []string // below "cfaccess"
	name string   // "cfaccess.x.y"
	// rulePos is where deny/warn are first defined, for string elements.
	rulePos map[Severity]desired.Pos
	// query evaluates the package alone; timeless says its result cannot
	// change when only input.now does (timeless); modules counts its files.
	query    rego.PreparedEvalQuery
	timeless bool
	modules  int
}

// timeless reports whether a built-in module's rules can only depend on
// the input's repository part: it reads neither input.now, nor input as a
// whole, nor the live state, nor another package's data. (Only built-ins
// are judged: a repository's package may reach one that reads the time
// through data.)
func timeless(m *ast.Module) bool {
	ok := true
	ast.WalkRefs(m, func(r ast.Ref) bool {
		switch {
		case r[0].Equal(ast.InputRootDocument):
			if len(r) == 1 {
				ok = false
			} else if key, isStr := r[1].Value.(ast.String); !isStr || key == "now" || key == "live" || key == "plan" {
				ok = false
			}
		case r[0].Equal(ast.DefaultRootDocument) && !r.HasPrefix(m.Package.Path):
			ok = false
		}
		return !ok
	})
	return ok
}

// Module is a Rego source file.
type Module = desired.File

// BuiltinModules returns the built-in modules of fsys (normally
// policies.FS), test files excluded when tests is false.
func BuiltinModules(fsys fs.FS, tests bool) ([]Module, error) {
	names, err := fs.Glob(fsys, "*.rego")
	if err != nil {
		return nil, err
	}
	var out []Module
	for _, n := range names {
		if !tests && isTestFile(n) {
			continue
		}
		data, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		out = append(out, Module{Path: builtinPrefix + n, Data: data})
	}
	return out, nil
}

func isTestFile(name string) bool { return strings.HasSuffix(name, "_test.rego") }

// parse parses modules, reporting errors at their file and line.
func parse(mods []Module) (map[string]*ast.Module, desired.Diagnostics) {
	out := map[string]*ast.Module{}
	var diags desired.Diagnostics
	opts := ast.ParserOptions{RegoVersion: ast.RegoV1, Capabilities: capabilities()}
	for _, m := range mods {
		parsed, err := ast.ParseModuleWithOpts(m.Path, string(m.Data), opts)
		if err != nil {
			diags = append(diags, astDiagnostics(err, m.Path)...)
			continue
		}
		if parsed == nil {
			diags = append(diags, desired.Diagnostic{Pos: desired.Pos{File: m.Path}, Severity: desired.Error, Message: "Rego file has no package"})
			continue
		}
		out[m.Path] = parsed
	}
	return out, diags
}

// astDiagnostics turns OPA's parse and compile errors into diagnostics.
func astDiagnostics(err error, file string) desired.Diagnostics {
	var errs ast.Errors
	if !errors.As(err, &errs) {
		return desired.Diagnostics{{Pos: desired.Pos{File: file}, Severity: desired.Error, Message: "Rego: " + err.Error()}}
	}
	var out desired.Diagnostics
	for _, e := range errs {
		pos := desired.Pos{File: file}
		if e.Location != nil {
			pos = desired.Pos{File: e.Location.File, Line: e.Location.Row}
		}
		out = append(out, desired.Diagnostic{Pos: pos, Severity: desired.Error, Message: "Rego: " + e.Message})
	}
	return out
}

// reachesBuiltin reports whether a module's rules define documents under
// data.cfaccess.builtin (through a dotted rule head).
func reachesBuiltin(m *ast.Module) bool {
	builtin := ast.MustParseRef("data.cfaccess.builtin")
	for _, r := range m.Rules {
		if r.Ref().HasPrefix(builtin) {
			return true
		}
	}
	return false
}

// New compiles the built-in modules and the repository's own, and prepares
// the query. Problems in the repository's modules (syntax, a package
// reserved for built-ins, a forbidden built-in) are diagnostics with file
// and line; test files are not evaluated. A repository module whose package
// is outside cfaccess. gets a warning: its rules would never run.
func New(ctx context.Context, builtin, repo []Module) (*Engine, desired.Diagnostics, error) {
	var mods []Module
	for _, m := range builtin {
		if !isTestFile(m.Path) {
			mods = append(mods, m)
		}
	}
	for _, m := range repo {
		if !isTestFile(m.Path) {
			mods = append(mods, m)
		}
	}
	// Parse errors do not stop the checks below: every problem is
	// reported at once.
	parsed, diags := parse(mods)
	for _, m := range repo {
		pm := parsed[m.Path]
		if pm == nil {
			continue
		}
		name := packageName(pm)
		pos := desired.Pos{File: m.Path, Line: pm.Package.Location.Row}
		switch {
		case name == "cfaccess":
			diags = append(diags, desired.Diagnostic{Pos: pos, Severity: desired.Error,
				Message: "package cfaccess: the root is reserved (its rules could reach into any package, cfaccess.builtin included); choose a name under it, such as cfaccess.local"})
			delete(parsed, m.Path)
		case name == "cfaccess.builtin" || strings.HasPrefix(name, "cfaccess.builtin."):
			diags = append(diags, desired.Diagnostic{Pos: pos, Severity: desired.Error,
				Message: fmt.Sprintf("package %s: cfaccess.builtin is reserved for the built-in guardrails; choose another name under cfaccess.", name)})
			delete(parsed, m.Path) // so that compiling the rest reports their errors too
		case reachesBuiltin(pm):
			// A rule head such as builtin.admin_expiry.read_only in a
			// package above cfaccess.builtin would extend a built-in.
			diags = append(diags, desired.Diagnostic{Pos: pos, Severity: desired.Error,
				Message: fmt.Sprintf("package %s: a rule defines a document under cfaccess.builtin, which is reserved for the built-in guardrails", name)})
			delete(parsed, m.Path)
		case !strings.HasPrefix(name, "cfaccess."):
			diags = append(diags, desired.Diagnostic{Pos: pos, Severity: desired.Warning,
				Message: fmt.Sprintf("package %s is not under cfaccess.: its deny and warn rules are never evaluated", name)})
		}
	}
	compiler := ast.NewCompiler().WithCapabilities(capabilities())
	if compiler.Compile(parsed); compiler.Failed() {
		diags = append(diags, astDiagnostics(compiler.Errors, "")...)
	}
	diags.Sort()
	if len(diags.Errors()) > 0 {
		return nil, diags, nil
	}
	e := &Engine{}
	for _, file := range slices.Sorted(maps.Keys(parsed)) {
		pm := compiler.Modules[file]
		name := packageName(pm)
		// Any package counts: a helper library outside cfaccess. may be
		// what reads input.live for a deny rule. The built-ins that read it
		// are evaluated on their own, on the live state alone.
		if strings.HasPrefix(file, builtinPrefix) && readsLive(pm) {
			e.liveBuiltins = append(e.liveBuiltins, name)
		} else {
			e.usesLive = e.usesLive || readsLive(pm)
		}
		if !strings.HasPrefix(name, "cfaccess.") {
			continue
		}
		info := e.pkg(name)
		info.timeless = (info.modules == 0 || info.timeless) && strings.HasPrefix(file, builtinPrefix) && timeless(pm)
		info.modules++
		for _, r := range pm.Rules {
			sev := Severity(r.Head.Name.String())
			if len(r.Head.Reference) > 0 {
				sev = Severity(r.Head.Reference[0].Value.String())
			}
			if sev != Deny && sev != Warn {
				continue
			}
			if _, ok := info.rulePos[sev]; !ok {
				info.rulePos[sev] = desired.Pos{File: file, Line: r.Location.Row}
			}
		}
	}
	q, err := rego.New(
		rego.Query("data.cfaccess"),
		rego.Compiler(compiler),
		rego.StrictBuiltinErrors(true),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, diags, fmt.Errorf("prepare guardrails: %w", err)
	}
	e.query = q
	for i := range e.packages {
		pkg := &e.packages[i]
		if pkg.query, err = rego.New(rego.Query("data."+pkg.name), rego.Compiler(compiler), rego.StrictBuiltinErrors(true)).PrepareForEval(ctx); err != nil {
			return nil, diags, fmt.Errorf("prepare guardrails: %w", err)
		}
	}
	return e, diags, nil
}

// EvalLiveBuiltins evaluates the built-in guardrails that read the live
// state, on an input holding only now, live and plan: the repository's
// part of the input need not be kept while the accounts are read.
func (e *Engine) EvalLiveBuiltins(ctx context.Context, now time.Time, accounts []LiveAccount) ([]Violation, error) {
	if !e.LiveBuiltins() {
		return nil, nil
	}
	doc := WithLive(&Document{obj: ast.NewObject(ast.Item(ast.StringTerm("now"), ast.StringTerm(now.UTC().Format(time.RFC3339))))}, accounts)
	return e.evalPackages(ctx, doc, func(p pkgInfo) bool { return slices.Contains(e.liveBuiltins, p.name) })
}

// packageName is a module's package without the "data." root:
// "cfaccess.builtin.reason".
func packageName(m *ast.Module) string {
	return strings.TrimPrefix(m.Package.Path.String(), "data.")
}

func (e *Engine) pkg(name string) *pkgInfo {
	for i := range e.packages {
		if e.packages[i].name == name {
			return &e.packages[i]
		}
	}
	e.packages = append(e.packages, pkgInfo{
		name:    name,
		path:    strings.Split(strings.TrimPrefix(name, "cfaccess."), "."),
		rulePos: map[Severity]desired.Pos{},
	})
	return &e.packages[len(e.packages)-1]
}

// Eval evaluates the guardrails against input (see Input) and returns the
// violations, denials first, each group sorted by source then message. An
// error evaluating any rule is an error: a guardrail that cannot be
// evaluated must not let a change through.
func (e *Engine) Eval(ctx context.Context, input *Document) ([]Violation, error) {
	root, err := evalObject(ctx, e.query, input)
	if err != nil {
		return nil, err
	}
	var out []Violation
	for _, p := range e.packages {
		out = append(out, e.mark(p, p.violations(root, p.path))...)
	}
	sortViolations(out)
	return out, nil
}

// evalObject evaluates a query whose value is an object (a package's
// document, or data.cfaccess) on input.
func evalObject(ctx context.Context, q rego.PreparedEvalQuery, input *Document) (map[string]any, error) {
	rs, err := q.Eval(ctx, rego.EvalParsedInput(input.obj))
	if err != nil {
		return nil, fmt.Errorf("evaluate guardrails: %w", err)
	}
	var doc map[string]any
	if len(rs) > 0 && len(rs[0].Expressions) > 0 {
		doc, _ = rs[0].Expressions[0].Value.(map[string]any)
	}
	return doc, nil
}

// EvalTimeless evaluates the guardrails that cannot change when only
// input.now does (built-ins that read neither the time nor the live
// state): on two inputs that differ in "now" alone, their violations are
// the same.
func (e *Engine) EvalTimeless(ctx context.Context, input *Document) ([]Violation, error) {
	return e.evalPackages(ctx, input, func(p pkgInfo) bool { return p.timeless })
}

// EvalTimely evaluates the other guardrails: with EvalTimeless's
// violations (Merge), those of Eval.
func (e *Engine) EvalTimely(ctx context.Context, input *Document) ([]Violation, error) {
	return e.evalPackages(ctx, input, func(p pkgInfo) bool { return !p.timeless })
}

// evalPackages evaluates the packages picked, one query each.
func (e *Engine) evalPackages(ctx context.Context, input *Document, pick func(pkgInfo) bool) ([]Violation, error) {
	var out []Violation
	for _, p := range e.packages {
		if !pick(p) {
			continue
		}
		doc, err := evalObject(ctx, p.query, input)
		if err != nil {
			return nil, err
		}
		out = append(out, e.mark(p, p.violations(doc, nil))...)
	}
	sortViolations(out)
	return out, nil
}

// mark flags the violations of a built-in guardrail on the live state.
func (e *Engine) mark(p pkgInfo, vs []Violation) []Violation {
	if slices.Contains(e.liveBuiltins, p.name) {
		for i := range vs {
			vs[i].Live = true
		}
	}
	return vs
}

// Merge returns the violations of two evaluations as one, in Eval's
// order.
func Merge(a, b []Violation) []Violation {
	out := append(slices.Clip(a), b...)
	sortViolations(out)
	return out
}

// violations reads the package's deny and warn sets at path under root.
func (p pkgInfo) violations(root map[string]any, path []string) []Violation {
	var node any = root
	for _, seg := range path {
		m, _ := node.(map[string]any)
		node = m[seg]
	}
	m, _ := node.(map[string]any)
	var out []Violation
	for _, sev := range []Severity{Deny, Warn} {
		out = append(out, elements(p, sev, m[string(sev)])...)
	}
	return out
}

// sortViolations puts denials first, each group by source then message.
func sortViolations(out []Violation) {
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Severity != b.Severity {
			return a.Severity == Deny
		}
		if a.Source.File != b.Source.File {
			return a.Source.File < b.Source.File
		}
		if a.Source.Line != b.Source.Line {
			return a.Source.Line < b.Source.Line
		}
		return a.Message < b.Message
	})
}

// elements reads a deny or warn value: a set (as a list) of strings or
// {msg, source} objects, or true. A malformed element still counts, with
// its JSON as the message: a deny must never vanish for its shape.
func elements(p pkgInfo, sev Severity, v any) []Violation {
	rulePos := p.rulePos[sev]
	one := func(msg string, src desired.Pos) Violation {
		return Violation{Severity: sev, Policy: p.name, Message: msg, Source: src}
	}
	switch v := v.(type) {
	case nil:
		return nil
	case bool:
		if v {
			return []Violation{one(string(sev)+" is true", rulePos)}
		}
		return nil
	case []any:
		out := make([]Violation, 0, len(v))
		for _, el := range v {
			switch el := el.(type) {
			case string:
				out = append(out, one(el, rulePos))
			case map[string]any:
				msg, ok := el["msg"].(string)
				if !ok {
					msg = jsonText(el)
				}
				src := rulePos
				if s, ok := el["source"].(string); ok && s != "" {
					src = desired.ParsePos(s)
				}
				out = append(out, one(msg, src))
			default:
				out = append(out, one(jsonText(el), rulePos))
			}
		}
		return out
	default:
		return []Violation{one(jsonText(v), rulePos)}
	}
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
