package reconcile

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/cfaccess/reconciler/internal/cfroles"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/policy"
	"github.com/cfaccess/reconciler/policies"
)

// CheckOptions tune Check.
type CheckOptions struct {
	Now time.Time
	// RunTests runs the repository's policy tests.
	RunTests bool
	// PolicyTimeout bounds the policy tests and the guardrails'
	// evaluation (DefaultPolicyTimeout when 0).
	PolicyTimeout time.Duration
	// AllowUnknownRoles makes an unknown Cloudflare role name a warning.
	AllowUnknownRoles bool
	// AllowUnicodeEmails accepts emails outside ASCII.
	AllowUnicodeEmails bool
}

// DefaultPolicyTimeout bounds guardrail evaluation: a rule that loops (or
// starts looping after a date) refuses its revision instead of freezing
// the daemon.
const DefaultPolicyTimeout = 10 * time.Second

// MaxBindings bounds the bindings a repository may make (members ×
// Cloudflare roles × resources): a million is twenty times the largest
// account measured, and about 500 MB of guardrail input.
const MaxBindings = 1_000_000

// Checked is an access repository loaded and checked by the guardrails.
type Checked struct {
	Repo       *desired.Repo // nil when Diags has errors
	Files      int
	Diags      desired.Diagnostics
	Violations []policy.Violation
	Tests      []policy.TestResult
	// engine and input let plan and apply evaluate the guardrails again
	// with the live accounts and plans added, at now.
	engine *policy.Engine
	input  *policy.Document
	now    time.Time
}

// Valid reports whether the repository loaded without errors and its
// policy tests passed.
func (c *Checked) Valid() bool {
	if len(c.Diags.Errors()) > 0 {
		return false
	}
	for _, t := range c.Tests {
		if !t.Passed {
			return false
		}
	}
	return true
}

// Denied reports whether any guardrail on the repository denied.
func (c *Checked) Denied() bool {
	for _, v := range c.Violations {
		if v.Severity == policy.Deny && !v.Live {
			return true
		}
	}
	return false
}

// LiveDenied reports whether a built-in guardrail on the live state denied
// (Super Administrator through a user group, say): the plan's grants are
// then held back, while what it takes away is applied — a state outside
// the repository must not stop revocations, expiries included.
func (c *Checked) LiveDenied() bool {
	for _, v := range c.Violations {
		if v.Severity == policy.Deny && v.Live {
			return true
		}
	}
	return false
}

// Load loads declaration files with the options Check uses (the role
// catalogue, strict names, email rules, the bindings bound), for commands
// that need the repository without its guardrails.
func Load(files []desired.File, opts CheckOptions) (*desired.Repo, desired.Diagnostics) {
	return desired.Load(files, desired.Options{Roles: cfroles.Catalogue{}, StrictRoles: !opts.AllowUnknownRoles,
		UnicodeEmails: opts.AllowUnicodeEmails, MaxBindings: MaxBindings})
}

// Check loads the repository from src, compiles its guardrails, runs its
// policy tests when asked, and evaluates the guardrails at opts.Now,
// within opts.PolicyTimeout: guardrails that fail or run out of time make
// the repository invalid (a finding), not an error. The error is for a
// repository that cannot be checked at all.
func Check(ctx context.Context, src *desired.Source, readDiags desired.Diagnostics, opts CheckOptions) (*Checked, error) {
	if opts.PolicyTimeout <= 0 {
		opts.PolicyTimeout = DefaultPolicyTimeout
	}
	c := &Checked{Files: len(src.YAML), Diags: readDiags}
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
	pctx, cancel := context.WithTimeout(ctx, opts.PolicyTimeout)
	defer cancel()
	if opts.RunTests && engine != nil && len(src.Rego) > 0 {
		tests, tdiags, err := policy.Test(pctx, src.Rego)
		if err != nil {
			c.Diags = append(c.Diags, policyFailure(pctx, opts.PolicyTimeout, "the repository's policy tests", err))
			return c, nil
		}
		c.Tests = tests
		c.Diags = append(c.Diags, tdiags...)
	}
	if repo == nil || engine == nil || len(readDiags.Errors()) > 0 {
		return c, nil
	}
	c.Repo, c.engine, c.now = repo, engine, opts.Now
	c.input = policy.Input(repo, opts.Now)
	collectAfterInput()
	c.Violations, err = engine.Eval(pctx, c.input)
	if err != nil {
		c.Diags = append(c.Diags, policyFailure(pctx, opts.PolicyTimeout, "the guardrails", err))
		c.ReleaseInput()
	}
	return c, nil
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

// UsesLive reports whether a guardrail reads input.live or input.plan: only
// then do they run again once the accounts are read.
func (c *Checked) UsesLive() bool { return c.engine != nil && c.engine.UsesLive() }

// EvalLive evaluates the guardrails on the live accounts and their plans:
// all of them again, with the live state added to the input, when one of
// the repository's reads it (the input is freed after); otherwise only the
// built-in ones on the live state, on an input of that state alone.
func (c *Checked) EvalLive(ctx context.Context, live []policy.LiveAccount) error {
	switch {
	case c.engine == nil:
		return nil
	case c.UsesLive():
		if c.input == nil {
			return nil
		}
		policy.AddLive(c.input, live)
		vs, err := c.engine.Eval(ctx, c.input)
		c.ReleaseInput()
		if err != nil {
			return err
		}
		c.Violations = vs
	case c.engine.LiveBuiltins():
		vs, err := c.engine.EvalLiveBuiltins(ctx, c.now, live)
		if err != nil {
			return err
		}
		c.Violations = append(vs, c.Violations...)
	}
	return nil
}

// collectAfterInput collects once the guardrails' input is built, before
// it is evaluated. Building the input leaves garbage as large as a third
// of it, and the collector's next goal is set from what was live at its
// last run — mid-build, garbage included — so evaluation's own garbage
// could otherwise take the heap to about 1.7 times the input (measured at
// 50,000 members: 141 MB of heap for 82 MB live). Collected here, the goal
// comes from the input alone. A local step, measured (about 25 ms at
// 50,000 members), not a process setting.
func collectAfterInput() { runtime.GC() }

// ReleaseInput frees the guardrails' input once they will not run again.
//
// The input is this program's largest allocation (at 50,000 members,
// 100,000 OPA objects near 80 MB), and OPA's pooled evaluation state
// (sync.Pool) keeps the last input reachable until two collections have
// passed. Collecting twice here — a local, measured choice, not a process
// setting — frees it before the accounts are read instead of while they are
// (85 MB live before, 13 MB after, about 30 ms per collection). The heap's
// ceiling otherwise comes from GOMEMLIMIT, which the Deployment sets from
// the container's memory limit.
func (c *Checked) ReleaseInput() {
	if c.input == nil {
		return
	}
	c.input = nil
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
