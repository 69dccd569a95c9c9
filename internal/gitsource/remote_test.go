package gitsource

import (
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRemoteFollows: one store fetched incrementally; each revision
// checked out whole into its own directory; ancestry and first-parent
// history; a rewritten history seen as not descending; the size bound.
func TestRemoteFollows(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = src
		cmd.Env = append(cmd.Environ(), "GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com", "GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	write := func(name, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git("init", "-q", "-b", "main")
	write("a.yaml", "one\n")
	write("roles/b.yaml", "two\n")
	git("add", "-A")
	git("commit", "-q", "-m", "first")
	first := git("rev-parse", "HEAD")

	r := &Remote{URL: "file://" + src, Work: t.TempDir()}
	rev, err := r.Fetch(t.Context())
	if err != nil || rev.SHA != first {
		t.Fatalf("Fetch = %+v, %v", rev, err)
	}
	dir, err := r.Checkout(rev.SHA)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "roles", "b.yaml")); string(b) != "two\n" {
		t.Errorf("checkout holds %q", b)
	}

	write("a.yaml", "one, changed\n")
	git("commit", "-q", "-am", "second")
	second := git("rev-parse", "HEAD")
	if rev, err = r.Fetch(t.Context()); err != nil || rev.SHA != second || rev.Subject != "second" {
		t.Fatalf("second Fetch = %+v, %v", rev, err)
	}
	if ok, err := r.Descends(second, first); !ok || err != nil {
		t.Errorf("Descends(second, first) = %v, %v", ok, err)
	}
	if revs, err := r.FirstParents(second, 50); err != nil || len(revs) != 2 || revs[1].SHA != first {
		t.Errorf("FirstParents = %+v, %v", revs, err)
	}
	newDir, err := r.Checkout(second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Error("the previous checkout was not removed")
	}
	if b, _ := os.ReadFile(filepath.Join(newDir, "a.yaml")); string(b) != "one, changed\n" {
		t.Errorf("second checkout holds %q", b)
	}

	// A force-push back to the first commit: it does not descend from
	// the second.
	git("reset", "-q", "--hard", first)
	if rev, err = r.Fetch(t.Context()); err != nil || rev.SHA != first {
		t.Fatalf("Fetch after the force-push = %+v, %v", rev, err)
	}
	if ok, _ := r.Descends(first, second); ok {
		t.Error("the rewritten head counts as descending from the revision it replaced")
	}

	// Too large: refused.
	noise := make([]byte, 64<<10)
	_, _ = rand.Read(noise)
	write("big.bin", string(noise))
	git("add", "-A")
	git("commit", "-q", "-m", "big")
	small := &Remote{URL: "file://" + src, Work: t.TempDir(), MaxSize: 16 << 10}
	if _, err := small.Fetch(t.Context()); err == nil || !strings.Contains(err.Error(), "more than 16 KiB") {
		t.Errorf("a store over MaxSize: %v", err)
	}
}
