package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/spf13/cobra"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/gitsource"
	"github.com/cfaccess/reconciler/internal/report"
	"github.com/cfaccess/reconciler/internal/review"
)

// reviewFlags are the flags of review.
type reviewFlags struct {
	repoFlags
	cloudflareFlags
	provider string
	format   string
	window   string
	maxPages int
}

func (f *reviewFlags) register(cmd *cobra.Command, env *Env) {
	f.repoFlags.register(cmd, env)
	cmd.Flags().StringVar(&f.provider, "provider", envOr(env, "CFACCESS_PROVIDER", ""), "review only this provider (account) id (env CFACCESS_PROVIDER)")
	cmd.Flags().StringVar(&f.format, "format", "markdown", "output format: markdown, csv or json")
	cmd.Flags().StringVar(&f.window, "activity-window", "90d", "how far back the audit log is searched for each member's last activity (days, such as 90d, or a duration, such as 720h)")
	cmd.Flags().IntVar(&f.maxPages, "activity-max-pages", 10, "read at most this many pages of the audit log (1,000 entries each) per account; more leaves the last activity unknown")
	f.cloudflareFlags.register(cmd, env)
}

// activityWindow reads --activity-window.
func (f *reviewFlags) activityWindow() (time.Duration, error) {
	bad := fmt.Errorf("--activity-window %q: give a number of days (90d) or a positive duration (720h)", f.window)
	if days, ok := strings.CutSuffix(f.window, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return 0, bad
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(f.window)
	if err != nil || d <= 0 {
		return 0, bad
	}
	return d, nil
}

func newReview(env *Env) *cobra.Command {
	var f reviewFlags
	cmd := &cobra.Command{
		Use:   "review",
		Short: "List who has what in each account, from which grant, for an access review",
		Long: `Review loads and checks the repository, reads each account (or only
--provider) and its audit log, and lists every member: status, 2FA, and each
access (role on resource, held directly or through a user group) with the
grants behind it — file:line, reason, when it was added (from Git history),
expiry, review_after and whether its review is overdue — or "not in Git"
when no active grant gives it; and the member's last activity in the audit
log within --activity-window. Review never writes to Cloudflare.

The audit log needs Account Settings Read; without it the review says that
last activity is unknown rather than failing. See docs/review.md for the
attestation flow: a scheduled pull request that reviewers approve.

Exit codes: 0 success, 1 invalid repository or an account that could not be
read (the others are still listed), 3 denied by a guardrail (the review is
still written).`,
		Example: `  reconciler review --repo . --format markdown > reviews/2026-Q4.md
  reconciler review --provider cloudflare-prod --format csv --activity-window 30d`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd.Context(), env)
		},
	}
	f.register(cmd, env)
	return cmd
}

func (f *reviewFlags) run(ctx context.Context, env *Env) error {
	if err := report.CheckFormat(f.format, report.ReviewFormats); err != nil {
		return err
	}
	window, err := f.activityWindow()
	if err != nil {
		return err
	}
	if f.maxPages < 1 {
		return fmt.Errorf("--activity-max-pages %d: give at least 1", f.maxPages)
	}
	clients, err := f.cloudflareFlags.clients(env)
	if err != nil {
		return err
	}
	now, err := f.instant(env)
	if err != nil {
		return err
	}
	src, diags, rev, cleanup, err := f.read(ctx)
	defer cleanup()
	if err != nil {
		return err
	}
	c, err := check.Check(ctx, src, diags, now, f.checks(false))
	if err != nil {
		return err
	}
	if !c.Valid() {
		if err := report.Validate(env.Stderr, "text", c, report.Options{}); err != nil {
			return err
		}
		return exitCode(ExitError)
	}
	ids, err := c.Repo.EnabledProviders(f.provider)
	if err != nil {
		return err
	}
	in := review.Input{Checked: c, Revision: rev, Now: now, Window: window}
	if gitsource.IsURL(f.repo) {
		in.AgesUnknown = "--repo is a URL, cloned without history: review a local checkout for grant ages"
	} else if ages, why := newGitAges(f.repo, src); ages != nil {
		in.Added = ages.added
	} else {
		in.AgesUnknown = why
	}
	// The audit log is asked up to now, never past it: --now may look
	// ahead to see which reviews will be due.
	before := now
	if wall := env.Now().UTC(); wall.Before(before) {
		before = wall
	}
	failed := false
	for _, id := range ids {
		pv := c.Repo.Providers[id]
		ra := review.Account{Provider: id, AccountID: pv.AccountID, Protected: pv.Protected}
		ra.Live, ra.Activity, ra.Err = readForReview(ctx, clients, pv, before.Add(-window), before, f.maxPages)
		failed = failed || ra.Err != nil
		in.Accounts = append(in.Accounts, ra)
	}
	if err := report.Review(env.Stdout, f.format, review.New(in)); err != nil {
		return err
	}
	if err := checkedExit(c); err != nil {
		return err
	}
	if failed {
		return exitCode(ExitError)
	}
	return nil
}

