package app

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cfaccess/reconciler/internal/reconcile"
	"github.com/cfaccess/reconciler/internal/report"
)

// planFlags are the flags plan, apply and run share.
type planFlags struct {
	repoFlags
	cloudflareFlags
	provider         string
	format           string
	allowMassRemoval bool
	reinviteAfter    time.Duration
	stateFile        string
	attribution      time.Duration
	// writesUntil fences the writes (run --leader-elect).
	writesUntil func() time.Time
	maxSize     int
}

func (f *planFlags) register(cmd *cobra.Command, env *Env) {
	f.repoFlags.register(cmd, env)
	cmd.Flags().StringVar(&f.provider, "provider", envOr(env, "CFACCESS_PROVIDER", ""), "reconcile only this provider (account) id (env CFACCESS_PROVIDER)")
	cmd.Flags().StringVar(&f.format, "format", "text", "output format: text, json, markdown or sarif")
	cmd.Flags().IntVar(&f.maxSize, "max-size", report.DefaultMaxSize, "longest markdown plan, in characters: a longer one keeps its summary and risky changes, collapses the rest and cuts what does not fit, pointing at the JSON (0: no limit)")
	f.cloudflareFlags.register(cmd, env)
	cmd.Flags().StringVar(&f.stateFile, "state-file", envOr(env, "CFACCESS_STATE_FILE", ""), "file remembering since when invitations are pending, where the audit log cannot say (env CFACCESS_STATE_FILE)")
	cmd.Flags().DurationVar(&f.reinviteAfter, "reinvite-after", 72*time.Hour, "re-send an invitation pending longer than this, by its \"Add Member\" entry in the audit log or --state-file (0 never)")
	cmd.Flags().DurationVar(&f.attribution, "attribution-window", reconcile.DefaultAttributionWindow, "how far back the audit log is read to name who made the drift a plan corrects (0: not read)")
}

// renderOptions are the renderers' options, with --max-size.
func (f *planFlags) renderOptions(env *Env) report.Options {
	opts := reportOptions(env)
	opts.MaxSize = max(f.maxSize, 0)
	return opts
}

// options are the plan options these flags give.
func (f *planFlags) options() reconcile.PlanOptions {
	return reconcile.PlanOptions{Provider: f.provider, AllowMassRemoval: f.allowMassRemoval, ReinviteAfter: f.reinviteAfter}
}

// planner returns the planner, with the state of --state-file. observe,
// when set, is told of every Cloudflare request.
func (f *planFlags) planner(env *Env, observe func(method, endpoint, code string, d time.Duration)) (*reconcile.Planner, error) {
	clients, err := f.cloudflareFlags.clients(env)
	if err != nil {
		return nil, err
	}
	clients.Observe, clients.WritesUntil = observe, f.writesUntil
	// In memory without --state-file: filled from the audit log.
	state := reconcile.NewState(env.Now)
	if f.stateFile != "" {
		if state, err = reconcile.LoadState(f.stateFile, env.Now); err != nil {
			return nil, err
		}
	}
	p := reconcile.NewPlanner(clients, state)
	p.AttributionWindow = max(f.attribution, 0)
	return p, nil
}

// plan reads, checks and plans every selected account. Nothing is
// written.
func (f *planFlags) plan(ctx context.Context, env *Env) (*reconcile.Outcome, *reconcile.Planner, time.Time, error) {
	if err := report.CheckFormat(f.format, report.PlanFormats); err != nil {
		return nil, nil, time.Time{}, err
	}
	p, err := f.planner(env, nil)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	c, rev, now, err := f.check(ctx, env, false)
	if err != nil {
		return nil, nil, now, err
	}
	o, err := p.Plan(ctx, c, rev, now, f.options())
	return o, p, now, err
}

