package app

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/gitsource"
)

// repoFlags are the flags that locate and time an access repository.
type repoFlags struct {
	repo               string
	ref                string
	path               string
	now                string
	policyTimeout      time.Duration
	allowUnknownRoles  bool
	allowUnicodeEmails bool
}

func (f *repoFlags) register(cmd *cobra.Command, env *Env) {
	cmd.Flags().StringVar(&f.repo, "repo", envOr(env, "CFACCESS_REPO", "."), "access repository: a local directory, or a Git URL (https, ssh, file) cloned shallow (env CFACCESS_REPO)")
	cmd.Flags().StringVar(&f.ref, "ref", envOr(env, "CFACCESS_REF", ""), "branch or tag to clone when --repo is a URL (default: the remote's default branch; env CFACCESS_REF)")
	cmd.Flags().StringVar(&f.path, "path", envOr(env, "CFACCESS_PATH", ""), "subdirectory of the repository holding the declarations (env CFACCESS_PATH)")
	cmd.Flags().StringVar(&f.now, "now", "", "evaluate as of this instant (RFC 3339 or YYYY-MM-DD) instead of the current time")
	f.registerChecks(cmd)
}

// registerChecks registers the flags of how a repository is checked.
func (f *repoFlags) registerChecks(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&f.policyTimeout, "policy-timeout", DefaultPolicyTimeout, "the longest the repository's policy tests and the guardrails may take; longer refuses the revision")
	cmd.Flags().BoolVar(&f.allowUnicodeEmails, "allow-unicode-emails", false, "accept emails with characters outside ASCII (never invisible or direction-changing ones); plans flag those that could pass for another address")
	cmd.Flags().BoolVar(&f.allowUnknownRoles, "allow-unknown-roles", false, "accept Cloudflare role names this release does not know (roles Cloudflare added since), with a warning; the account still decides at plan time")
}

// checkOptions are the options of check these flags give.
func (f *repoFlags) checkOptions(now time.Time, runTests bool) checkOptions {
	return checkOptions{now: now, runTests: runTests, policyTimeout: f.policyTimeout, allowUnknownRoles: f.allowUnknownRoles, allowUnicodeEmails: f.allowUnicodeEmails}
}

// instant returns --now, or the current time.
func (f *repoFlags) instant(env *Env) (time.Time, error) {
	if f.now == "" {
		return env.Now().UTC(), nil
	}
	t, err := desired.ParseInstant(f.now)
	if err != nil {
		return time.Time{}, fmt.Errorf("--now %q: want an RFC 3339 time (2026-12-24T18:00:00Z) or a date (2026-12-24)", f.now)
	}
	return t, nil
}

// read reads the repository: a local directory, or a Git URL cloned
// (shallow, --ref) into a temporary directory that cleanup removes.
func (f *repoFlags) read(ctx context.Context) (src *desired.Source, diags desired.Diagnostics, rev gitsource.Revision, cleanup func(), err error) {
	cleanup = func() {}
	dir := f.repo
	if gitsource.IsURL(f.repo) {
		tmp, err := os.MkdirTemp("", "cfaccess-repo-")
		if err != nil {
			return nil, nil, rev, cleanup, err
		}
		cleanup = func() { os.RemoveAll(tmp) }
		rev, err = gitsource.Clone(ctx, f.repo, f.ref, tmp, nil)
		if err != nil {
			return nil, nil, rev, cleanup, err
		}
		dir = tmp
	} else if f.ref != "" {
		return nil, nil, rev, cleanup, fmt.Errorf("--ref %q needs --repo to be a Git URL; check the revision out in %s instead", f.ref, f.repo)
	} else {
		rev, _ = gitsource.Head(dir)
	}
	src, diags, err = desired.ReadDir(dir, f.path)
	return src, diags, rev, cleanup, err
}

func envOr(env *Env, key, def string) string {
	if v := env.Getenv(key); v != "" {
		return v
	}
	return def
}

func newValidate(env *Env) *cobra.Command {
	var (
		rf     repoFlags
		format string
	)
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check the declarations and the guardrails, offline",
		Long: `Validate loads every declaration of the access repository, reports each
problem at its file and line, runs the repository's own policy tests
(policies/*_test.rego), and evaluates the guardrails (built-in and
policies/*.rego). It needs no credentials, and makes no network call when --repo is a
directory (a Git URL is cloned first).

Exit codes: 0 valid (warnings are printed), 1 invalid, 3 denied by a guardrail.`,
		Example: `  reconciler validate --repo ./access
  reconciler validate --format sarif > cfaccess.sarif`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			render, ok := validateRenderers[format]
			if !ok {
				return &exitError{ExitError, fmt.Errorf("--format %q: choose text, json or sarif", format)}
			}
			now, err := rf.instant(env)
			if err != nil {
				return &exitError{ExitError, err}
			}
			src, readDiags, _, cleanup, err := rf.read(cmd.Context())
			defer cleanup()
			if err != nil {
				return &exitError{ExitError, err}
			}
			c, err := check(cmd.Context(), src, readDiags, rf.checkOptions(now, true))
			if err != nil {
				return &exitError{ExitError, err}
			}
			if err := render(env.Stdout, c); err != nil {
				return &exitError{ExitError, err}
			}
			switch {
			case !c.valid():
				return &exitError{code: ExitError}
			case c.denied():
				return &exitError{code: ExitDenied}
			}
			return nil
		},
	}
	rf.register(cmd, env)
	cmd.Flags().StringVar(&format, "format", "text", "output format: text, json or sarif")
	return cmd
}
