package request

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/google/go-github/v75/github"
)

// GitHub opens pull requests through GitHub's REST API (go-github).
type GitHub struct {
	// APIURL is the REST API's base (https://api.github.com/; GitHub
	// Enterprise: https://HOST/api/v3/).
	APIURL string
	Token  string
	// HTTPClient carries the requests (http.DefaultClient when nil).
	HTTPClient *http.Client
}

// githubRemote matches the owner and name in a GitHub remote URL:
// https://HOST/OWNER/NAME(.git) or git@HOST:OWNER/NAME(.git).
var githubRemote = regexp.MustCompile(`^(?:https://(?:[^@/]+@)?([^/]+)/|ssh://git@([^/]+)/|git@([^:]+):)([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?$`)

// RepoFromRemote returns "owner/name" of a GitHub remote URL on host
// (github.com, or a GitHub Enterprise host), or "" when it is not one.
func RepoFromRemote(remote, host string) string {
	m := githubRemote.FindStringSubmatch(remote)
	if m == nil {
		return ""
	}
	h := m[1] + m[2] + m[3]
	if !strings.EqualFold(h, host) {
		return ""
	}
	return m[4] + "/" + m[5]
}

// Host is the web host of an API base URL: github.com for
// api.github.com, the host itself for GitHub Enterprise.
func Host(apiURL string) string {
	u, err := url.Parse(apiURL)
	if err != nil || u.Host == "" {
		return "github.com"
	}
	if u.Host == "api.github.com" {
		return "github.com"
	}
	return u.Host
}

// OpenPullRequest opens a pull request of head into base in repo
// ("owner/name") and returns its web URL.
func (gh GitHub) OpenPullRequest(ctx context.Context, repo, head, base, title, body string) (string, error) {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || owner == "" || name == "" {
		return "", fmt.Errorf("--github-repo %q: give owner/name", repo)
	}
	if gh.Token == "" {
		return "", fmt.Errorf("--open-pr needs GITHUB_TOKEN (a token that may open pull requests in %s)", repo)
	}
	client := github.NewClient(gh.HTTPClient).WithAuthToken(gh.Token)
	if gh.APIURL != "" {
		var err error
		if client, err = client.WithEnterpriseURLs(gh.APIURL, gh.APIURL); err != nil {
			return "", fmt.Errorf("--github-api-url %s: %w", gh.APIURL, err)
		}
	}
	pr, _, err := client.PullRequests.Create(ctx, owner, name, &github.NewPullRequest{
		Title: github.Ptr(title), Head: github.Ptr(head), Base: github.Ptr(base), Body: github.Ptr(body)})
	if err != nil {
		return "", fmt.Errorf("open a pull request in %s: %w", repo, err)
	}
	return pr.GetHTMLURL(), nil
}