// readForReview reads one account, every zone named, and its members'
// last activity in [since, before). Only reads: nothing is written.
func readForReview(ctx context.Context, clients *cloudflare.Clients, pv *desired.Provider, since, before time.Time, maxPages int) (*cloudflare.Account, review.Activity, error) {
	activity := review.Activity{Since: since, Before: before}
	client, _, err := clients.For(pv.APITokenEnv, "", nil)
	if err != nil {
		return nil, activity, err
	}
	live, err := client.ReadAccount(ctx, pv.AccountID, cloudflare.ReadOptions{AllZones: true, OrganizationID: pv.OrganizationID})
	if err != nil {
		return nil, activity, err
	}
	res, err := client.AuditLog(ctx, pv.AccountID, cloudflare.AuditQuery{Since: since, Before: before, MaxPages: maxPages, All: true})
	var id cloudflare.Identity
	if err == nil {
		// The changes made with these credentials (cfaccess's, as a rule)
		// are not their owner's activity.
		if id, err = client.Identity(ctx, pv.AccountID); err == nil && !id.Known() {
			err = errors.New("the token's id is unknown")
		}
		if err != nil {
			err = fmt.Errorf("changes made with this token cannot be told from its owner's: %w", err)
		}
	}
	var ae *cloudflare.APIError
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusForbidden:
		activity.NotReadable = true
		activity.Unknown = "audit log not readable with this token (needs Account Settings Read): last activity unknown"
	case err != nil:
		activity.Unknown = "last activity unknown: " + err.Error()
	case res.Truncated:
		activity.Unknown = fmt.Sprintf("last activity unknown: the audit log holds more than %d entries (or %d MiB) in the window; raise --activity-max-pages or shorten --activity-window",
			maxPages*1000, cloudflare.DefaultAuditMaxBytes>>20)
	default:
		activity.Last = review.LastActions(res.Entries, id)
	}
	return live, activity, nil
}

// gitAges dates grants from the history of the Git repository holding
// the declarations: the commit that last changed a grant's first line
// (git blame at HEAD), one blame per file, on demand. A line that differs
// in the working tree (an uncommitted change) has no date.
type gitAges struct {
	head *object.Commit
	// prefix is the declarations' root inside the Git repository
	// (slash-separated, "" at its root).
	prefix string
	// lines are the declaration files as read, by path.
	lines  map[string][]string
	blamed map[string]*git.BlameResult // nil: the file could not be blamed
}

// newGitAges opens the Git repository holding dir; nil, with why, when
// there is none or its history is cut (a shallow clone).
func newGitAges(dir string, src *desired.Source) (*gitAges, string) {
	r, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return nil, "the repository is not a Git checkout"
	}
	if shallow, err := r.Storer.Shallow(); err != nil || len(shallow) > 0 {
		return nil, "the Git checkout is shallow (git fetch --unshallow gives the history)"
	}
	ref, err := r.Head()
	if err != nil {
		return nil, "the Git checkout has no commit"
	}
	head, err := r.CommitObject(ref.Hash())
	if err != nil {
		return nil, "the Git checkout's HEAD cannot be read"
	}
	wt, err := r.Worktree()
	if err != nil {
		return nil, "the Git repository has no working tree"
	}
	root, err1 := filepath.EvalSymlinks(wt.Filesystem.Root())
	abs, err2 := filepath.Abs(dir)
	if err2 == nil {
		abs, err2 = filepath.EvalSymlinks(abs)
	}
	rel, err3 := filepath.Rel(root, abs)
	if err := errors.Join(err1, err2, err3); err != nil || strings.HasPrefix(rel, "..") {
		return nil, "the declarations are outside the Git working tree"
	}
	g := &gitAges{head: head, prefix: filepath.ToSlash(rel), lines: map[string][]string{}, blamed: map[string]*git.BlameResult{}}
	if g.prefix == "." {
		g.prefix = ""
	}
	for _, f := range src.YAML {
		g.lines[f.Path] = strings.Split(string(bytes.ReplaceAll(f.Data, []byte("\r\n"), []byte("\n"))), "\n")
	}
	return g, ""
}

// added is when the grant at pos was added.
func (g *gitAges) added(pos desired.Pos) (review.GrantAdded, bool) {
	lines := g.lines[pos.File]
	if pos.Line < 1 || pos.Line > len(lines) {
		return review.GrantAdded{}, false
	}
	br, done := g.blamed[pos.File]
	if !done {
		br, _ = git.Blame(g.head, path.Join(g.prefix, pos.File))
		g.blamed[pos.File] = br
	}
	if br == nil || pos.Line > len(br.Lines) {
		return review.GrantAdded{}, false
	}
	l := br.Lines[pos.Line-1]
	if strings.TrimSuffix(l.Text, "\r") != lines[pos.Line-1] {
		return review.GrantAdded{}, false
	}
	return review.GrantAdded{Time: l.Date.UTC(), Commit: l.Hash.String()}, true
}
