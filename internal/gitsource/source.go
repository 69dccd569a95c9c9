package gitsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/cfaccess/reconciler/internal/desired"
)

// defaultMaxSize bounds the local copy of a followed repository: an access
// repository of YAML is a few MiB; a larger one is refused rather than
// allowed to fill the disk (and, checked out, the memory of readers).
const defaultMaxSize = 256 << 20

// Remote is a Git repository the daemon follows. It keeps one local store
// under Work and fetches into it incrementally; each revision is checked
// out into a new directory that replaces the previous one only once
// complete, so no half-updated tree is ever read. It can read any fetched
// revision: the daemon walks back history when the head is refused, and
// checks that a new head descends from the revision last applied.
type Remote struct {
	URL  string
	Ref  string
	Work string // parent directory for the store and checkouts
	// Path is the sub-directory holding the declarations ("" for the
	// root), for Read.
	Path string
	// TokenFile holds an HTTPS token, re-read at every Fetch.
	TokenFile string
	// SSHKeyFile and KnownHosts authenticate ssh:// and git@ URLs.
	SSHKeyFile string
	KnownHosts string
	// TrustedKeys, when set, is an armored OpenPGP key ring: Verify
	// accepts only commits signed by one of its keys.
	TrustedKeys string
	// MaxSize bounds the local store, in bytes (defaultMaxSize).
	MaxSize int64

	store *git.Repository
	dir   string // current checkout
}

// ErrUnverified marks a commit that is unsigned or signed by an untrusted
// key.
var ErrUnverified = errors.New("commit signature not trusted")

// Read checks a fetched revision out and reads its declarations.
func (r *Remote) Read(_ context.Context, rev Revision) (*desired.Source, desired.Diagnostics, error) {
	dir, err := r.Checkout(rev.SHA)
	if err != nil {
		return nil, nil, err
	}
	return desired.ReadDir(dir, r.Path)
}

// Key names the followed repository and ref, without credentials: where
// the state file remembers the revision last applied.
func (r *Remote) Key() string { return Redact(r.URL) + "#" + r.Ref }

// Dir is the current checkout ("" before the first Checkout).
func (r *Remote) Dir() string { return r.dir }

// Sync fetches, verifies and checks out the newest commit of Ref. On
// error the previous checkout stays in place.
func (r *Remote) Sync(ctx context.Context) (Revision, error) {
	rev, err := r.Fetch(ctx)
	if err != nil {
		return rev, err
	}
	if err := r.Verify(rev.SHA); err != nil {
		return rev, err
	}
	if _, err := r.Checkout(rev.SHA); err != nil {
		return rev, err
	}
	return rev, nil
}

// Fetch brings the newest commits of Ref into the local store and returns
// the head revision; nothing is checked out.
func (r *Remote) Fetch(ctx context.Context) (Revision, error) {
	clean, urlAuth, secrets := splitCredentials(r.URL)
	auth, err := r.auth()
	if err != nil {
		return Revision{}, err
	}
	if auth == nil {
		auth = urlAuth
	}
	if err := r.open(clean); err != nil {
		return Revision{}, err
	}
	remote, err := r.store.Remote("origin")
	if err != nil {
		return Revision{}, err
	}
	refs, err := remote.ListContext(ctx, &git.ListOptions{Auth: auth})
	if err != nil {
		return Revision{}, scrub("list the references of", r.URL, err, secrets...)
	}
	src, err := r.pick(refs)
	if err != nil {
		return Revision{}, fmt.Errorf("%s: %w", Redact(r.URL), err)
	}
	spec := config.RefSpec("+" + src.String() + ":refs/remotes/origin/followed")
	err = r.store.FetchContext(ctx, &git.FetchOptions{RemoteName: "origin", RefSpecs: []config.RefSpec{spec},
		Auth: auth, Tags: git.NoTags, Force: true})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return Revision{}, scrub("fetch", r.URL, err, secrets...)
	}
	if size := dirSize(filepath.Join(r.Work, "store")); size > r.maxSize() {
		return Revision{}, fmt.Errorf("%s: the repository takes %s, more than %s: an access repository holds declarations, not large files", Redact(r.URL), bytesOf(size), bytesOf(r.maxSize()))
	}
	ref, err := r.store.Reference("refs/remotes/origin/followed", true)
	if err != nil {
		return Revision{}, err
	}
	c, err := r.store.CommitObject(ref.Hash())
	if err != nil {
		return Revision{}, err
	}
	return revision(c), nil
}

func (r *Remote) maxSize() int64 {
	if r.MaxSize > 0 {
		return r.MaxSize
	}
	return defaultMaxSize
}