// outcomeExit turns an outcome into the exit code of SPEC §4.
func outcomeExit(o *reconcile.Outcome, detailed bool) error {
	if err := checkedExit(o.Checked); err != nil {
		return err
	}
	switch {
	case o.Checked.LiveDenied():
		return exitCode(ExitDenied)
	case o.Failed(), o.FailedChanges() > 0, o.Refused() > 0:
		return exitCode(ExitError)
	case detailed && !o.Applied && o.Changes() > 0:
		return exitCode(ExitChanges)
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
		out      string
	)
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show the changes that would make the accounts equal to the repository",
		Long: `Plan loads and checks the repository, reads each account, and shows what
apply would change: removals, updates and invites, in that order. Guardrails
run again with the live accounts and the plan in their input. Plan never
writes to Cloudflare.

With --out FILE (or -out FILE) the plan is also saved, for apply FILE to
apply exactly it once reviewed.

Exit codes: 0 nothing to change (or changes, without --detailed-exitcode),
1 error, 2 changes pending (with --detailed-exitcode), 3 denied by a guardrail.`,
		Example: `  reconciler plan --repo . --format markdown > plan.md
  reconciler plan --repo https://github.com/example/access.git --ref main --detailed-exitcode
  reconciler plan --repo . --out cfaccess.plan && reconciler apply --repo . cfaccess.plan`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, _, now, err := f.plan(cmd.Context(), env)
			if err != nil {
				return err
			}
			if err := report.Plan(env.Stdout, f.format, o, f.renderOptions(env)); err != nil {
				return err
			}
			if out != "" {
				if !o.Checked.Valid() || o.Checked.Denied() || o.Checked.LiveDenied() {
					// No plan to review: nor an older one left to apply.
					_ = os.Remove(out)
					fmt.Fprintf(env.Stderr, "reconciler: --out %s: not saved: the repository is invalid or denied\n", out)
				} else {
					sp, err := report.Save(o, f.provider, now)
					if err != nil {
						return fmt.Errorf("--out %s: %w", out, err)
					}
					if err := sp.WriteFile(out); err != nil {
						return fmt.Errorf("--out: %w", err)
					}
				}
			}
			return outcomeExit(o, detailed)
		},
	}
	f.register(cmd, env)
	cmd.Flags().BoolVar(&detailed, "detailed-exitcode", false, "exit 2 when there are changes")
	cmd.Flags().StringVar(&out, "out", "", "save the plan to this file, for apply FILE (Terraform's -out)")
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
member that is not protected, is refused unless --allow-mass-removal.

apply FILE applies a plan saved by plan --out FILE: it plans again at the
same revision and applies only when the accounts and the changes are still
the ones saved; otherwise it writes nothing, says what changed, and exits 1.`,
		Example: `  CF_TOKEN_PROD=... reconciler apply --repo . --provider cloudflare-prod
  reconciler apply --repo . cfaccess.plan`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var saved *report.SavedPlan
			if len(args) == 1 {
				var err error
				if saved, err = report.ReadSavedPlan(args[0]); err != nil {
					return err
				}
				// The plan's own scope: apply FILE plans what plan --out did.
				switch {
				case f.provider == "":
					f.provider = saved.Provider
				case f.provider != saved.Provider:
					return fmt.Errorf("%s was planned for %s; apply it with the same --provider", args[0], cmp.Or(saved.Provider, "every provider (no --provider)"))
				}
			}
			o, p, _, err := f.plan(ctx, env)
			if err != nil {
				return err
			}
			if saved != nil {
				if diffs := saved.Differences(o); len(diffs) > 0 {
					fmt.Fprintf(env.Stderr, "reconciler: the saved plan %s no longer applies; nothing was written. What changed:\n", args[0])
					for _, d := range diffs {
						fmt.Fprintf(env.Stderr, "  %s\n", report.Visible(d))
					}
					fmt.Fprintln(env.Stderr, "Plan again (plan --out) and review the new plan.")
					return exitCode(ExitError)
				}
			}
			if !o.Failed() {
				p.Apply(ctx, o, nil)
			}
			if o.Applied && f.stateFile != "" {
				if err := p.SaveState(f.stateFile, env.Now()); err != nil {
					return err
				}
			}
			if err := report.Plan(env.Stdout, f.format, o, f.renderOptions(env)); err != nil {
				return err
			}
			return outcomeExit(o, false)
		},
	}
	f.register(cmd, env)
	cmd.Flags().BoolVar(&f.allowMassRemoval, "allow-mass-removal", false, "apply even a plan that removes more than max_removals, or every member")
	return cmd
}
