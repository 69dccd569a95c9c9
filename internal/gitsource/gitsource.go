// Package gitsource fetches access repositories with go-git: a shallow,
// single-branch clone of a URL, or the revision of a local checkout. The
// daemon (issue 5) extends it with fetches, webhooks and watches.
package gitsource

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// Revision names a commit for plans and audit records.
type Revision struct {
	SHA     string
	Author  string // "Name <email>"
	Subject string
}

// IsURL reports whether repo names a remote repository rather than a
// local directory.
func IsURL(repo string) bool {
	return strings.Contains(repo, "://") || strings.HasPrefix(repo, "git@")
}

// Redact drops credentials from a repository URL, for messages.
func Redact(repo string) string {
	u, err := url.Parse(repo)
	if err != nil || u.User == nil {
		return repo
	}
	u.User = nil
	scheme, rest, _ := strings.Cut(u.String(), "://")
	return scheme + "://***@" + rest
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
		return Revision{SHA: ref.Hash().String()}, true
	}
	return revision(c), true
}

func revision(c *object.Commit) Revision {
	subject, _, _ := strings.Cut(c.Message, "\n")
	return Revision{SHA: c.Hash.String(), Author: c.Author.Name + " <" + c.Author.Email + ">", Subject: subject}
}

// Clone clones ref (a branch or tag; "" for the default branch) of repo
// into dest, shallow and single-branch, and returns the commit checked out.
func Clone(ctx context.Context, repo, ref, dest string, auth transport.AuthMethod) (Revision, error) {
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
		return Revision{}, fmt.Errorf("clone %s: %w", Redact(repo), err)
	}
	head, err := r.Head()
	if err != nil {
		return Revision{}, fmt.Errorf("clone %s: %w", Redact(repo), err)
	}
	c, err := r.CommitObject(head.Hash())
	if err != nil {
		return Revision{}, fmt.Errorf("clone %s: %w", Redact(repo), err)
	}
	return revision(c), nil
}
