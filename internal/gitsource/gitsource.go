package gitsource

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// Revision names a commit for plans and audit records.
type Revision struct {
	SHA     string
	Author  string // "Name <email>"
	Subject string
	// Modified marks a local checkout with uncommitted changes: what is
	// read is not the commit.
	Modified bool
}

// IsURL reports whether repo names a remote repository rather than a
// local directory.
func IsURL(repo string) bool {
	return strings.Contains(repo, "://") || strings.HasPrefix(repo, "git@")
}

// Redact drops credentials from a repository URL, for messages: its user
// information, and its query (GitLab's ?private_token=…, or a bare
// ?TOKEN), all of it. A URL that does not parse is cut at its scheme:
// whatever it holds is not shown.
func Redact(repo string) string {
	if strings.HasPrefix(repo, "git@") && !strings.Contains(repo, "://") {
		return repo // SSH's scp form: "git" is no secret, and it holds no other
	}
	u, err := url.Parse(repo)
	if err != nil {
		scheme, rest, found := strings.Cut(repo, "://")
		if !found {
			return "(a malformed repository URL)"
		}
		if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			rest = "***@" + rest[at+1:]
		}
		// Percent escapes and ports are what fails to parse: keep the
		// host's name only.
		host, _, _ := strings.Cut(rest, "/")
		return scheme + "://" + host + "/… (malformed URL)"
	}
	if u.User == nil && u.RawQuery == "" && u.Fragment == "" {
		return repo
	}
	hadUser := u.User != nil
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	out := u.String()
	if hadUser {
		scheme, rest, _ := strings.Cut(out, "://")
		out = scheme + "://***@" + rest
	}
	if strings.Contains(repo, "?") {
		out += "?***"
	}
	return out
}

// querySecrets are the keys and values of a URL's query, separated by &
// or ;, escaped and not: whatever a query holds may be a secret.
func querySecrets(repo string) []string {
	_, query, ok := strings.Cut(repo, "?")
	if !ok {
		return nil
	}
	query, _, _ = strings.Cut(query, "#")
	var out []string
	for part := range strings.FieldsFuncSeq(query, func(r rune) bool { return r == '&' || r == ';' }) {
		for s := range strings.SplitSeq(part, "=") {
			if u, err := url.QueryUnescape(s); err == nil && u != s && len(u) >= 4 {
				out = append(out, u)
			}
			if len(s) >= 4 && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// splitCredentials takes credentials written into an http(s) URL
// (GitHub's https://TOKEN@github.com/…, or user:password@) out of it, as
// basic auth: go-git then never sees them in the URL, and none of its
// errors can show them. secrets lists what to scrub from messages anyway.
//
// Secrets in the query (?private_token=…) stay in the URL the host needs
// them in, and are scrubbed from messages.
func splitCredentials(repo string) (clean string, auth transport.AuthMethod, secrets []string) {
	u, err := url.Parse(repo)
	if err != nil {
		return repo, nil, nil
	}
	secrets = querySecrets(repo)
	if u.User == nil || (u.Scheme != "https" && u.Scheme != "http") {
		return repo, nil, secrets
	}
	user := u.User.Username()
	pass, _ := u.User.Password()
	if raw := u.User.String(); raw != "" {
		secrets = append(secrets, raw)
	}
	for _, s := range []string{user, pass} {
		if len(s) >= 4 {
			secrets = append(secrets, s)
		}
	}
	u.User = nil
	return u.String(), &githttp.BasicAuth{Username: user, Password: pass}, secrets
}

// scrubbed is an error whose message had secrets removed; it still
// unwraps to the original for errors.Is.
type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }

// scrub wraps err for op, with the repository URL redacted and every
// secret removed from the message.
func scrub(op, repo string, err error, secrets ...string) error {
	msg := err.Error()
	if repo != "" {
		msg = strings.ReplaceAll(msg, repo, Redact(repo))
	}
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "***")
			for _, esc := range []string{url.PathEscape(s), url.QueryEscape(s)} {
				if esc != s {
					msg = strings.ReplaceAll(msg, esc, "***")
				}
			}
		}
	}
	return &scrubbed{msg: op + " " + Redact(repo) + ": " + msg, err: err}
}

