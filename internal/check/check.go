package check

import (
	"cmp"
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/cfaccess/reconciler/internal/cfroles"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/policy"
	"github.com/cfaccess/reconciler/policies"
)

// Options tune Compile.
type Options struct {
	// RunTests runs the repository's policy tests.
	RunTests bool
	// PolicyTimeout bounds the policy tests and each evaluation of the
	// guardrails (DefaultPolicyTimeout when 0).
	PolicyTimeout time.Duration
	// AllowUnknownRoles makes an unknown Cloudflare role name a warning.
	AllowUnknownRoles bool
	// AllowUnicodeEmails accepts emails outside ASCII.
	AllowUnicodeEmails bool
	// Reuse keeps a repository's guardrail input between evaluations (the
	// daemon, evaluating one revision again and again: Compiled.At), for
	// repositories of fewer than largeInput grants. Otherwise the input is
	// built for each evaluation and freed after it: a command that
	// evaluates once keeps its peak memory to the input or the accounts'
	// read, not both.
	Reuse bool
}

// DefaultPolicyTimeout bounds guardrail evaluation: a rule that loops (or
// starts looping after a date) refuses its revision instead of freezing
// the daemon.
const DefaultPolicyTimeout = 10 * time.Second

// maxBindings bounds the bindings a repository may make (members ×
// Cloudflare roles × resources): a million is twenty times the largest
// account measured, and about 500 MB of guardrail input.
const maxBindings = 1_000_000

// Load loads declaration files with the options Compile uses (the role
// catalogue, strict names, email rules, the bindings bound), for commands
// that need the repository without its guardrails.
func Load(files []desired.File, opts Options) (*desired.Repo, desired.Diagnostics) {
	return desired.Load(files, desired.Options{Roles: cfroles.Catalogue{}, StrictRoles: !opts.AllowUnknownRoles,
		UnicodeEmails: opts.AllowUnicodeEmails, MaxBindings: maxBindings})
}

// Compiled is a revision's repository loaded, its guardrails compiled and
// its policy tests run: what does not depend on the time, made once per
// revision. Only its memo of the guardrails' input changes after Compile.
type Compiled struct {
	Repo  *desired.Repo // nil when Diags has errors
	Files int
	Diags desired.Diagnostics
	Tests []policy.TestResult

	guardrails *policy.Engine
	timeout    time.Duration
	reuse      bool

	// memo is the last guardrail input built and its timeless
	// violations, reused while the grants' activity is the same (small
	// repositories only: largeInput).
	mu   sync.Mutex
	memo *inputMemo
}

// inputMemo is a guardrail input built at from, good until the next
// instant a grant starts or expires (zero: none), with the violations of
// the guardrails that read neither the time nor the live state
// (policy.Engine.EvalTimeless) on it.
type inputMemo struct {
	doc         *policy.Document
	from, until time.Time
	timeless    []policy.Violation
}

func (m *inputMemo) holds(now time.Time) bool {
	return m != nil && !now.Before(m.from) && (m.until.IsZero() || now.Before(m.until))
}

