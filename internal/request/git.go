package request

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Git runs the git command in a clone of the access repository: the
// user's own git, so that their identity, commit signing, hooks and
// credentials apply to the request as to any change of theirs.
type Git struct {
	Dir string
	// Env is added to git's environment (tests: a fixed identity).
	Env []string
}

func (g Git) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = g.Dir
	cmd.Env = append(os.Environ(), g.Env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = strings.TrimSpace(out.String())
		}
		return out.String(), fmt.Errorf("git %s: %s", args[0], msg)
	}
	return out.String(), nil
}

// Clean checks that the work tree has no changes: a request commits its
// own change alone.
func (g Git) Clean(ctx context.Context) error {
	out, err := g.run(ctx, "status", "--porcelain")
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) != "" {
		return errors.New("the work tree has uncommitted changes: commit or stash them first, so that the request commits its grant alone")
	}
	return nil
}

// Branch is the branch checked out.
func (g Git) Branch(ctx context.Context) (string, error) {
	out, err := g.run(ctx, "symbolic-ref", "--short", "HEAD")
	if err != nil {
		return "", errors.New("no branch is checked out (a detached HEAD): check out the branch the daemon follows")
	}
	return strings.TrimSpace(out), nil
}

// Commit writes the edit and commits it: on a new branch from the one
// checked out (branch ""; the branch stays checked out), or on the
// branch checked out. On any failure the work tree, the branch checked
// out and the branches are as before.
func (g Git) Commit(ctx context.Context, e Edit, branch, message string) (err error) {
	from, err := g.Branch(ctx)
	if err != nil {
		return err
	}
	if branch != "" {
		if _, err := g.run(ctx, "switch", "--quiet", "-c", branch); err != nil {
			return err
		}
	}
	path := filepath.Join(g.Dir, filepath.FromSlash(e.Path))
	var before []byte
	if !e.Created {
		if before, err = os.ReadFile(path); err != nil {
			return err
		}
	}
	defer func() {
		if err == nil {
			return
		}
		// Undo: the file as it was, the branch checked out, the new
		// branch gone.
		if e.Created {
			_ = os.Remove(path)
		} else {
			_ = os.WriteFile(path, before, 0o644)
		}
		_, _ = g.run(ctx, "reset", "--quiet")
		if branch != "" {
			_, _ = g.run(ctx, "switch", "--quiet", from)
			_, _ = g.run(ctx, "branch", "--quiet", "-D", branch)
		}
	}()
	if err = os.WriteFile(path, e.Data, 0o644); err != nil {
		return err
	}
	if _, err = g.run(ctx, "add", "--", e.Path); err != nil {
		return err
	}
	_, err = g.run(ctx, "commit", "--quiet", "-m", message)
	return err
}

// Switch checks a branch out.
func (g Git) Switch(ctx context.Context, branch string) error {
	_, err := g.run(ctx, "switch", "--quiet", branch)
	return err
}

// Push pushes a branch to origin.
func (g Git) Push(ctx context.Context, branch string) error {
	_, err := g.run(ctx, "push", "--quiet", "origin", "refs/heads/"+branch+":refs/heads/"+branch)
	return err
}

// Show is the last commit of a branch, with its diff.
func (g Git) Show(ctx context.Context, branch string) (string, error) {
	return g.run(ctx, "show", "--stat", "--patch", "--format=commit %H%nAuthor: %an <%ae>%n%n%B", branch)
}

// Origin is the URL of the remote origin ("" when none).
func (g Git) Origin(ctx context.Context) string {
	out, err := g.run(ctx, "remote", "get-url", "origin")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}
