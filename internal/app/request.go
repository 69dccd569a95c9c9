package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/githost"
	"github.com/cfaccess/reconciler/internal/gitsource"
	"github.com/cfaccess/reconciler/internal/report"
	"github.com/cfaccess/reconciler/internal/request"
	"github.com/cfaccess/reconciler/internal/suggest"
)

// requestFlags are request's flags.
type requestFlags struct {
	repoFlags
	user, role, reason, provider string
	duration                     time.Duration
	notBefore                    string
	breakGlass, push, openPR     bool
	githubAPI, githubRepo        string
	gitlabURL, gitlabProject     string
}

func newRequest(env *Env) *cobra.Command {
	f := &requestFlags{}
	cmd := &cobra.Command{
		Use:   "request",
		Short: "Ask for just-in-time access: one grant, checked, committed on a branch of its own",
		Long: `Request adds one grant to the access repository checked out here (or
--repo DIR): the user, the role, the reason, and expires = its start (now,
or --not-before) + --for. It goes in the file and the style the repository
already uses, and is checked as validate checks (a duration over the role's
max_duration is refused). Nothing is written unless the result is valid.

It commits with your git (your identity, signing and hooks) on a new branch
named after the request, and switches back. Without --push it prints the
commit and leaves the branch local; --push pushes it to origin; --open-pr
pushes it and opens a pull request on GitHub (GITHUB_TOKEN; --github-api-url
for GitHub Enterprise), or a merge request on GitLab when origin is there
(GITLAB_TOKEN; --gitlab-url for a self-managed instance), and prints its URL.

--break-glass commits to the branch checked out (the one the daemon follows)
instead, for a role whose break_glass allows it, marked for review after
use; with --push the daemon applies it at its next reconcile.`,
		Example: `  reconciler request --user alice@example.com --role oncall-admin --for 4h \
    --reason "INC-4521 database failover" --open-pr
  reconciler request --user alice@example.com --role oncall-admin --for 30m \
    --reason "INC-4522 outage" --break-glass --push`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.run(cmd.Context(), env) },
	}
	f.repoFlags.register(cmd, env)
	fl := cmd.Flags()
	fl.StringVar(&f.user, "user", "", "the email of the person who needs access (required)")
	fl.StringVar(&f.role, "role", "", "the repository role to grant (required)")
	fl.DurationVar(&f.duration, "for", 0, "how long: 30m, 4h (required; at most the role's max_duration)")
	fl.StringVar(&f.reason, "reason", "", "why: a ticket or incident and a few words (required)")
	fl.StringVar(&f.provider, "provider", "", "the provider the role must apply to (a check)")
	fl.StringVar(&f.notBefore, "not-before", "", "start later (RFC 3339 or YYYY-MM-DD) instead of when applied")
	fl.BoolVar(&f.breakGlass, "break-glass", false, "commit to the followed branch for use before review (roles with break_glass only)")
	fl.BoolVar(&f.push, "push", false, "push the commit to origin")
	fl.BoolVar(&f.openPR, "open-pr", false, "push the branch and open a pull request (GitHub, GITHUB_TOKEN) or merge request (GitLab, GITLAB_TOKEN)")
	fl.StringVar(&f.githubAPI, "github-api-url", envOr(env, "GITHUB_API_URL", "https://api.github.com/"), "GitHub's REST API (GitHub Enterprise: https://HOST/api/v3/; env GITHUB_API_URL)")
	fl.StringVar(&f.githubRepo, "github-repo", "", "owner/name on GitHub (default: from origin's URL)")
	fl.StringVar(&f.gitlabURL, "gitlab-url", envOr(env, "GITLAB_URL", "https://gitlab.com"), "the GitLab instance, for a merge request when origin is on it or --gitlab-project is given (GITLAB_TOKEN; env GITLAB_URL)")
	fl.StringVar(&f.gitlabProject, "gitlab-project", "", "group/name on GitLab (default: from origin's URL)")
	return cmd
}