// eval evaluates the guardrails on the repository at now. Only "now" and
// the grants' activity change with the time, and the activity only at a
// grant's not_before or expires: between two such instants the input
// built last is reused with now set, and only the guardrails that read the
// time are evaluated again (a daemon's steady reconcile then costs those
// alone). A large repository's input is built and evaluated anew each
// time instead of held between reconciles: its memory is worth more
// (releaseInput); so is every input when not asked to reuse it
// (Options.Reuse).
func (c *Compiled) eval(ctx context.Context, now time.Time) ([]policy.Violation, error) {
	if !c.reuses() {
		input := policy.Input(c.Repo, now)
		collectAfterInput()
		defer releaseInput()
		return c.guardrails.Eval(ctx, input)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.memo.holds(now) {
		doc := policy.Input(c.Repo, now)
		timeless, err := c.guardrails.EvalTimeless(ctx, doc)
		if err != nil {
			return nil, err
		}
		c.memo = &inputMemo{doc: doc, from: now, until: c.Repo.NextChange(now), timeless: timeless}
	}
	timely, err := c.guardrails.EvalTimely(ctx, policy.WithNow(c.memo.doc, now))
	if err != nil {
		return nil, err
	}
	return policy.Merge(c.memo.timeless, timely), nil
}

// reuses reports whether the guardrails' input is kept between
// evaluations (Options.Reuse, below largeInput).
func (c *Compiled) reuses() bool { return c.reuse && len(c.Repo.Grants) < largeInput }

// input is the guardrails' input at now: the memo's when it holds.
func (c *Compiled) input(now time.Time) *policy.Document {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.memo.holds(now) {
		return policy.WithNow(c.memo.doc, now)
	}
	return policy.Input(c.Repo, now)
}

// Compile loads the repository from src, compiles its guardrails, and
// runs its policy tests when asked. Problems of the repository are
// diagnostics (Valid); the error is for one that cannot be checked at all.
func Compile(ctx context.Context, src *desired.Source, readDiags desired.Diagnostics, opts Options) (*Compiled, error) {
	if opts.PolicyTimeout <= 0 {
		opts.PolicyTimeout = DefaultPolicyTimeout
	}
	c := &Compiled{Files: len(src.YAML), Diags: slices.Clone(readDiags), timeout: opts.PolicyTimeout, reuse: opts.Reuse}
	if len(src.YAML) == 0 && len(readDiags) == 0 {
		// An empty tree is almost always a wrong --repo or --path; read as
		// "nobody has access" it would be a dangerous default.
		c.Diags = append(c.Diags, desired.Diagnostic{Pos: desired.Pos{File: src.Root}, Severity: desired.Error,
			Message: "no declaration files (*.yaml, *.yml) found: check --repo and --path"})
	}
	repo, diags := Load(src.YAML, opts)
	c.Diags = append(c.Diags, diags...)
	builtin, err := policy.BuiltinModules(policies.FS, false)
	if err != nil {
		return nil, fmt.Errorf("load built-in guardrails: %w", err)
	}
	engine, pdiags, err := policy.New(ctx, builtin, src.Rego)
	if err != nil {
		return nil, err
	}
	c.Diags = append(c.Diags, pdiags...)
	if opts.RunTests && engine != nil && len(src.Rego) > 0 {
		tctx, cancel := context.WithTimeout(ctx, opts.PolicyTimeout)
		defer cancel()
		tests, tdiags, err := policy.Test(tctx, src.Rego)
		if err != nil {
			c.Diags = append(c.Diags, policyFailure(tctx, opts.PolicyTimeout, "the repository's policy tests", err))
			return c, nil
		}
		c.Tests = tests
		c.Diags = append(c.Diags, tdiags...)
	}
	if repo != nil && engine != nil && len(readDiags.Errors()) == 0 {
		c.Repo, c.guardrails = repo, engine
	}
	return c, nil
}

// Valid reports whether the repository loaded without errors and its
// policy tests passed.
func (c *Compiled) Valid() bool { return valid(c.Diags, c.Tests) }

func valid(diags desired.Diagnostics, tests []policy.TestResult) bool {
	return len(diags.Errors()) == 0 && !slices.ContainsFunc(tests, func(t policy.TestResult) bool { return !t.Passed })
}

// At evaluates the guardrails on the repository at now, within the
// policy timeout: guardrails that fail or run out of time make the result
// invalid (a finding), not an error.
func (c *Compiled) At(ctx context.Context, now time.Time) *Checked {
	ch := &Checked{Repo: c.Repo, Files: c.Files, Diags: c.Diags, Tests: c.Tests, Now: now, compiled: c, timeout: c.timeout}
	if c.Repo == nil {
		return ch
	}
	// How long limited grants last depends on the time: checked here.
	if limits := c.Repo.LimitDiagnostics(now); len(limits) > 0 {
		ch.Diags = append(slices.Clip(ch.Diags), limits...)
	}
	pctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	vs, err := c.eval(pctx, now)
	if err != nil {
		ch.Diags = append(slices.Clip(ch.Diags), policyFailure(pctx, c.timeout, "the guardrails", err))
	}
	ch.Violations = vs
	return ch
}

// Check is Compile, then At now: a repository checked once (validate,
// plan, apply).
func Check(ctx context.Context, src *desired.Source, readDiags desired.Diagnostics, now time.Time, opts Options) (*Checked, error) {
	c, err := Compile(ctx, src, readDiags, opts)
	if err != nil {
		return nil, err
	}
	return c.At(ctx, now), nil
}

// Checked is a compiled repository with its guardrails evaluated at Now.
type Checked struct {
	Repo  *desired.Repo // nil when Diags has errors
	Files int
	// Diags are the compiled repository's diagnostics and the
	// evaluation's own (guardrails that failed or ran out of time).
	Diags      desired.Diagnostics
	Tests      []policy.TestResult
	Now        time.Time
	Violations []policy.Violation

	compiled *Compiled // nil for a Checked made by hand
	timeout  time.Duration
}

// Valid reports whether the repository loaded without errors, its policy
// tests passed and its guardrails could be evaluated.
func (c *Checked) Valid() bool { return valid(c.Diags, c.Tests) }

// Denied reports whether any guardrail on the repository denied.
func (c *Checked) Denied() bool { return denied(c.Violations, false) }

// LiveDenied reports whether a built-in guardrail on the live state denied
// (Super Administrator through a user group, say): a plan's grants are
// then held back, while what it takes away is applied — a state outside
// the repository must not stop revocations, expiries included.
func (c *Checked) LiveDenied() bool { return denied(c.Violations, true) }

// WithViolations is c with other violations (evaluated again with the
// live accounts: EvalLive); c itself is not changed.
func (c *Checked) WithViolations(vs []policy.Violation) *Checked {
	out := *c
	out.Violations = vs
	return &out
}

// Findings lists everything to report, in reading order: diagnostics and
// failed policy tests, then violations (denials first).
func (c *Checked) Findings() []Finding {
	var out []Finding
	for _, d := range c.Diags {
		out = append(out, Finding{Source: d.Pos.String(), Severity: d.Severity.String(), Message: d.Message})
	}
	for _, t := range c.Tests {
		if !t.Passed {
			out = append(out, Finding{Source: t.Pos.String(), Severity: "error", Message: fmt.Sprintf("policy test %s %s", t.Name, t.Message)})
		}
	}
	for _, v := range c.Violations {
		out = append(out, Finding{Source: v.Source.String(), Severity: string(v.Severity), Message: v.Message, Policy: v.Policy})
	}
	return out
}

// EvalLive evaluates the guardrails again with the live accounts and their
// plans, and returns every violation: all the guardrails on an input with
// the live state added, when one of the repository's reads it; otherwise
// the built-in ones on the live state alone (on an input of that state
// only), with the repository's violations. c is not changed.
func (c *Checked) EvalLive(ctx context.Context, live []policy.LiveAccount) ([]policy.Violation, error) {
	if c.compiled == nil || c.compiled.guardrails == nil {
		return c.Violations, nil
	}
	g := c.compiled.guardrails
	pctx, cancel := context.WithTimeout(ctx, cmp.Or(c.timeout, DefaultPolicyTimeout))
	defer cancel()
	switch {
	case g.UsesLive():
		// A large repository's input is built again rather than kept: it
		// is the largest allocation, not worth holding while accounts are
		// read.
		input := policy.WithLive(c.compiled.input(c.Now), live)
		if !c.compiled.reuses() {
			collectAfterInput()
			defer releaseInput()
		}
		return g.Eval(pctx, input)
	case g.LiveBuiltins():
		vs, err := g.EvalLiveBuiltins(pctx, c.Now, live)
		if err != nil {
			return nil, err
		}
		return append(vs, c.Violations...), nil
	}
	return c.Violations, nil
}

func denied(vs []policy.Violation, live bool) bool {
	return slices.ContainsFunc(vs, func(v policy.Violation) bool { return v.Severity == policy.Deny && v.Live == live })
}

// policyFailure is the finding for guardrails that failed or ran out of
// time: the repository is refused (and the daemon keeps the last good
// revision).
func policyFailure(ctx context.Context, timeout time.Duration, what string, err error) desired.Diagnostic {
	msg := fmt.Sprintf("%s could not be evaluated: %v", what, err)
	if ctx.Err() != nil {
		msg = fmt.Sprintf("%s did not finish within --policy-timeout %v: a rule that loops, or grows without end (perhaps only after a date)? This revision is refused", what, timeout)
	}
	return desired.Diagnostic{Pos: desired.Pos{File: "policies"}, Severity: desired.Error, Message: msg}
}

// largeInput is the size of repository, in grants, from which the
// guardrails' input is worth a collection of its own (below, the
// collections cost more than the memory they save: at 2,000 members, three
// forced collections were a third of a steady reconcile's CPU).
const largeInput = 5_000

// collectAfterInput collects once a large repository's guardrail input is
// built, before it is evaluated. Building the input leaves garbage as
// large as a third of it, and the collector's next goal is set from what
// was live at its last run — mid-build, garbage included — so evaluation's
// own garbage could otherwise take the heap to about 1.7 times the input
// (measured at 50,000 members: 141 MB of heap for 82 MB live). Collected
// here, the goal comes from the input alone. A local step, measured (about
// 25 ms at 50,000 members), not a process setting.
func collectAfterInput() { runtime.GC() }

// releaseInput frees a large repository's guardrail input once evaluated.
//
// The input is this program's largest allocation (at 50,000 members,
// 100,000 OPA objects near 80 MB), and OPA's pooled evaluation state
// (sync.Pool) keeps the last input reachable until two collections have
// passed. Collecting twice here — a local, measured choice, not a process
// setting — frees it before the accounts are read instead of while they are
// (85 MB live before, 13 MB after, about 30 ms per collection). The heap's
// ceiling otherwise comes from GOMEMLIMIT, which the Deployment sets from
// the container's memory limit.
func releaseInput() {
	runtime.GC()
	runtime.GC()
}

// Finding is a diagnostic, a failed policy test or a violation, flattened
// for output.
type Finding struct {
	Source   string `json:"source"`
	Severity string `json:"severity"` // error, warning, deny, warn
	Message  string `json:"message"`
	Policy   string `json:"policy,omitempty"`
}

// Count tallies findings by how they block: errors, warnings, denials.
func Count(fs []Finding) (errs, warns, denies int) {
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
