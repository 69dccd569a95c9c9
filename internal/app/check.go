package app

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/cfaccess/reconciler/internal/cfroles"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/policy"
	"github.com/cfaccess/reconciler/policies"
)

// checked is an access repository loaded and checked by the guardrails.
type checked struct {
	repo       *desired.Repo // nil when diags has errors
	files      int
	diags      desired.Diagnostics
	violations []policy.Violation
	tests      []policy.TestResult
	// engine and input let plan and apply evaluate the guardrails again
	// with the live accounts and plans added.
	engine *policy.Engine
	input  ast.Object
}

// valid reports whether the repository loaded without errors and its
// policy tests passed.
func (c *checked) valid() bool {
	if len(c.diags.Errors()) > 0 {
		return false
	}
	for _, t := range c.tests {
		if !t.Passed {
			return false
		}
	}
	return true
}

// denied reports whether any guardrail denied.
func (c *checked) denied() bool {
	for _, v := range c.violations {
		if v.Severity == policy.Deny {
			return true
		}
	}
	return false
}

// checkOptions tune check.
type checkOptions struct {
	now time.Time
	// runTests runs the repository's policy tests.
	runTests bool
	// policyTimeout bounds the policy tests and the guardrails' evaluation
	// (DefaultPolicyTimeout when 0).
	policyTimeout time.Duration
	// allowUnknownRoles makes an unknown Cloudflare role name a warning.
	allowUnknownRoles bool
	// allowUnicodeEmails accepts emails outside ASCII.
	allowUnicodeEmails bool
}

// DefaultPolicyTimeout bounds guardrail evaluation: a rule that loops (or
// starts looping after a date) refuses its revision instead of freezing
// the daemon.
const DefaultPolicyTimeout = 10 * time.Second

// MaxBindings bounds the bindings a repository may make (members ×
// Cloudflare roles × resources): a million is twenty times the largest
// account measured, and about 500 MB of guardrail input.
const MaxBindings = 1_000_000

// check reads the repository from src, loads it, compiles its guardrails,
// runs its policy tests when asked, and evaluates the guardrails at
// opts.now, within opts.policyTimeout: guardrails that fail or run out of
// time make the repository invalid (a finding), not an error. The error is
// for a repository that cannot be read at all.
func check(ctx context.Context, src *desired.Source, readDiags desired.Diagnostics, opts checkOptions) (*checked, error) {
	if opts.policyTimeout <= 0 {
		opts.policyTimeout = DefaultPolicyTimeout
	}
	now := opts.now
	c := &checked{files: len(src.YAML), diags: readDiags}
	if len(src.YAML) == 0 && len(readDiags) == 0 {
		// An empty tree is almost always a wrong --repo or --path; read as
		// "nobody has access" it would be a dangerous default.
		c.diags = append(c.diags, desired.Diagnostic{Pos: desired.Pos{File: src.Root}, Severity: desired.Error,
			Message: "no declaration files (*.yaml, *.yml) found: check --repo and --path"})
	}
	repo, diags := desired.Load(src.YAML, desired.Options{Roles: cfroles.Catalogue{}, StrictRoles: !opts.allowUnknownRoles,
		UnicodeEmails: opts.allowUnicodeEmails, MaxBindings: MaxBindings})
	c.diags = append(c.diags, diags...)
	builtin, err := policy.BuiltinModules(policies.FS, false)
	if err != nil {
		return nil, fmt.Errorf("load built-in guardrails: %w", err)
	}
	engine, pdiags, err := policy.New(ctx, builtin, src.Rego)
	if err != nil {
		return nil, err
	}
	c.diags = append(c.diags, pdiags...)
	pctx, cancel := context.WithTimeout(ctx, opts.policyTimeout)
	defer cancel()
	if opts.runTests && engine != nil && len(src.Rego) > 0 {
		tests, tdiags, err := policy.Test(pctx, src.Rego)
		if err != nil {
			c.diags = append(c.diags, policyFailure(pctx, opts.policyTimeout, "the repository's policy tests", err))
			return c, nil
		}
		c.tests = tests
		c.diags = append(c.diags, tdiags...)
	}
	if repo == nil || engine == nil || len(readDiags.Errors()) > 0 {
		return c, nil
	}
	c.repo, c.engine = repo, engine
	defer tightGC()()
	c.input = policy.Input(repo, now)
	c.violations, err = engine.Eval(pctx, c.input)
	if err != nil {
		c.diags = append(c.diags, policyFailure(pctx, opts.policyTimeout, "the guardrails", err))
		c.releaseInput()
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

// The guardrails' input document is this program's largest heap: at 50,000
// members, 100,000 OPA objects (grants and bindings) near 80 MB. With Go's
// default GOGC=100 the heap may grow to twice what is live before a
// collection, so peak memory would be about twice the input.
const checkGCPercent = 25

var gcTight struct {
	sync.Mutex
	users, prev int
}

// tightGC lowers GOGC to checkGCPercent (never raises it) while the
// guardrails' input is built and evaluated, so the heap stays near what is
// live; the returned function restores it when the last user is done.
func tightGC() (restore func()) {
	gcTight.Lock()
	defer gcTight.Unlock()
	if gcTight.users == 0 {
		gcTight.prev = debug.SetGCPercent(checkGCPercent)
		if gcTight.prev >= 0 && gcTight.prev < checkGCPercent {
			debug.SetGCPercent(gcTight.prev)
		}
	}
	gcTight.users++
	return func() {
		gcTight.Lock()
		defer gcTight.Unlock()
		if gcTight.users--; gcTight.users == 0 {
			debug.SetGCPercent(gcTight.prev)
		}
	}
}

// releaseInput frees the guardrails' input once they will not run again.
// OPA's pooled evaluation state (sync.Pool) keeps the last input reachable
// until two collections have passed; collecting twice here frees it before
// the accounts are read instead of while they are (measured at 50,000
// members: 85 MB live before, 13 MB after, about 30 ms per collection).
func (c *checked) releaseInput() {
	if c.input == nil {
		return
	}
	c.input = nil
	runtime.GC()
	runtime.GC()
}
