package app

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cfaccess/reconciler/internal/doctor"
	"github.com/cfaccess/reconciler/internal/testkit"
)

// doctor against a healthy account: exit 0, every check but the write
// one ✓, and nothing but GETs on the account's request log.
func TestDoctorHealthy(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	dir := t.TempDir()
	code, out, errOut := e.run("doctor", "--repo", e.Repo, "-o", "json", "--record", dir)
	if code != ExitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	var res doctorResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	marks := map[string]doctor.Mark{}
	for _, f := range res.Checks {
		marks[f.Check] = f.Mark
		if f.Mark != doctor.OK && f.Check != "write members" {
			t.Errorf("%s: %s %s", f.Check, f.Mark, f.Detail)
		}
	}
	for _, want := range []string{"declarations", "credentials", "account", "members", "permission groups", "role catalogue", "resource groups", "user groups", "audit log", "rate limit", "clock"} {
		if _, ok := marks[want]; !ok {
			t.Errorf("no %s check in %s", want, out)
		}
	}
	xs, err := doctor.Load(dir)
	if err != nil || len(xs) != res.Requests || res.Recording != dir {
		t.Errorf("recorded %d exchanges (%v) of %d requests in %q", len(xs), err, res.Requests, res.Recording)
	}
	for _, x := range xs {
		if b := string(x.Body) + x.Path; strings.Contains(b, "alice@") || strings.Contains(b, testkit.Token) {
			t.Errorf("%s %s: an email or the token in the recording", x.Method, x.Path)
		}
	}
	reqs := e.Fake.Requests()
	if len(reqs) == 0 || res.Requests != len(reqs) || strings.Join(res.Methods, ",") != "GET" {
		t.Errorf("%d requests reported (%v), %d served", res.Requests, res.Methods, len(reqs))
	}
	for _, r := range reqs {
		if r.Method != "GET" {
			t.Errorf("doctor sent %s %s", r.Method, r.Path)
		}
	}
}

// Before import, doctor checks an account by its id alone.
func TestDoctorWithoutARepository(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	if code, out, _ := e.run("doctor", "--account-id", e.Fake.AccountID()); code != ExitOK || strings.Contains(out, "declarations") || !strings.Contains(out, "✓ members") {
		t.Errorf("doctor --account-id, without a repository: exit %d\n%s", code, out)
	}
}

// A role renamed by Cloudflare is one the release lacks and one the
// account lacks: doctor names both, and the declarations that use the old
// name fail, at their file and line.
func TestDoctorCatalogue(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.Fake.RenameRole("Billing", "Billing Admin")
	e.Fake.RenameRole("Administrator Read Only", "Administrator Read-Only")
	code, out, _ := e.run("doctor", "--repo", e.Repo)
	for _, want := range []string{
		"! role catalogue       2 roles this release does not know: Administrator Read-Only, Billing Admin; 2 roles this release knows that the account does not list: Administrator Read Only, Billing",
		`✗ declarations         roles.yaml:3`,
		`role "Administrator Read Only" does not exist in Cloudflare account`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in\n%s", want, out)
		}
	}
	if code != ExitError {
		t.Errorf("exit %d, want %d", code, ExitError)
	}
}

// A bad token: ✗ credentials with the fix, a non-zero exit, and no read
// attempted after the refusal.
func TestDoctorBadToken(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	env := e.env("doctor", "--repo", e.Repo)
	env.Getenv = func(k string) string {
		if k == "CLOUDFLARE_API_TOKEN" {
			return "wrong-token-0123456789"
		}
		return e.Getenv(testkit.APIURL)(k)
	}
	var out strings.Builder
	env.Stdout = &out
	code := Run(context.Background(), env)
	if code == ExitOK || !strings.Contains(out.String(), "✗ credentials") || !strings.Contains(out.String(), "fix: check the token's variable") ||
		strings.Contains(out.String(), "members ") || strings.Contains(out.String(), "wrong-token-0123456789") {
		t.Errorf("exit %d\n%s", code, out.String())
	}
	for _, r := range e.Fake.Requests() {
		if !strings.Contains(r.Path, "/tokens/verify") {
			t.Errorf("after a refused token, doctor sent %s %s", r.Method, r.Path)
		}
	}
}
