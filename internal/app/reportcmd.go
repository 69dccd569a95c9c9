package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/evidence"
	"github.com/cfaccess/reconciler/internal/githost"
	"github.com/cfaccess/reconciler/internal/gitsource"
	"github.com/cfaccess/reconciler/internal/report"
)

// reportFlags are the flags of `reconciler report`.
type reportFlags struct {
	repoFlags
	cloudflareFlags
	since, until string
	format       string
	provider     string
	tokenIDs     []string
	maxPages     int
	githubAPI    string
	githubRepo   string
}

func newReport(env *Env) *cobra.Command {
	var f reportFlags
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Evidence of every access change in a period: approved through Git, or out of band",
		Long: `Report lists, for each account of the repository, every change to its members
and user groups between --since and --until, from the account's Cloudflare
audit log.

A change is approved through Git only when Cloudflare says it was made with
cfaccess's token (its id learned from the token the report runs with, or
given by --cfaccess-token-id), the revision it names is on the followed
branch, and the repository at that revision explains it: for an invitation
or an update, the access written; for a removal, no grant for the member
then. It is tied to its commit (author, title) and the grants behind it
(file:line and reason). A change made with cfaccess's token that fails a
check is unverified, with the check it failed; any other change is out of
band, whatever its User-Agent claims: who made it, how (dashboard, API
token), from where, and how long it stood until cfaccess reverted it, or
"still present". A summary per account ends it.

It reads only. The token needs Account Settings Read (the audit log).
--repo should be a Git checkout with its history (in CI, fetch-depth: 0)
or a Git URL: revisions are looked up in it. The audit log keeps 18 months.
Exit 1 when a log cannot be read whole, or cfaccess's token id cannot be
known (nothing is then approved, and the report says so first).`,
		Example: `  reconciler report --since 2026-10-01 --until 2026-12-31
  reconciler report --since 2026-10-01 --format csv > changes.csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.run(cmd.Context(), env) },
	}
	f.repoFlags.register(cmd, env)
	f.cloudflareFlags.register(cmd, env)
	cmd.Flags().StringVar(&f.since, "since", "", "start of the period: a date (2026-10-01, UTC) or an RFC 3339 time (required)")
	cmd.Flags().StringVar(&f.until, "until", "", "end of the period, inclusive for a date (default: now)")
	cmd.Flags().StringVar(&f.format, "format", "markdown", "output format: markdown, json or csv")
	cmd.Flags().StringVar(&f.provider, "provider", "", "report this provider (account) only")
	cmd.Flags().StringSliceVar(&f.tokenIDs, "cfaccess-token-id", nil, "ids of the API tokens cfaccess applies with (default: the token this report runs with, from tokens/verify): a change counts as approved only when Cloudflare says one of them made it")
	cmd.Flags().IntVar(&f.maxPages, "max-pages", 100, "pages of 1,000 audit-log entries to read per account, at most")
	cmd.Flags().StringVar(&f.githubAPI, "github-api-url", envOr(env, "GITHUB_API_URL", "https://api.github.com/"), "GitHub's REST API, for the pull requests and approvals of changes (with GITHUB_TOKEN; GitHub Enterprise: https://HOST/api/v3/)")
	cmd.Flags().StringVar(&f.githubRepo, "github-repo", "", "owner/name of the access repository on GitHub (default: from --repo's URL or origin)")
	return cmd
}

// parseInstant reads a date (midnight UTC; with end, the next midnight)
// or an RFC 3339 time.
func parseInstant(flag, v string, end bool) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s %q: give a date (2026-10-01) or an RFC 3339 time (2026-10-01T09:00:00Z)", flag, v)
	}
	if end {
		t = t.AddDate(0, 0, 1)
	}
	return t, nil
}

func (f *reportFlags) run(ctx context.Context, env *Env) error {
	if err := report.CheckFormat(f.format, report.EvidenceFormats); err != nil {
		return err
	}
	if f.since == "" {
		return errors.New("--since is required: the start of the period (2026-10-01)")
	}
	since, err := parseInstant("since", f.since, false)
	if err != nil {
		return err
	}
	until := env.Now().UTC()
	if f.until != "" {
		if until, err = parseInstant("until", f.until, true); err != nil {
			return err
		}
	}
	if !since.Before(until) {
		return fmt.Errorf("--since %s is not before --until %s", f.since, cmp.Or(f.until, "now"))
	}
	clients, err := f.cloudflareFlags.clients(env)
	if err != nil {
		return err
	}
	hist, repo, cleanup, err := f.history(ctx)
	defer cleanup()
	if err != nil {
		return err
	}
	ids, err := repo.EnabledProviders(f.provider)
	if err != nil {
		return err
	}
	out := &evidence.Report{Since: since, Until: until}
	for _, id := range ids {
		pv := repo.Providers[id]
		client, _, err := clients.For(pv.APITokenEnv, "", nil)
		if err != nil {
			out.Accounts = append(out.Accounts, evidence.Account{Provider: id, AccountID: pv.AccountID, Error: err.Error()})
			continue
		}
		opts := evidence.Options{Since: since, Until: until, Now: env.Now(), MaxPages: f.maxPages}
		f.identities(ctx, client, pv.AccountID, &opts)
		acct := evidence.Build(ctx, client, hist, id, pv.AccountID, opts)
		if look := f.reviews(ctx, env); look != nil {
			acct = evidence.WithReviews(ctx, acct, look)
		}
		out.Accounts = append(out.Accounts, acct)
	}
	if err := report.Evidence(env.Stdout, f.format, out); err != nil {
		return err
	}
	for _, a := range out.Accounts {
		if a.Error != "" || a.Truncated || a.NoApproval != "" || a.Doubt != "" {
			// The report says which account could not be read, or was
			// read in part; the exit code tells a scheduled job the
			// evidence is incomplete.
			return exitCode(ExitError)
		}
	}
	return nil
}

// reviews looks up, with GITHUB_TOKEN, the pull request that brought a
// commit to the followed branch and who approved it (nil without a token,
// or when the repository's GitHub name is not known).
func (f *reportFlags) reviews(ctx context.Context, env *Env) func(context.Context, string) (evidence.PullRequest, error) {
	token := env.Getenv("GITHUB_TOKEN")
	if token == "" {
		return nil
	}
	repo := f.githubRepo
	if repo == "" {
		remote := f.repo
		if !gitsource.IsURL(remote) {
			remote = githost.Origin(f.repo)
		}
		repo = githost.RepoFromRemote(remote, githost.Host(f.githubAPI))
	}
	if repo == "" {
		fmt.Fprintf(env.Stderr, "GITHUB_TOKEN is set, but --repo is not a repository on %s: give --github-repo owner/name to name pull requests and approvers\n", githost.Host(f.githubAPI))
		return nil
	}
	gh := githost.GitHub{APIURL: f.githubAPI, Token: token, HTTPClient: gitHostClient(env)}
	return func(ctx context.Context, sha string) (evidence.PullRequest, error) {
		r, err := gh.Reviews(ctx, repo, sha, f.ref)
		return evidence.PullRequest{Number: r.Number, URL: r.URL, Approvers: r.Approvers}, err
	}
}

// identities sets how cfaccess's credentials are known in the audit log:
// the token ids given by --cfaccess-token-id, or those this report runs
// with (cfaccess's own, in the documented workflow), learned through
// tokens/verify. When neither works, nothing can be approved, and the
// report says why.
func (f *reportFlags) identities(ctx context.Context, client *cloudflare.Client, accountID string, opts *evidence.Options) {
	if len(f.tokenIDs) > 0 {
		for _, id := range f.tokenIDs {
			opts.Identities = append(opts.Identities, cloudflare.Identity{TokenID: id})
		}
		opts.Credentials = "given by --cfaccess-token-id (" + strings.Join(f.tokenIDs, ", ") + ")"
		return
	}
	id, err := client.Identity(ctx, accountID)
	switch {
	case err != nil:
		opts.NoIdentity = "cfaccess's token id could not be learned from the token this report runs with: " + err.Error()
	case id.TokenID != "":
		opts.Identities, opts.Learned = []cloudflare.Identity{id}, true
		opts.Credentials = "token " + id.TokenID + ", the token this report runs with (tokens/verify); if cfaccess applies with another, give its id with --cfaccess-token-id"
	case id.KeyEmail != "":
		opts.Identities, opts.Learned = []cloudflare.Identity{id}, true
		opts.Credentials = "the Global API key of " + id.KeyEmail + ", which this report runs with"
	default:
		opts.NoIdentity = "cfaccess's token id is unknown"
	}
}

// gitHistory looks revisions up in the followed repository.
type gitHistory struct {
	remote  *gitsource.Remote
	head    string
	onTrunk map[string]bool // by SHA: on the followed branch
}

func (h *gitHistory) Declarations(ctx context.Context, sha string) (*desired.Repo, error) {
	src, _, err := h.remote.Read(ctx, gitsource.Revision{SHA: sha})
	if err != nil {
		return nil, err
	}
	repo, _ := check.Load(src.YAML, lookupOptions)
	return repo, nil
}

func (h *gitHistory) Descends(sha, ancestor string) (bool, error) {
	return h.remote.Descends(sha, ancestor)
}

func (h *gitHistory) Commit(sha string) (string, string, error) {
	ok, seen := h.onTrunk[sha]
	if !seen {
		ok, _ = h.remote.Descends(h.head, sha)
		h.onTrunk[sha] = ok
	}
	if !ok {
		return "", "", fmt.Errorf("%s is not in the history of the followed branch", sha)
	}
	revs, err := h.remote.FirstParents(sha, 1)
	if err != nil || len(revs) == 0 {
		return "", "", err
	}
	return revs[0].Author, revs[0].Subject, nil
}

// history opens the repository's Git history (a Git URL, or a local
// checkout) and loads its head; a directory outside Git has no history,
// and its changes by cfaccess are then not tied to revisions.
func (f *reportFlags) history(ctx context.Context) (evidence.History, *desired.Repo, func(), error) {
	cleanup := func() {}
	url, path := f.repo, f.path
	if !gitsource.IsURL(url) {
		if !gitsource.IsRepo(f.repo) {
			src, diags, err := desired.ReadDir(f.repo, f.path)
			if err != nil {
				return nil, nil, cleanup, err
			}
			repo, err := lookupRepo(src, diags, "")
			return nil, repo, cleanup, err
		}
		// A folder inside a checkout: its history is the checkout's, and
		// the declarations are read below it.
		root, sub, err := gitsource.Root(f.repo)
		if err != nil {
			return nil, nil, cleanup, err
		}
		url = "file://" + root
		path = strings.Trim(sub+"/"+f.path, "/")
	}
	work, err := os.MkdirTemp("", "cfaccess-report-")
	if err != nil {
		return nil, nil, cleanup, err
	}
	cleanup = func() { os.RemoveAll(work) }
	remote := &gitsource.Remote{URL: url, Ref: f.ref, Work: work, Path: path}
	head, err := remote.Fetch(ctx)
	if err != nil {
		return nil, nil, cleanup, err
	}
	src, diags, err := remote.Read(ctx, head)
	if err != nil {
		return nil, nil, cleanup, err
	}
	repo, err := lookupRepo(src, diags, head.SHA)
	if err != nil {
		return nil, nil, cleanup, err
	}
	return &gitHistory{remote: remote, head: head.SHA, onTrunk: map[string]bool{}}, repo, cleanup, nil
}
