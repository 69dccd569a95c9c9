package gitsource

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Remote is a Git repository the daemon follows. Each Sync makes a fresh
// shallow clone of Ref in a new directory under Work and removes the
// previous one: a small repository clones in milliseconds, and no
// half-updated worktree can ever be read.
type Remote struct {
	URL  string
	Ref  string
	Work string // parent directory for checkouts
	// TokenFile holds an HTTPS token, re-read at every Sync.
	TokenFile string
	// SSHKeyFile and KnownHosts authenticate ssh:// and git@ URLs.
	SSHKeyFile string
	KnownHosts string
	// TrustedKeys, when set, is an armored OpenPGP key ring: the commit
	// checked out must be signed by one of its keys.
	TrustedKeys string

	dir string // current checkout
}

// ErrUnverified marks a commit that is unsigned or signed by an untrusted
// key.
var ErrUnverified = errors.New("commit signature not trusted")

// Dir is the current checkout ("" before the first Sync).
func (r *Remote) Dir() string { return r.dir }

// Sync fetches the newest commit of Ref. On error the previous checkout
// stays in place.
func (r *Remote) Sync(ctx context.Context) (Revision, error) {
	auth, err := r.auth()
	if err != nil {
		return Revision{}, err
	}
	dir, err := os.MkdirTemp(r.Work, "checkout-")
	if err != nil {
		return Revision{}, err
	}
	rev, err := Clone(ctx, r.URL, r.Ref, dir, auth)
	if err == nil && r.TrustedKeys != "" {
		err = verify(dir, rev, r.TrustedKeys)
	}
	if err != nil {
		os.RemoveAll(dir)
		return rev, err
	}
	if r.dir != "" {
		os.RemoveAll(r.dir)
	}
	r.dir = dir
	return rev, nil
}

func (r *Remote) auth() (transport.AuthMethod, error) {
	switch {
	case r.TokenFile != "":
		b, err := os.ReadFile(r.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("read --git-token-file: %w", err)
		}
		return &githttp.BasicAuth{Username: "x-access-token", Password: strings.TrimSpace(string(b))}, nil
	case r.SSHKeyFile != "":
		keys, err := gitssh.NewPublicKeysFromFile("git", r.SSHKeyFile, "")
		if err != nil {
			return nil, fmt.Errorf("read --git-ssh-key-file: %w", err)
		}
		known := r.KnownHosts
		if known == "" {
			home, _ := os.UserHomeDir()
			known = filepath.Join(home, ".ssh", "known_hosts")
		}
		cb, err := knownhosts.New(known)
		if err != nil {
			return nil, fmt.Errorf("read known hosts %s: %w", known, err)
		}
		keys.HostKeyCallback = cb
		return keys, nil
	}
	return nil, nil
}

// verify checks the checked-out commit's OpenPGP signature against the
// trusted key ring.
func verify(dir string, rev Revision, keyRingFile string) error {
	ring, err := os.ReadFile(keyRingFile)
	if err != nil {
		return fmt.Errorf("read --trusted-keys: %w", err)
	}
	repo, err := git.PlainOpen(dir)
	if err != nil {
		return err
	}
	head, err := repo.Head()
	if err != nil {
		return err
	}
	c, err := repo.CommitObject(head.Hash())
	if err != nil {
		return err
	}
	if c.PGPSignature == "" {
		return fmt.Errorf("%w: %s is not signed", ErrUnverified, short(rev.SHA))
	}
	entity, err := c.Verify(string(ring))
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrUnverified, short(rev.SHA), err)
	}
	_ = entity
	return nil
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