// flagProblems lists what is wrong with the flags, before anything is
// read.
func (f *requestFlags) flagProblems() error {
	var missing []string
	for name, v := range map[string]string{"--user": f.user, "--role": f.role, "--reason": strings.TrimSpace(f.reason)} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if f.duration <= 0 {
		missing = append(missing, "--for")
	}
	switch {
	case len(missing) > 0:
		slices.Sort(missing)
		return fmt.Errorf("request needs %s", strings.Join(missing, ", "))
	case gitsource.IsURL(f.repo):
		return fmt.Errorf("--repo %s: request works in a clone of the access repository; give its directory", gitsource.Redact(f.repo))
	case f.breakGlass && f.openPR:
		return errors.New("--break-glass commits to the followed branch, for use before review: no pull request (--open-pr) to open")
	}
	return nil
}

func (f *requestFlags) run(ctx context.Context, env *Env) error {
	if err := f.flagProblems(); err != nil {
		return err
	}
	now, err := f.instant(env)
	if err != nil {
		return err
	}
	g := request.Grant{Role: f.role, Reason: strings.TrimSpace(f.reason), BreakGlass: f.breakGlass}
	if g.User, err = desired.NormalizeEmail(f.user); err != nil {
		return fmt.Errorf("--user %q: %w", f.user, err)
	}
	start := now
	if f.notBefore != "" {
		if g.NotBefore, err = desired.ParseInstant(f.notBefore); err != nil {
			return fmt.Errorf("--not-before %q: want an RFC 3339 time or a date", f.notBefore)
		}
		start = g.NotBefore
	}
	g.Expires = start.Add(f.duration).Truncate(time.Second)
	src, diags, err := desired.ReadDir(f.repo, f.path)
	if err != nil {
		return err
	}
	repo, err := lookupRepo(src, diags, "")
	if err != nil {
		return err
	}
	if err := f.roleProblems(repo); err != nil {
		return err
	}
	edit, err := request.Add(src, repo, g)
	if err != nil {
		return err
	}
	// The repository as it would be, checked as validate checks it:
	// nothing is written unless it passes.
	c, err := check.Check(ctx, withEdit(src, edit), diags, now, f.checks(true))
	if err != nil {
		return err
	}
	if !c.Valid() || c.Denied() {
		fmt.Fprintf(env.Stderr, "the request is refused: the repository with it would not pass validate (nothing was written)\n")
		if err := report.Validate(env.Stdout, "text", c, reportOptions(env)); err != nil {
			return err
		}
		return checkedExit(c)
	}
	return f.commit(ctx, env, g, edit)
}

// roleProblems checks the role named: defined, enabled, for the provider
// given.
func (f *requestFlags) roleProblems(repo *desired.Repo) error {
	r, ok := repo.Roles[f.role]
	switch {
	case !ok:
		return fmt.Errorf("--role %q is not a role of the repository%s", f.role, suggest.Hint(f.role, slices.Sorted(maps.Keys(repo.Roles))))
	case !r.Enabled:
		return fmt.Errorf("--role %q is disabled (%s): it grants nothing", f.role, r.Pos)
	case f.provider != "" && !slices.Contains(r.Providers, f.provider):
		return fmt.Errorf("--role %q applies to %s, not to --provider %q", f.role, strings.Join(r.Providers, ", "), f.provider)
	}
	return nil
}

// withEdit is src with one file replaced or added.
func withEdit(src *desired.Source, e request.Edit) *desired.Source {
	out := *src
	out.YAML = slices.Clone(src.YAML)
	for i := range out.YAML {
		if out.YAML[i].Path == e.Path {
			out.YAML[i].Data = e.Data
			return &out
		}
	}
	out.YAML = append(out.YAML, desired.File{Path: e.Path, Data: e.Data})
	return &out
}