// open makes the local store on first use.
func (r *Remote) open(url string) error {
	if r.store != nil {
		return nil
	}
	path := filepath.Join(r.Work, "store")
	repo, err := git.PlainInit(path, true)
	if errors.Is(err, git.ErrRepositoryAlreadyExists) {
		repo, err = git.PlainOpen(path)
	}
	if err != nil {
		return fmt.Errorf("local store: %w", err)
	}
	if _, err := repo.Remote("origin"); errors.Is(err, git.ErrRemoteNotFound) {
		if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{url}}); err != nil {
			return err
		}
	}
	r.store = repo
	return nil
}

// pick finds the reference to follow: the branch or tag Ref, or the
// remote's default branch.
func (r *Remote) pick(refs []*plumbing.Reference) (plumbing.ReferenceName, error) {
	byName := map[plumbing.ReferenceName]*plumbing.Reference{}
	for _, ref := range refs {
		byName[ref.Name()] = ref
	}
	if r.Ref == "" {
		head := byName[plumbing.HEAD]
		if head == nil || head.Type() != plumbing.SymbolicReference {
			return "", errors.New("the remote names no default branch: give --ref")
		}
		return head.Target(), nil
	}
	for _, name := range []plumbing.ReferenceName{plumbing.NewBranchReferenceName(r.Ref), plumbing.NewTagReferenceName(r.Ref)} {
		if byName[name] != nil {
			return name, nil
		}
	}
	return "", fmt.Errorf("no branch or tag %q", r.Ref)
}

// Verify checks a commit's OpenPGP signature against TrustedKeys; without
// TrustedKeys every commit passes.
func (r *Remote) Verify(sha string) error {
	if r.TrustedKeys == "" {
		return nil
	}
	ring, err := os.ReadFile(r.TrustedKeys)
	if err != nil {
		return fmt.Errorf("read --trusted-keys: %w", err)
	}
	c, err := r.commit(sha)
	if err != nil {
		return err
	}
	if c.PGPSignature == "" {
		return fmt.Errorf("%w: %s is not signed", ErrUnverified, Short(sha))
	}
	if _, err := c.Verify(string(ring)); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrUnverified, Short(sha), err)
	}
	return nil
}

// Checkout writes a fetched revision's files into a new directory under
// Work and makes it the current one, removing the previous; on error the
// previous stays. Blobs are streamed to disk; the store is not changed.
func (r *Remote) Checkout(sha string) (string, error) {
	c, err := r.commit(sha)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(r.Work, "checkout-")
	if err != nil {
		return "", err
	}
	if err := writeTree(c, dir); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("check out %s: %w", Short(sha), err)
	}
	if r.dir != "" {
		os.RemoveAll(r.dir)
	}
	r.dir = dir
	return dir, nil
}

// writeTree writes a commit's files under dir: regular files, and symlinks
// as symlinks (the reader refuses those leaving the tree).
func writeTree(c *object.Commit, dir string) error {
	tree, err := c.Tree()
	if err != nil {
		return err
	}
	return tree.Files().ForEach(func(f *object.File) error {
		if !filepath.IsLocal(f.Name) {
			return fmt.Errorf("path %q leaves the repository", f.Name)
		}
		dst := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if f.Mode == filemode.Symlink {
			target, err := f.Contents()
			if err != nil {
				return err
			}
			return os.Symlink(target, dst)
		}
		rd, err := f.Reader()
		if err != nil {
			return err
		}
		defer rd.Close()
		out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, rd); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

// Descends reports whether sha is ancestor, or descends from it.
func (r *Remote) Descends(sha, ancestor string) (bool, error) {
	if sha == ancestor {
		return true, nil
	}
	c, err := r.commit(sha)
	if err != nil {
		return false, err
	}
	a, err := r.commit(ancestor)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return false, nil // not in the followed history at all
	}
	if err != nil {
		return false, err
	}
	return a.IsAncestor(c)
}

// FirstParents returns up to n revisions from sha back along first
// parents, sha first.
func (r *Remote) FirstParents(sha string, n int) ([]Revision, error) {
	c, err := r.commit(sha)
	if err != nil {
		return nil, err
	}
	var out []Revision
	for len(out) < n {
		out = append(out, revision(c))
		if c.NumParents() == 0 {
			break
		}
		if c, err = c.Parent(0); err != nil {
			return out, err
		}
	}
	return out, nil
}

func (r *Remote) commit(sha string) (*object.Commit, error) {
	if r.store == nil {
		return nil, errors.New("nothing fetched yet")
	}
	return r.store.CommitObject(plumbing.NewHash(sha))
}

func bytesOf(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// dirSize is the bytes of the files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
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

// Short is a commit's abbreviated SHA, for people (12 characters).
func Short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
