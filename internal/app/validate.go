package app

import (
	"github.com/spf13/cobra"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/report"
)

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
			if err := report.CheckFormat(format, report.ValidateFormats); err != nil {
				return err
			}
			c, _, _, err := rf.check(cmd.Context(), env, true)
			if err != nil {
				return err
			}
			if err := report.Validate(env.Stdout, format, c, reportOptions(env)); err != nil {
				return err
			}
			return checkedExit(c)
		},
	}
	rf.register(cmd, env)
	cmd.Flags().StringVar(&format, "format", "text", "output format: text, json, sarif or codequality (GitLab Code Quality)")
	return cmd
}

// checkedExit is the exit of a checked repository (SPEC §4): 1 invalid, 3
// denied.
func checkedExit(c *check.Checked) error {
	switch {
	case !c.Valid():
		return exitCode(ExitError)
	case c.Denied():
		return exitCode(ExitDenied)
	}
	return nil
}

// reportOptions are the renderers' options for env's standard output.
func reportOptions(env *Env) report.Options {
	v, _ := version()
	return report.Options{Color: isTerminal(env.Stdout, env), Version: v}
}
