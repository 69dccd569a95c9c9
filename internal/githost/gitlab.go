package githost

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	gitlab "gitlab.com/gitlab-org/api/client-go/v2"
)

// GitLab opens merge requests through GitLab's REST API (its official Go
// client).
type GitLab struct {
	// BaseURL is the instance (https://gitlab.com, or a self-managed
	// one's URL); the API is under /api/v4.
	BaseURL string
	Token   string
	// HTTPClient carries the requests (http.DefaultClient when nil).
	HTTPClient *http.Client
}

// gitlabRemote matches the project path in a GitLab remote URL: groups
// nest, so the path is everything after the host.
var gitlabRemote = regexp.MustCompile(`^(?:https://(?:[^@/]+@)?([^/]+)/|ssh://git@([^/]+)/|git@([^:]+):)([A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)+?)(?:\.git)?/?$`)

// ProjectFromRemote returns a GitLab remote URL's project path
// ("group/sub/name") on host, or "" when it is not one.
func ProjectFromRemote(remote, host string) string {
	m := gitlabRemote.FindStringSubmatch(remote)
	if m == nil || !strings.EqualFold(m[1]+m[2]+m[3], host) {
		return ""
	}
	return m[4]
}

// OpenMergeRequest opens a merge request of head into base in project
// ("group/name") and returns its web URL. It is sent once: no retry could
// open a second one.
func (gl GitLab) OpenMergeRequest(ctx context.Context, project, head, base, title, body string) (string, error) {
	if gl.Token == "" {
		return "", fmt.Errorf("--open-pr needs GITLAB_TOKEN (a token that may open merge requests in %s)", project)
	}
	opts := []gitlab.ClientOptionFunc{gitlab.WithBaseURL(strings.TrimSuffix(gl.BaseURL, "/") + "/api/v4"), gitlab.WithoutRetries()}
	if gl.HTTPClient != nil {
		opts = append(opts, gitlab.WithHTTPClient(gl.HTTPClient))
	}
	client, err := gitlab.NewClient(gl.Token, opts...)
	if err != nil {
		return "", fmt.Errorf("--gitlab-url %s: %w", gl.BaseURL, err)
	}
	mr, _, err := client.MergeRequests.CreateMergeRequest(project, &gitlab.CreateMergeRequestOptions{
		Title: gitlab.Ptr(title), Description: gitlab.Ptr(body), SourceBranch: gitlab.Ptr(head), TargetBranch: gitlab.Ptr(base)},
		gitlab.WithContext(ctx))
	if err != nil {
		return "", fmt.Errorf("open a merge request in %s: %w", project, err)
	}
	return mr.WebURL, nil
}
