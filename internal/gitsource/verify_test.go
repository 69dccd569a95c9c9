package gitsource

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// signedRepo makes a repository whose first commit is signed with a fresh
// OpenPGP key (gpg) and whose second is not; it returns the repository,
// the armored public key file, and a helper to commit.
func signedRepo(t *testing.T) (repo, pubKey string, commit func(sign bool, msg string)) {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Skip("gpg not installed")
	}
	home := t.TempDir()
	gnupg := filepath.Join(home, "gnupg")
	if err := os.MkdirAll(gnupg, 0o700); err != nil {
		t.Fatal(err)
	}
	repo = filepath.Join(home, "repo")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "GNUPGHOME="+gnupg, "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com", "GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com")
	run := func(dir string, name string, args ...string) []byte {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return out
	}
	run(home, "gpg", "--batch", "--passphrase", "", "--quick-gen-key", "Ada <ada@example.com>", "ed25519", "sign", "never")
	pub := run(home, "gpg", "--armor", "--export", "ada@example.com")
	pubKey = filepath.Join(home, "trusted.asc")
	if err := os.WriteFile(pubKey, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	run(repo, "git", "init", "-q", "-b", "main")
	commit = func(sign bool, msg string) {
		args := []string{"-c", "user.signingkey=ada@example.com", "-c", "gpg.program=gpg", "commit", "-q", "--allow-empty", "-m", msg}
		if sign {
			args = append(args, "-S")
		}
		run(repo, "git", args...)
	}
	return repo, pubKey, commit
}

func TestRemoteVerifiesSignatures(t *testing.T) {
	t.Parallel()
	repo, trusted, commit := signedRepo(t)
	commit(true, "signed")
	r := &Remote{URL: "file://" + repo, Work: t.TempDir(), TrustedKeys: trusted}
	_, err := r.Sync(t.Context())
	if err != nil {
		t.Fatalf("signed commit refused: %v", err)
	}
	good := r.Dir()
	commit(false, "unsigned")
	if _, err := r.Sync(t.Context()); !errors.Is(err, ErrUnverified) {
		t.Fatalf("unsigned commit: %v, want ErrUnverified", err)
	}
	if r.Dir() != good {
		t.Error("the checkout moved to the unverified commit")
	}
	// A key that is not trusted: another key ring.
	other, _, otherCommit := signedRepo(t)
	otherCommit(true, "signed by someone else")
	r2 := &Remote{URL: "file://" + other, Work: t.TempDir(), TrustedKeys: trusted}
	if _, err := r2.Sync(t.Context()); !errors.Is(err, ErrUnverified) {
		t.Errorf("commit signed by an untrusted key: %v, want ErrUnverified", err)
	}
}
