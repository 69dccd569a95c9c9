package gitsource

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// gitRepo makes a real repository with the git CLI: one commit on main,
// tagged v1, then a second commit.
func gitRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(cmd.Environ(), "GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com", "GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	run("init", "-q", "-b", "main")
	run("commit", "-q", "--allow-empty", "-m", "first\n\nbody")
	run("tag", "v1")
	run("commit", "-q", "--allow-empty", "-m", "second")
	return dir
}

func TestCloneAndHead(t *testing.T) {
	t.Parallel()
	src := gitRepo(t)
	url := "file://" + src
	for _, tc := range []struct{ ref, subject string }{{"", "second"}, {"main", "second"}, {"v1", "first"}} {
		t.Run(tc.ref, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "c")
			rev, err := Clone(t.Context(), url, tc.ref, dest, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rev.Subject != tc.subject || rev.Author != "Ada <ada@example.com>" || len(rev.SHA) != 40 {
				t.Errorf("revision = %+v", rev)
			}
			head, ok := Head(dest)
			if !ok || head != rev {
				t.Errorf("Head = %+v %v, want %+v", head, ok, rev)
			}
		})
	}
	if _, err := Clone(t.Context(), url, "nope", filepath.Join(t.TempDir(), "x"), nil); err == nil {
		t.Error("cloned a missing ref")
	}
	if _, ok := Head(t.TempDir()); ok {
		t.Error("Head of a plain directory")
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://user:hunter2@git.example.com/access.git":                      "https://***@git.example.com/access.git",
		"https://git.example.com/access.git?private_token=hunter2":             "https://git.example.com/access.git?***",
		"https://u:hunter2@git.example.com/a.git?x=hunter2&private_token=h2#f": "https://***@git.example.com/a.git?***",
		"https://git.example.com/access.git?glpat-hunter2":                     "https://git.example.com/access.git?***",
		"https://git.example.com/access.git":                                   "https://git.example.com/access.git",
		"git@github.com:org/access.git":                                        "git@github.com:org/access.git",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWatch(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	v1 := filepath.Join(parent, "rev1")
	v2 := filepath.Join(parent, "rev2")
	for _, d := range []string{v1, filepath.Join(v1, "grants"), v2} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(parent, "current")
	if err := os.Symlink(v1, link); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	fired := make(chan struct{}, 10)
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Watch(ctx, link, 20*time.Millisecond, func() { fired <- struct{}{} }, OnReady(func() { close(ready) }))
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Watch returned before it was ready: %v", err)
	}
	wait := func(what string) {
		t.Helper()
		select {
		case <-fired:
		case <-time.After(3 * time.Second):
			t.Fatalf("no trigger after %s", what)
		}
	}
	if err := os.WriteFile(filepath.Join(v1, "grants", "a.yaml"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	wait("a write in a subdirectory")
	// git-sync's swap: a new symlink renamed over the old one.
	tmp := filepath.Join(parent, "current.tmp")
	if err := os.Symlink(v2, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
	wait("the symlink swap")
	if err := os.WriteFile(filepath.Join(v2, "b.yaml"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	wait("a write in the new tree")
}

// A checkout is modified when a tracked file changed or a declaration
// file (YAML, Rego) is untracked; an untracked plan.json is not.
func TestHeadModified(t *testing.T) {
	t.Parallel()
	dir := gitRepo(t)
	check := func(what string, want bool) {
		t.Helper()
		if rev, ok := Head(dir); !ok || rev.Modified != want {
			t.Errorf("%s: modified %v, want %v", what, rev.Modified, want)
		}
	}
	check("clean", false)
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("plan.json", "{}")
	check("an untracked plan.json", false)
	write("sneak.yaml", "grants: []\n")
	check("an untracked grants file", true)
	if !IsRepo(dir) || IsRepo(t.TempDir()) {
		t.Error("IsRepo")
	}
}