// commit commits the checked request, and pushes it and opens its pull
// request when asked.
func (f *requestFlags) commit(ctx context.Context, env *Env, g request.Grant, e request.Edit) error {
	git := request.Git{Dir: f.repo}
	if err := git.Clean(ctx); err != nil {
		return err
	}
	base, err := git.Branch(ctx)
	if err != nil {
		return err
	}
	title := fmt.Sprintf("Request %s for %s for %s", g.Role, g.User, f.duration)
	trailer := "Cfaccess-Request: " + g.User + " " + g.Role + " until " + g.Expires.UTC().Format(time.RFC3339)
	if g.BreakGlass {
		title = "Break-glass: " + g.Role + " for " + g.User + " for " + f.duration.String()
		trailer += "\nCfaccess-Break-Glass: applied before review; review it after use"
	}
	// The reason on one line: its text cannot add trailers of its own.
	reason := strings.Join(strings.Fields(g.Reason), " ")
	message := title + "\n\n" + reason + "\n\n" + trailer + "\n"
	branch := ""
	if !g.BreakGlass {
		branch = requestBranch(g, env.Now())
	}
	if err := git.Commit(ctx, e, branch, message); err != nil {
		return err
	}
	target := cmp.Or(branch, base)
	fmt.Fprintf(env.Stdout, "requested: %s as %s until %s (%s:%d), committed on %s\n", g.User, g.Role, g.Expires.UTC().Format(time.RFC3339), e.Path, e.Line, target)
	if branch != "" {
		defer func() { _ = git.Switch(ctx, base) }()
	}
	if !f.push && !f.openPR {
		show, err := git.Show(ctx, target)
		if err != nil {
			return err
		}
		fmt.Fprint(env.Stdout, show)
		fmt.Fprintf(env.Stdout, "\nnot pushed: git push origin %s (or run with --push / --open-pr)\n", target)
		return nil
	}
	if err := git.Push(ctx, target); err != nil {
		return fmt.Errorf("the commit is on %s, but pushing it failed: %w", target, err)
	}
	fmt.Fprintf(env.Stdout, "pushed %s to origin\n", target)
	if !f.openPR {
		return nil
	}
	body := g.Reason + "\n\n" + trailer + "\n\nOpened by `reconciler request`; it validates."
	url, err := f.openRequest(ctx, env, git.Origin(ctx), branch, base, title, body)
	if err != nil {
		return fmt.Errorf("pushed %s, but: %w", target, err)
	}
	fmt.Fprintf(env.Stdout, "opened: %s\n", url)
	return nil
}

// openRequest opens the pull request (GitHub) or merge request (GitLab)
// of head into base, on the host origin is on, and returns its URL.
func (f *requestFlags) openRequest(ctx context.Context, env *Env, origin, head, base, title, body string) (string, error) {
	gitlabHost := githost.Host(f.gitlabURL)
	if project := cmp.Or(f.gitlabProject, githost.ProjectFromRemote(origin, gitlabHost)); project != "" && f.githubRepo == "" {
		gl := githost.GitLab{BaseURL: f.gitlabURL, Token: env.Getenv("GITLAB_TOKEN"), HTTPClient: gitHostClient(env)}
		return gl.OpenMergeRequest(ctx, project, head, base, title, body)
	}
	repo := cmp.Or(f.githubRepo, githost.RepoFromRemote(origin, githost.Host(f.githubAPI)))
	if repo == "" {
		return "", fmt.Errorf("origin is on neither %s nor %s: give --github-repo owner/name or --gitlab-project group/name", githost.Host(f.githubAPI), gitlabHost)
	}
	gh := githost.GitHub{APIURL: f.githubAPI, Token: env.Getenv("GITHUB_TOKEN"), HTTPClient: gitHostClient(env)}
	return gh.OpenPullRequest(ctx, repo, head, base, title, body)
}

var branchUnsafe = regexp.MustCompile(`[^a-z0-9]+`)

// requestBranch names a request's branch: access/<user>-<role>-<time>.
func requestBranch(g request.Grant, now time.Time) string {
	local, _, _ := strings.Cut(g.User, "@")
	clean := func(s string) string {
		return strings.Trim(branchUnsafe.ReplaceAllString(strings.ToLower(s), "-"), "-")
	}
	return "access/" + clean(local) + "-" + clean(g.Role) + "-" + now.UTC().Format("20060102-150405")
}

// gitHostClient carries requests to the Git host's API.
func gitHostClient(*Env) *http.Client { return &http.Client{Timeout: 30 * time.Second} }