// Head returns the revision checked out in dir, when dir is inside a Git
// repository; ok is false otherwise.
func Head(dir string) (rev Revision, ok bool) {
	r, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return Revision{}, false
	}
	ref, err := r.Head()
	if err != nil {
		return Revision{}, false
	}
	c, err := r.CommitObject(ref.Hash())
	if err != nil {
		return Revision{SHA: ref.Hash().String(), Modified: modified(r)}, true
	}
	rev = revision(c)
	rev.Modified = modified(r)
	return rev, true
}

// modified reports whether a checkout has uncommitted changes that could
// be declarations: any change to a tracked file, or an untracked YAML or
// Rego file (a plan.json a CI job writes is not one). A failure to tell
// counts as modified: nothing is claimed of the commit.
func modified(r *git.Repository) bool {
	wt, err := r.Worktree()
	if err != nil {
		return true
	}
	st, err := wt.Status()
	if err != nil {
		return true
	}
	for path, fs := range st {
		if fs.Worktree == git.Untracked && fs.Staging == git.Untracked {
			switch strings.ToLower(filepath.Ext(path)) {
			case ".yaml", ".yml", ".rego":
				return true
			}
			continue
		}
		if fs.Worktree != git.Unmodified || fs.Staging != git.Unmodified {
			return true
		}
	}
	return false
}

// IsRepo reports whether dir is inside a Git repository.
func IsRepo(dir string) bool {
	_, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	return err == nil
}

// Root returns the top of the Git work tree dir is in, and dir's path
// below it (slash-separated, "" for the top itself).
func Root(dir string) (root, sub string, err error) {
	r, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return "", "", err
	}
	wt, err := r.Worktree()
	if err != nil {
		return "", "", err
	}
	root = wt.Filesystem.Root()
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", "", err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	if real, err := filepath.EvalSymlinks(root); err == nil {
		root = real
	}
	rel, err := filepath.Rel(root, abs)
	if err != nil || strings.HasPrefix(rel, "..") {
		return "", "", fmt.Errorf("%s is not inside its work tree %s", dir, root)
	}
	if rel == "." {
		rel = ""
	}
	return root, filepath.ToSlash(rel), nil
}

func revision(c *object.Commit) Revision {
	subject, _, _ := strings.Cut(c.Message, "\n")
	return Revision{SHA: c.Hash.String(), Author: c.Author.Name + " <" + c.Author.Email + ">", Subject: subject}
}

// Clone clones ref (a branch or tag; "" for the default branch) of repo
// into dest, shallow and single-branch, and returns the commit checked out.
func Clone(ctx context.Context, repo, ref, dest string, auth transport.AuthMethod) (Revision, error) {
	clean, urlAuth, secrets := splitCredentials(repo)
	if auth == nil {
		auth = urlAuth
	}
	if _, err := url.Parse(repo); err != nil && IsURL(repo) {
		return Revision{}, fmt.Errorf("repository URL %s does not parse: check its port and %% escapes", Redact(repo))
	}
	rev, err := clone(ctx, clean, ref, dest, auth)
	if err != nil {
		return Revision{}, scrub("clone", repo, err, secrets...)
	}
	return rev, nil
}

func clone(ctx context.Context, repo, ref, dest string, auth transport.AuthMethod) (Revision, error) {
	opts := &git.CloneOptions{URL: repo, Auth: auth, Depth: 1, SingleBranch: true, Tags: git.NoTags}
	if ref != "" {
		opts.ReferenceName = plumbing.NewBranchReferenceName(ref)
	}
	r, err := git.PlainCloneContext(ctx, dest, false, opts)
	if err != nil && ref != "" && errors.Is(err, git.NoMatchingRefSpecError{}) {
		// Not a branch: try a tag.
		opts.ReferenceName = plumbing.NewTagReferenceName(ref)
		r, err = git.PlainCloneContext(ctx, dest, false, opts)
	}
	if err != nil {
		return Revision{}, err
	}
	head, err := r.Head()
	if err != nil {
		return Revision{}, err
	}
	c, err := r.CommitObject(head.Hash())
	if err != nil {
		return Revision{}, err
	}
	return revision(c), nil
}
