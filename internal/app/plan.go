package app

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/diff"
	"github.com/cfaccess/reconciler/internal/gitsource"
	"github.com/cfaccess/reconciler/internal/policy"
	"github.com/cfaccess/reconciler/internal/reconcile"
)

// planFlags are the flags plan and apply share.
type planFlags struct {
	repoFlags
	provider string
	format   string
	cloudflareFlags
	allowMassRemoval bool
	reinviteAfter    time.Duration
	stateFile        string
	pending          *pendingState
	// limiters are shared by the clients of the same credentials, across
	// reconciles (Cloudflare's budget is per user).
	limiters map[string]*cloudflare.Limiter
	// owners remembers each token's user, read once.
	owners map[string]string
	// protectedIDs remembers, per account, the ids of members seen
	// protected: an email that changes or disappears cannot unprotect
	// them.
	protectedIDs map[string]map[string]bool
}

// limiter returns the limiter of creds, made on first use.
func (f *planFlags) limiter(creds cloudflare.Credentials) *cloudflare.Limiter {
	if f.limiters == nil {
		f.limiters = map[string]*cloudflare.Limiter{}
	}
	l, ok := f.limiters[creds.Key()]
	if !ok {
		l = cloudflare.NewLimiter(f.rateLimit, 5*time.Minute)
		f.limiters[creds.Key()] = l
	}
	return l
}

func (f *planFlags) register(cmd *cobra.Command, env *Env) {
	f.repoFlags.register(cmd, env)
	cmd.Flags().StringVar(&f.provider, "provider", envOr(env, "CFACCESS_PROVIDER", ""), "reconcile only this provider (account) id (env CFACCESS_PROVIDER)")
	cmd.Flags().StringVar(&f.format, "format", "text", "output format: text, json, markdown or sarif")
	f.cloudflareFlags.register(cmd, env)
	cmd.Flags().StringVar(&f.stateFile, "state-file", envOr(env, "CFACCESS_STATE_FILE", ""), "file remembering since when invitations are pending, for --reinvite-after (env CFACCESS_STATE_FILE)")
	cmd.Flags().DurationVar(&f.reinviteAfter, "reinvite-after", 72*time.Hour, "re-send an invitation pending longer than this (needs --state-file; 0 never)")
}

// outcome is a plan run: the checked repository, the revision, and each
// account's plan, with guardrails evaluated against the live accounts.
type outcome struct {
	c        *checked
	revision gitsource.Revision
	accounts []*reconcile.AccountPlan
	// results are the applied changes per account (apply only).
	results map[string][]reconcile.Result
	applied bool
}

// changes counts the planned changes of every account.
func (o *outcome) changes() int {
	n := 0
	for _, ap := range o.accounts {
		if ap.Plan != nil {
			n += len(ap.Plan.Changes)
		}
	}
	return n
}

// failedChanges counts the applied changes that failed.
func (o *outcome) failedChanges() int {
	n := 0
	for _, rs := range o.results {
		for _, r := range rs {
			if r.Err != nil {
				n++
			}
		}
	}
	return n
}

// failed reports whether an account could not be planned.
func (o *outcome) failed() bool {
	for _, ap := range o.accounts {
		if ap.Err != nil {
			return true
		}
	}
	return false
}

// plan runs the read-and-plan pipeline shared by plan and apply. Nothing is
// written. The error is for a repository that cannot be read at all.
func (f *planFlags) plan(ctx context.Context, env *Env) (*outcome, error) {
	now, err := f.instant(env)
	if err != nil {
		return nil, err
	}
	if !slices.Contains([]string{"text", "json", "markdown", "sarif"}, f.format) {
		return nil, fmt.Errorf("--format %q: choose text, json, markdown or sarif", f.format)
	}
	if err := f.cloudflareFlags.check(); err != nil {
		return nil, err
	}
	src, readDiags, rev, cleanup, err := f.read(ctx)
	defer cleanup()
	if err != nil {
		return nil, err
	}
	c, err := check(ctx, src, readDiags, f.checkOptions(now, false))
	if err != nil {
		return nil, err
	}
	return f.planChecked(ctx, env, c, rev, now, nil)
}

