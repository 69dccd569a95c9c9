package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cfaccess/reconciler/internal/report"
)

// Exit codes, the same for every command (SPEC §4).
const (
	ExitOK      = 0 // success, nothing to change
	ExitError   = 1 // error, or invalid declarations
	ExitChanges = 2 // changes pending (plan --detailed-exitcode)
	ExitDenied  = 3 // a guardrail denied
)

// exitCode ends a command with an exit code other than 0 and 1, or with
// 1 when the output already said everything (any other error exits 1 with
// its message).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

// Env is what the program gets from its process: arguments (without the
// program name), environment, standard streams and the clock.
type Env struct {
	Args   []string
	Getenv func(string) string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Now    func() time.Time
	// Transport carries the requests to Cloudflare (nil: the network);
	// tests reach the fake in-process through it.
	Transport http.RoundTripper
	// KubeTransport carries the requests to the Kubernetes API (run
	// --leader-elect; nil: the kubeconfig's or the pod's).
	KubeTransport http.RoundTripper
}

// Run runs the program and returns its exit code.
func Run(ctx context.Context, env Env) int {
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	if env.Now == nil {
		env.Now = time.Now
	}
	root := newRoot(&env)
	root.SetArgs(terraformArgs(env.Args))
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var code exitCode
	if errors.As(err, &code) {
		return int(code)
	}
	fmt.Fprintf(env.Stderr, "reconciler: %v\n", err)
	return ExitError
}

func newRoot(env *Env) *cobra.Command {
	root := &cobra.Command{
		Use:   "reconciler",
		Short: "Keep Cloudflare account members equal to what a Git repository declares",
		Long: `reconciler keeps the members of Cloudflare accounts equal to what an access
repository declares: YAML roles, groups and grants, checked by OPA guardrails.

Exit codes: 0 success, 1 error or invalid declarations, 2 changes pending
(plan --detailed-exitcode), 3 denied by a guardrail.`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.AddCommand(
		newValidate(env),
		newRequest(env),
		newSandbox(env),
		newDoctor(env),
		newPlan(env),
		newApply(env),
		newRun(env),
		newDemo(env),
		newImport(env),
		newReport(env),
		newRoles(env),
		newMembers(env),
		newReview(env),
		newSchema(env),
		newStatus(env),
		newVersion(env),
	)
	addOutputAliases(root)
	return root
}

// terraformArgs accepts Terraform's single-dash -out (plan -out FILE),
// which would otherwise read as -o ut.
func terraformArgs(args []string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		if a == "--" {
			break
		}
		// (not as the value of --out or -o: "--out -out" names a file)
		if i > 0 && slices.Contains([]string{"--out", "-out", "-o", "--output", "--format"}, args[i-1]) {
			continue
		}
		if a == "-out" || strings.HasPrefix(a, "-out=") {
			out[i] = "-" + a
		}
	}
	return out
}

// addOutputAliases gives every command with --format the alias
// --output/-o (kubectl's and helm's spelling), sharing its value.
func addOutputAliases(cmd *cobra.Command) {
	if f := cmd.Flags().Lookup("format"); f != nil && cmd.Flags().Lookup("output") == nil && cmd.Flags().ShorthandLookup("o") == nil {
		cmd.Flags().AddFlag(&pflag.Flag{Name: "output", Shorthand: "o", Usage: "alias of --format", Value: f.Value, DefValue: f.DefValue})
	}
	for _, c := range cmd.Commands() {
		addOutputAliases(c)
	}
}

// Set at build time with -ldflags "-X ...app.buildVersion=v1.2.3 -X
// ...app.buildRevision=<sha>" (deploy/Dockerfile does); otherwise the Go
// build information is used.
var buildVersion, buildRevision string

// version returns the version and VCS revision the binary was built from,
// as far as the build recorded them.
func version() (version, revision string) {
	version, revision = "(devel)", "unknown"
	defer func() {
		if buildVersion != "" {
			version = buildVersion
		}
		if buildRevision != "" {
			revision = buildRevision
		}
	}()
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version, revision
	}
	if info.Main.Version != "" {
		version = info.Main.Version
	}
	dirty := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && revision != "unknown" {
		revision += "-dirty"
	}
	return version, revision
}

func newVersion(env *Env) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version and the VCS revision of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, rev := version()
			switch format {
			case "json":
				return report.WriteJSON(env.Stdout, map[string]string{"version": v, "revision": rev, "go": runtime.Version()})
			case "text":
				fmt.Fprintf(env.Stdout, "reconciler %s (revision %s, %s)\n", v, rev, runtime.Version())
				return nil
			}
			return report.CheckFormat(format, []string{"text", "json"})
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	return cmd
}
