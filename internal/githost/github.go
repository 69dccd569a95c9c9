package githost

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/go-git/go-git/v5"
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

// Origin is the URL of a checkout's remote origin ("" when none).
func Origin(dir string) string {
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return ""
	}
	r, err := repo.Remote("origin")
	if err != nil || len(r.Config().URLs) == 0 {
		return ""
	}
	return r.Config().URLs[0]
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

// client is go-github's client for gh.
func (gh GitHub) client() (*github.Client, error) {
	client := github.NewClient(gh.HTTPClient)
	if gh.Token != "" {
		client = client.WithAuthToken(gh.Token)
	}
	if gh.APIURL != "" && strings.TrimSuffix(gh.APIURL, "/") != "https://api.github.com" {
		var err error
		if client, err = client.WithEnterpriseURLs(gh.APIURL, gh.APIURL); err != nil {
			return nil, fmt.Errorf("--github-api-url %s: %w", gh.APIURL, err)
		}
	}
	return client, nil
}

// Review is how a commit reached its branch: the pull request that
// merged it (Number 0: none, a direct push) and who approved it.
type Review struct {
	Number int
	URL    string
	// Author opened the pull request; Approvers are the people whose
	// latest review approved it, its author and the commit's aside.
	Author    string
	Approvers []string
}

// Reviewed reports whether someone other than the authors approved it.
func (r Review) Reviewed() bool { return len(r.Approvers) > 0 }

// Reviews finds the merged pull request of repo ("owner/name") that
// brought commit sha to base, and its approvers (GitHub's "list pull
// requests associated with a commit" and "list reviews"). Approvals by
// the pull request's author or the commit's (as GitHub knows it: "get a
// commit") do not count.
func (gh GitHub) Reviews(ctx context.Context, repo, sha, base string) (Review, error) {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok {
		return Review{}, fmt.Errorf("--github-repo %q: give owner/name", repo)
	}
	client, err := gh.client()
	if err != nil {
		return Review{}, err
	}
	prs, _, err := client.PullRequests.ListPullRequestsWithCommit(ctx, owner, name, sha, &github.ListOptions{PerPage: 100})
	if err != nil {
		return Review{}, fmt.Errorf("pull requests of %s in %s: %w", sha, repo, err)
	}
	var pr *github.PullRequest
	for _, p := range prs {
		if p.MergedAt != nil && (base == "" || p.GetBase().GetRef() == base) {
			pr = p
			break
		}
	}
	if pr == nil {
		return Review{}, nil
	}
	r := Review{Number: pr.GetNumber(), URL: pr.GetHTMLURL(), Author: pr.GetUser().GetLogin()}
	commit, _, err := client.Repositories.GetCommit(ctx, owner, name, sha, nil)
	if err != nil {
		return Review{}, fmt.Errorf("commit %s in %s: %w", sha, repo, err)
	}
	commitAuthor := commit.GetAuthor().GetLogin()
	head := pr.GetHead().GetSHA()
	latest := map[string]string{}
	opts := &github.ListOptions{PerPage: 100}
	for {
		reviews, res, err := client.PullRequests.ListReviews(ctx, owner, name, r.Number, opts)
		if err != nil {
			return Review{}, fmt.Errorf("reviews of %s#%d: %w", repo, r.Number, err)
		}
		for _, rv := range reviews {
			state := rv.GetState()
			if state == "APPROVED" && rv.GetCommitID() != head {
				// An approval of an earlier head: the commits pushed after
				// it were not approved (unless the repository dismisses
				// stale approvals, GitHub keeps it APPROVED).
				state = "STALE"
			}
			if state == "APPROVED" || state == "CHANGES_REQUESTED" || state == "DISMISSED" || state == "STALE" {
				latest[rv.GetUser().GetLogin()] = state
			}
		}
		if res == nil || res.NextPage == 0 {
			break
		}
		opts.Page = res.NextPage
	}
	for login, state := range latest {
		if state == "APPROVED" && !strings.EqualFold(login, r.Author) && !strings.EqualFold(login, commitAuthor) {
			r.Approvers = append(r.Approvers, login)
		}
	}
	slices.Sort(r.Approvers)
	return r, nil
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
	client, err := gh.client()
	if err != nil {
		return "", err
	}
	pr, _, err := client.PullRequests.Create(ctx, owner, name, &github.NewPullRequest{
		Title: github.Ptr(title), Head: github.Ptr(head), Base: github.Ptr(base), Body: github.Ptr(body)})
	if err != nil {
		return "", fmt.Errorf("open a pull request in %s: %w", repo, err)
	}
	return pr.GetHTMLURL(), nil
}