// planChecked plans every selected account of a checked repository and
// evaluates the guardrails again with the live accounts and plans.
// observe, when set, receives every Cloudflare request (metrics).
func (f *planFlags) planChecked(ctx context.Context, env *Env, c *checked, rev gitsource.Revision, now time.Time, observe func(method, endpoint, code string, d time.Duration)) (*outcome, error) {
	o := &outcome{c: c, revision: rev}
	if !c.valid() || c.denied() {
		return o, nil
	}
	var ids []string
	for id, pv := range c.repo.Providers {
		if pv.Enabled && (f.provider == "" || f.provider == id) {
			ids = append(ids, id)
		}
	}
	if f.provider != "" && len(ids) == 0 {
		if _, exists := c.repo.Providers[f.provider]; exists {
			return nil, fmt.Errorf("--provider %q is disabled (enabled: false)", f.provider)
		}
		return nil, fmt.Errorf("--provider %q is not defined in the repository", f.provider)
	}
	slices.Sort(ids)
	if !c.engine.UsesLive() {
		// The guardrails will not run again: free their input before the
		// accounts are read (the two together are most of a large plan's
		// memory).
		c.releaseInput()
	}
	ropts := reconcile.Options{AllowMassRemoval: f.allowMassRemoval}
	if f.pending == nil && f.stateFile != "" && f.reinviteAfter > 0 {
		var err error
		if f.pending, err = loadPending(f.stateFile); err != nil {
			return nil, err
		}
	}
	if f.pending != nil && f.reinviteAfter > 0 {
		ropts.Reinvite = func(accountID string, l diff.Live) bool { return f.pending.due(accountID, l, now, f.reinviteAfter) }
	}
	var live []policy.LiveAccount
	for _, id := range ids {
		pv := c.repo.Providers[id]
		// Credentials are looked up for every plan, so a rotated token
		// file is picked up without a restart.
		creds, err := cloudflare.FindCredentials(env.Getenv, pv.APITokenEnv, f.tokenFile)
		if err != nil {
			o.accounts = append(o.accounts, &reconcile.AccountPlan{Provider: id, AccountID: pv.AccountID, Err: err})
			continue
		}
		client := cloudflare.New(cloudflare.Config{BaseURL: f.apiURL, Credentials: creds, Limiter: f.limiter(creds), HTTPClient: f.httpClient(),
			MaxRetries: retriesConfig(f.retries), Observe: observe})
		aopts := ropts
		aopts.Owner, aopts.OwnerKnown = f.owners[creds.Key()]
		aopts.ProtectedIDs = f.protectedIDs[pv.AccountID]
		ap := reconcile.Plan(ctx, client, c.repo, id, now, aopts)
		if len(ap.ProtectedIDs) > 0 {
			if f.protectedIDs == nil {
				f.protectedIDs = map[string]map[string]bool{}
			}
			if f.protectedIDs[pv.AccountID] == nil {
				f.protectedIDs[pv.AccountID] = map[string]bool{}
			}
			for _, mid := range ap.ProtectedIDs {
				f.protectedIDs[pv.AccountID][mid] = true
			}
		}
		if ap.Plan != nil { // the owner was read
			if f.owners == nil {
				f.owners = map[string]string{}
			}
			f.owners[creds.Key()] = ap.Owner
		}
		o.accounts = append(o.accounts, ap)
		if ap.Live != nil && ap.Plan != nil {
			live = append(live, liveAccount(ap))
		}
	}
	// The guardrails again, now seeing the live accounts and the plans:
	// nothing is written before they pass. (Skipped when no rule reads
	// input.live or input.plan: the result could not differ.)
	if c.engine.UsesLive() {
		policy.AddLive(c.input, live)
		var err error
		if c.violations, err = c.engine.Eval(ctx, c.input); err != nil {
			return nil, err
		}
		c.releaseInput()
	}
	return o, nil
}

// recordPending updates --state-file after an apply: members seen pending
// keep their first-seen time; those just (re)invited start now.
func (f *planFlags) recordPending(o *outcome, now time.Time) error {
	if f.stateFile == "" {
		return nil
	}
	st := f.pending
	if st == nil {
		var err error
		if st, err = loadPending(f.stateFile); err != nil {
			return err
		}
	}
	for _, ap := range o.accounts {
		st.observe(ap.Live, now)
		for _, r := range o.results[ap.Provider] {
			if r.Err == nil && (r.Change.Action == diff.Invite || r.Change.Action == diff.Reinvite) {
				st.Pending[ap.AccountID][r.Change.Email] = now
			}
		}
	}
	return st.save(f.stateFile)
}

