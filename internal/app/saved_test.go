package app

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/report"
	"github.com/cfaccess/reconciler/internal/testkit"
)

// plan -out FILE, then apply FILE: exactly the reviewed plan is applied;
// a member changed out of band in between makes apply FILE refuse, say
// what changed, and write nothing.
func TestSavedPlan(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	file := filepath.Join(t.TempDir(), "cfaccess.plan")
	if code, out, errOut := e.run("plan", "--repo", e.Repo, "-out", file, "--format", "json"); code != ExitOK {
		t.Fatalf("plan -out: exit %d\n%s%s", code, out, errOut)
	}
	// Someone changes a member in the dashboard before the apply.
	e.Put("alice@example.com", false, desired.Access{Role: "Domain DNS", Resource: testkit.Zone}, desired.Access{Role: "Billing", Resource: testkit.WholeAccount})
	before := e.Members()
	e.Fake.ResetRequests()
	code, out, errOut := e.run("apply", "--repo", e.Repo, file)
	if code != ExitError || !strings.Contains(errOut, "no longer applies") ||
		!strings.Contains(errOut, "prod: live account changed since the plan: + member alice@example.com accepted: Billing on account:*, Domain DNS on zone:example.com") ||
		!strings.Contains(errOut, "prod: the plan would now differ: + update alice@example.com -Billing on account:*") {
		t.Errorf("apply of a stale plan: exit %d\n%s%s", code, out, errOut)
	}
	for _, r := range e.Fake.Requests() {
		if r.Method != "GET" {
			t.Errorf("apply of a stale plan wrote: %s %s", r.Method, r.Path)
		}
	}
	if !equalMembers(before, e.Members()) {
		t.Error("the account changed")
	}

	// Plan again, and apply that: done as planned.
	if code, _, errOut := e.run("plan", "--repo", e.Repo, "--out", file); code != ExitOK {
		t.Fatalf("plan --out: exit %d %s", code, errOut)
	}
	planned := changesOf(planJSONOf(t, mustRun(t, e, "plan", "--repo", e.Repo, "--format", "json")))
	code, out, errOut = e.run("apply", "--repo", e.Repo, file, "--format", "json")
	if got := changesOf(planJSONOf(t, out)); code != ExitOK || !slices.Equal(got, planned) {
		t.Errorf("apply FILE: exit %d, applied %v, planned %v\n%s", code, got, planned, errOut)
	}
	if code, _, errOut := e.run("apply", "--repo", e.Repo, filepath.Join(t.TempDir(), "none")); code != ExitError || !strings.Contains(errOut, "read the saved plan") {
		t.Errorf("apply of a missing file: exit %d %s", code, errOut)
	}
}

func mustRun(t *testing.T, e *e2e, args ...string) string {
	t.Helper()
	code, out, errOut := e.run(args...)
	if code != ExitOK {
		t.Fatalf("%v: exit %d\n%s", args, code, errOut)
	}
	return out
}

func equalMembers(a, b map[string]string) bool { return maps.Equal(a, b) }

// A plan saved for one provider is applied for that provider; -out as
// the value of --out names a file.
func TestSavedPlanProvider(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	file := filepath.Join(t.TempDir(), "p.plan")
	mustRun(t, e, "plan", "--repo", e.Repo, "--provider", "prod", "-out", file)
	if code, out, errOut := e.run("apply", "--repo", e.Repo, file); code != ExitOK {
		t.Errorf("apply FILE without --provider: exit %d\n%s%s", code, out, errOut)
	}
	mustRun(t, e, "plan", "--repo", e.Repo, "--provider", "prod", "-out", file)
	if code, _, errOut := e.run("apply", "--repo", e.Repo, "--provider", "other", file); code != ExitError || !strings.Contains(errOut, "same --provider") {
		t.Errorf("apply FILE with another --provider: exit %d %s", code, errOut)
	}
	if got := terraformArgs([]string{"plan", "--out", "-out"}); got[2] != "-out" {
		t.Errorf("the value of --out rewritten: %v", got)
	}
}

// The saved plan is not a way in: --out refuses a symbolic link (its
// target untouched, its mode too) and leaves a file only its owner reads;
// apply FILE refuses a file too large to be a plan before reading it
// whole, and a plan made for another account id.
func TestSavedPlanFileAbuse(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	dir := t.TempDir()
	target := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(target, []byte("ssh-ed25519 AAAA precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "cfaccess.plan")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := e.run("plan", "--repo", e.Repo, "--out", link); code != ExitError || !strings.Contains(errOut, "is a symbolic link: refused") {
		t.Errorf("--out a symlink: exit %d %s", code, errOut)
	}
	if b, err := os.ReadFile(target); err != nil || string(b) != "ssh-ed25519 AAAA precious\n" {
		t.Errorf("the link's target changed: %q %v", b, err)
	}
	if info, _ := os.Stat(target); info.Mode().Perm() != 0o644 {
		t.Errorf("the link's target's mode changed: %v", info.Mode())
	}
	plain := filepath.Join(dir, "plain.plan")
	if code, _, errOut := e.run("plan", "--repo", e.Repo, "--out", plain); code != ExitOK {
		t.Fatalf("--out: exit %d %s", code, errOut)
	}
	if info, err := os.Stat(plain); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("the saved plan's mode: %v %v", info.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("files left in the directory: %v", entries)
	}

	huge := filepath.Join(dir, "huge.plan")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(report.MaxSavedPlan + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if code, _, errOut := e.run("apply", "--repo", e.Repo, huge); code != ExitError || !strings.Contains(errOut, "is larger than 64 MiB") {
		t.Errorf("apply of a huge file: exit %d %s", code, errOut)
	}

	// The same provider, now naming another account: refused, saying so.
	b, err := os.ReadFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	other := strings.ReplaceAll(string(b), e.Fake.AccountID(), "0123456789abcdef0123456789abcdef")
	if err := os.WriteFile(plain, []byte(other), 0o600); err != nil {
		t.Fatal(err)
	}
	e.Fake.ResetRequests()
	if code, _, errOut := e.run("apply", "--repo", e.Repo, plain); code != ExitError ||
		!strings.Contains(errOut, "prod: the plan was made for account 0123456789abcdef0123456789abcdef, the repository now names account "+e.Fake.AccountID()) {
		t.Errorf("apply of a plan for another account: exit %d %s", code, errOut)
	}
	if w := e.Writes(); len(w) != 0 {
		t.Errorf("wrote %v", w)
	}
}
