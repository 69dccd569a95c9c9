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
	"github.com/cfaccess/reconciler/internal/gitsource"
)

func envOr(env *Env, key, def string) string {
	if v := env.Getenv(key); v != "" {
		return v
	}
	return def
}

// envList is a comma-separated list from the environment (nil when unset).
func envList(env *Env, key string) []string {
	var out []string
	for v := range strings.SplitSeq(env.Getenv(key), ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func envDuration(env *Env, key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(env.Getenv(key)); err == nil && d > 0 {
		return d
	}
	return def
}

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
	cmd.Flags().DurationVar(&f.policyTimeout, "policy-timeout", check.DefaultPolicyTimeout, "the longest the repository's policy tests and the guardrails may take; longer refuses the revision")
	cmd.Flags().BoolVar(&f.allowUnicodeEmails, "allow-unicode-emails", false, "accept emails with characters outside ASCII (never invisible or direction-changing ones); plans flag those that could pass for another address")
	cmd.Flags().BoolVar(&f.allowUnknownRoles, "allow-unknown-roles", false, "accept Cloudflare role names this release does not know (roles Cloudflare added since), with a warning; the account still decides at plan time")
}

// checks are the options of check.Compile these flags give.
func (f *repoFlags) checks(runTests bool) check.Options {
	return check.Options{RunTests: runTests, PolicyTimeout: f.policyTimeout,
		AllowUnknownRoles: f.allowUnknownRoles, AllowUnicodeEmails: f.allowUnicodeEmails}
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
	switch {
	case gitsource.IsURL(f.repo):
		tmp, err := os.MkdirTemp("", "cfaccess-repo-")
		if err != nil {
			return nil, nil, rev, cleanup, err
		}
		cleanup = func() { os.RemoveAll(tmp) }
		if rev, err = gitsource.Clone(ctx, f.repo, f.ref, tmp, nil); err != nil {
			return nil, nil, rev, cleanup, err
		}
		dir = tmp
	case f.ref != "":
		return nil, nil, rev, cleanup, fmt.Errorf("--ref %q needs --repo to be a Git URL; check the revision out in %s instead", f.ref, f.repo)
	default:
		rev, _ = gitsource.Head(dir)
	}
	src, diags, err = desired.ReadDir(dir, f.path)
	return src, diags, rev, cleanup, err
}

// check reads and checks the repository at --now.
func (f *repoFlags) check(ctx context.Context, env *Env, runTests bool) (*check.Checked, gitsource.Revision, time.Time, error) {
	now, err := f.instant(env)
	if err != nil {
		return nil, gitsource.Revision{}, now, err
	}
	src, diags, rev, cleanup, err := f.read(ctx)
	defer cleanup()
	if err != nil {
		return nil, rev, now, err
	}
	c, err := check.Check(ctx, src, diags, now, f.checks(runTests))
	return c, rev, now, err
}

// cloudflareFlags are the flags every command that talks to Cloudflare
// shares.
type cloudflareFlags struct {
	apiURL    string
	tokenFile string
	rateLimit int
	retries   int
	timeout   time.Duration
}

func (f *cloudflareFlags) register(cmd *cobra.Command, env *Env) {
	cmd.Flags().IntVar(&f.retries, "cloudflare-max-retries", 4, "retries of a request on 429, 5xx and network errors, with exponential backoff (0: fail at once)")
	cmd.Flags().DurationVar(&f.timeout, "cloudflare-timeout", 30*time.Second, "give up on one request (then retried) after this long")
	cmd.Flags().StringVar(&f.apiURL, "cloudflare-api-url", envOr(env, "CLOUDFLARE_API_URL", cloudflare.DefaultBaseURL), "Cloudflare API base URL (env CLOUDFLARE_API_URL)")
	cmd.Flags().IntVar(&f.rateLimit, "cloudflare-rate-limit", 1200, "requests to Cloudflare per 5 minutes, at most (Cloudflare's limit is 1,200 per user; lower it when other tools share the token)")
	cmd.Flags().StringVar(&f.tokenFile, "cloudflare-token-file", envOr(env, "CFACCESS_CLOUDFLARE_TOKEN_FILE", ""), "read the API token from this file (env CFACCESS_CLOUDFLARE_TOKEN_FILE); otherwise CLOUDFLARE_API_TOKEN, or CLOUDFLARE_API_KEY with CLOUDFLARE_EMAIL")
}

// clients returns the maker of Cloudflare clients these flags describe,
// after refusing settings that cannot work.
func (f *cloudflareFlags) clients(env *Env) (*cloudflare.Clients, error) {
	if f.rateLimit < 1 {
		return nil, fmt.Errorf("--cloudflare-rate-limit %d: give at least 1", f.rateLimit)
	}
	if f.timeout <= 0 {
		return nil, fmt.Errorf("--cloudflare-timeout %v: give a positive duration", f.timeout)
	}
	v, _ := version()
	return &cloudflare.Clients{BaseURL: f.apiURL, Getenv: env.Getenv, TokenFile: f.tokenFile,
		RateLimit: f.rateLimit, MaxRetries: f.retries, Timeout: f.timeout, Transport: env.Transport,
		UserAgent: cloudflare.UserAgentPrefix + cmp.Or(v, "dev")}, nil
}

// lookupRepo loads declarations to look something up in them (accounts,
// providers, grants), not to apply them: unknown role names are no
// reason to fail. where names the revision in the error ("" for none).
func lookupRepo(src *desired.Source, diags desired.Diagnostics, where string) (*desired.Repo, error) {
	repo, ldiags := check.Load(src.YAML, lookupOptions)
	if err := append(diags, ldiags...).Err(); err != nil {
		if where != "" {
			where = " at " + where
		}
		return nil, fmt.Errorf("the repository%s is invalid (run reconciler validate):\n%w", where, err)
	}
	return repo, nil
}

// lookupOptions are lookupRepo's.
var lookupOptions = check.Options{AllowUnknownRoles: true}

// accountFlags locate one live account: by --account-id, or by a provider
// of an access repository (which also names the token's variable).
type accountFlags struct {
	accountID string
	repo      string
	path      string
	provider  string
	cloudflareFlags
}

func (f *accountFlags) register(cmd *cobra.Command, env *Env) {
	cmd.Flags().StringVar(&f.accountID, "account-id", "", "Cloudflare account id")
	cmd.Flags().StringVar(&f.repo, "repo", envOr(env, "CFACCESS_REPO", ""), "access repository (a local directory) whose --provider names the account (env CFACCESS_REPO)")
	cmd.Flags().StringVar(&f.path, "path", envOr(env, "CFACCESS_PATH", ""), "subdirectory of the repository holding the declarations (env CFACCESS_PATH)")
	cmd.Flags().StringVar(&f.provider, "provider", "", "provider id in --repo")
	f.cloudflareFlags.register(cmd, env)
}

// connect resolves the account and its credentials and returns a client.
func (f *accountFlags) connect(env *Env) (*cloudflare.Client, string, error) {
	accountID, tokenEnv := f.accountID, ""
	switch {
	case f.accountID != "" && f.provider != "":
		return nil, "", errors.New("give --account-id or --repo with --provider, not both")
	case f.provider != "":
		repoDir := f.repo
		if repoDir == "" {
			repoDir = "."
		}
		src, diags, err := desired.ReadDir(repoDir, f.path)
		if err != nil {
			return nil, "", err
		}
		repo, err := lookupRepo(src, diags, "")
		if err != nil {
			return nil, "", err
		}
		pv, ok := repo.Providers[f.provider]
		if !ok {
			return nil, "", fmt.Errorf("--provider %q is not defined in %s", f.provider, repoDir)
		}
		accountID, tokenEnv = pv.AccountID, pv.APITokenEnv
	case f.accountID == "":
		return nil, "", errors.New("give --account-id, or --repo with --provider")
	}
	clients, err := f.clients(env)
	if err != nil {
		return nil, "", err
	}
	client, _, err := clients.For(tokenEnv, "", nil)
	return client, accountID, err
}

// readAccount connects and reads the whole account, all zones resolved.
func (f *accountFlags) readAccount(ctx context.Context, env *Env) (*cloudflare.Account, error) {
	client, id, err := f.connect(env)
	if err != nil {
		return nil, err
	}
	return client.ReadAccount(ctx, id, cloudflare.ReadOptions{AllZones: true})
}
