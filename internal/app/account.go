package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/cfaccess/reconciler/internal/cfroles"
	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/desired"
)

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
		repo, ldiags := desired.Load(src.YAML, desired.Options{Roles: cfroles.Catalogue{}})
		if err := append(diags, ldiags...).Err(); err != nil {
			return nil, "", fmt.Errorf("the repository is invalid (run reconciler validate):\n%w", err)
		}
		pv, ok := repo.Providers[f.provider]
		if !ok {
			return nil, "", fmt.Errorf("--provider %q is not defined in %s", f.provider, repoDir)
		}
		accountID, tokenEnv = pv.AccountID, pv.APITokenEnv
	case f.accountID == "":
		return nil, "", errors.New("give --account-id, or --repo with --provider")
	}
	creds, err := cloudflare.FindCredentials(env.Getenv, tokenEnv, f.tokenFile)
	if err != nil {
		return nil, "", err
	}
	if err := f.cloudflareFlags.check(); err != nil {
		return nil, "", err
	}
	return cloudflare.New(cloudflare.Config{BaseURL: f.apiURL, Credentials: creds, Limit: f.rateLimit, MaxRetries: retriesConfig(f.retries), HTTPClient: f.httpClient()}), accountID, nil
}

// readAccount connects and reads the whole account, all zones resolved.
func (f *accountFlags) readAccount(ctx context.Context, env *Env) (*cloudflare.Account, error) {
	client, id, err := f.connect(env)
	if err != nil {
		return nil, err
	}
	return client.ReadAccount(ctx, id, cloudflare.ReadOptions{AllZones: true})
}

// check refuses settings that cannot work.
func (f *cloudflareFlags) check() error {
	if f.rateLimit < 1 {
		return fmt.Errorf("--cloudflare-rate-limit %d: give at least 1", f.rateLimit)
	}
	if f.timeout <= 0 {
		return fmt.Errorf("--cloudflare-timeout %v: give a positive duration", f.timeout)
	}
	return nil
}

// httpClient returns the HTTP client of Cloudflare requests, with
// --cloudflare-timeout per attempt.
func (f *cloudflareFlags) httpClient() *http.Client {
	return &http.Client{Timeout: f.timeout}
}

// retriesConfig maps the flag (0 means none) to the client's setting (0
// means the default, negative none).
func retriesConfig(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}