// liveAccount is what guardrails see of an account.
func liveAccount(ap *reconcile.AccountPlan) policy.LiveAccount {
	la := policy.LiveAccount{Provider: ap.Provider}
	display := func(as []desiredAccess) []desiredAccess {
		out := make([]desiredAccess, len(as))
		for i, a := range as {
			out[i] = desiredAccess{Role: a.Role, Resource: ap.Live.Display(a.Resource)}
		}
		return out
	}
	for _, m := range ap.Live.Members {
		la.Members = append(la.Members, policy.LiveMember{Email: m.Email, Status: m.Status, TwoFactor: m.TwoFactor, Access: display(m.Access)})
	}
	for _, c := range ap.Plan.Changes {
		la.Changes = append(la.Changes, policy.PlanChange{Action: string(c.Action), Email: c.Email, Add: display(c.Add), Remove: display(c.Remove)})
	}
	return la
}

// exit turns an outcome into the exit code of SPEC §4.
func (o *outcome) exit(detailed bool) error {
	switch {
	case !o.c.valid():
		return &exitError{code: ExitError}
	case o.c.denied():
		return &exitError{code: ExitDenied}
	case o.failed(), o.failedChanges() > 0:
		return &exitError{code: ExitError}
	}
	if detailed && !o.applied && o.changes() > 0 {
		return &exitError{code: ExitChanges}
	}
	return nil
}

// isTerminal reports whether w is a terminal, for colour.
func isTerminal(w io.Writer, env *Env) bool {
	if env.Getenv("NO_COLOR") != "" {
		return false
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func newPlan(env *Env) *cobra.Command {
	var (
		f        planFlags
		detailed bool
	)
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show the changes that would make the accounts equal to the repository",
		Long: `Plan loads and checks the repository, reads each account, and shows what
apply would change: removals, updates and invites, in that order. Guardrails
run again with the live accounts and the plan in their input. Plan never
writes to Cloudflare.

Exit codes: 0 nothing to change (or changes, without --detailed-exitcode),
1 error, 2 changes pending (with --detailed-exitcode), 3 denied by a guardrail.`,
		Example: `  reconciler plan --repo . --format markdown > plan.md
  reconciler plan --repo https://github.com/example/access.git --ref main --detailed-exitcode`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := f.plan(cmd.Context(), env)
			if err != nil {
				return &exitError{ExitError, err}
			}
			if err := renderPlan(env.Stdout, f.format, o, isTerminal(env.Stdout, env)); err != nil {
				return &exitError{ExitError, err}
			}
			return o.exit(detailed)
		},
	}
	f.register(cmd, env)
	cmd.Flags().BoolVar(&detailed, "detailed-exitcode", false, "exit 2 when there are changes")
	return cmd
}

func newApply(env *Env) *cobra.Command {
	var f planFlags
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Make the accounts equal to the repository",
		Long: `Apply plans as plan does, then applies each account's changes: removals,
updates, invites. Nothing is written when the repository is invalid, a
guardrail denies, or any account could not be read or planned. One failed
change does not stop the others; the run then exits 1. Re-running after a
crash converges without inviting anyone twice.

A plan removing more members than the provider's max_removals, or every
member that is not protected, is refused unless --allow-mass-removal.`,
		Example: `  CF_TOKEN_PROD=... reconciler apply --repo . --provider cloudflare-prod`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			o, err := f.plan(ctx, env)
			if err != nil {
				return &exitError{ExitError, err}
			}
			if o.c.valid() && !o.c.denied() && !o.failed() {
				o.applied = true
				o.results = map[string][]reconcile.Result{}
				for _, ap := range o.accounts {
					o.results[ap.Provider] = reconcile.Apply(ctx, ap.Client, ap, nil)
				}
				if err := f.recordPending(o, env.Now()); err != nil {
					return &exitError{ExitError, err}
				}
			}
			if err := renderPlan(env.Stdout, f.format, o, isTerminal(env.Stdout, env)); err != nil {
				return &exitError{ExitError, err}
			}
			return o.exit(false)
		},
	}
	f.register(cmd, env)
	cmd.Flags().BoolVar(&f.allowMassRemoval, "allow-mass-removal", false, "apply even a plan that removes more than max_removals, or every member")
	return cmd
}

// desiredAccess shortens the type name in this file.
type desiredAccess = desired.Access
