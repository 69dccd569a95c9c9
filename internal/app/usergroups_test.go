package app

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/testkit"
)

// A story account with a user group nobody declared, "ops-admins", giving
// alice (declared: Domain DNS) Administrator on the whole account.
func groupStory(t *testing.T, tune ...func(*fake.Options)) *e2e {
	t.Helper()
	o := fake.Options{Token: testkit.Token, AccountName: "Production"}
	for _, f := range tune {
		f(&o)
	}
	e := newE2EWith(t, o)
	if _, err := e.Fake.PutUserGroup(fake.UserGroupSpec{Name: "ops-admins", Members: []string{"alice@example.com"},
		Access: []desired.Access{{Role: "Administrator", Resource: testkit.WholeAccount}}}); err != nil {
		t.Fatal(err)
	}
	e.Fake.ResetRequests()
	return e
}

// Access through an undeclared user group shows in the plan, in every
// format; it is reported (prune_user_groups off), and apply leaves it.
func TestUserGroupAccessReported(t *testing.T) {
	t.Parallel()
	e := groupStory(t)
	_, out, _ := e.run("plan", "--repo", e.Repo)
	want := "alice@example.com holds access the repository does not declare, via user group ops-admins (not managed: prune_user_groups is off)\n      = Administrator on account:*"
	if !strings.Contains(out, want) {
		t.Errorf("plan text lacks the group access:\n%s", out)
	}
	_, out, _ = e.run("plan", "--repo", e.Repo, "--format", "json")
	p := planJSONOf(t, out)
	if g := p.Accounts[0].GroupAccess; len(g) != 1 || g[0].Email != "alice@example.com" || g[0].Group != "ops-admins" || g[0].Access[0].Role != "Administrator" {
		t.Errorf("json group_access %+v", g)
	}
	_, out, _ = e.run("plan", "--repo", e.Repo, "--format", "markdown")
	if !strings.Contains(out, "alice@example.com holds Administrator on account:\\* via user group ops-admins") {
		t.Errorf("markdown lacks the group access:\n%s", out)
	}
	if code, out, _ := e.run("apply", "--repo", e.Repo); code != ExitOK {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	if g := e.Fake.UserGroups(); len(g[0].Members) != 1 {
		t.Errorf("apply changed the unmanaged group: %+v", g)
	}
}

// With prune_user_groups, apply takes the member out of the group (and
// reads it back); the next plan is empty. The same plan comes whether
// member answers list inherited policies or not.
func TestUserGroupPruned(t *testing.T) {
	t.Parallel()
	for _, inherited := range []bool{false, true} {
		e := groupStory(t, func(o *fake.Options) { o.InheritedPolicies = inherited })
		e.Commit("prune user groups", map[string]string{"providers.yaml": strings.Replace(e.ReadFile("providers.yaml"), "max_removals: 3}", "max_removals: 3, prune_user_groups: true}", 1)})
		_, out, _ := e.run("plan", "--repo", e.Repo, "--format", "json")
		got := changesOf(planJSONOf(t, out))
		want := []string{"remove stranger@example.com", "leave_group alice@example.com", "update carol@example.com", "invite dave@example.com", "invite erin@example.com"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("inherited %v: plan (-want +got):\n%s", inherited, diff)
		}
		code, out, _ := e.run("apply", "--repo", e.Repo)
		if code != ExitOK || !strings.Contains(out, "- take alice@example.com out of user group ops-admins") {
			t.Fatalf("apply: exit %d\n%s", code, out)
		}
		if g := e.Fake.UserGroups(); len(g[0].Members) != 0 {
			t.Errorf("alice still in the group: %+v", g)
		}
		if code, out, _ := e.run("plan", "--repo", e.Repo, "--detailed-exitcode"); code != ExitOK {
			t.Errorf("second plan: exit %d\n%s", code, out)
		}
	}
}

// Super Administrator through an undeclared group is denied by the
// built-in guardrail, unless the plan takes the member out of the group.
func TestSuperAdminThroughAGroupDenied(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	if _, err := e.Fake.PutUserGroup(fake.UserGroupSpec{Name: "break-glass", Members: []string{"alice@example.com"},
		Access: []desired.Access{{Role: "Super Administrator - All Privileges", Resource: testkit.WholeAccount}}}); err != nil {
		t.Fatal(err)
	}
	e.Fake.ResetRequests()
	code, out, _ := e.run("apply", "--repo", e.Repo)
	if code != ExitDenied || !strings.Contains(out, `alice@example.com holds "Super Administrator - All Privileges" on the whole account of prod through user group break-glass`) {
		t.Fatalf("apply: exit %d, want 3 and the denial\n%s", code, out)
	}
	if w := e.Writes(); len(w) != 0 {
		t.Errorf("a denied apply wrote %v", w)
	}
	e.Commit("prune user groups", map[string]string{"providers.yaml": strings.Replace(e.ReadFile("providers.yaml"), "max_removals: 3}", "max_removals: 3, prune_user_groups: true}", 1)})
	if code, out, _ := e.run("apply", "--repo", e.Repo); code != ExitOK {
		t.Fatalf("apply with prune_user_groups: exit %d\n%s", code, out)
	}
	if g := e.Fake.UserGroups(); len(g[0].Members) != 0 {
		t.Errorf("alice still in break-glass: %+v", g)
	}
}

// A token that may not read user groups does not fail the plan: it says
// plainly what was not checked.
func TestUserGroupsNotReadable(t *testing.T) {
	t.Parallel()
	e := groupStory(t)
	e.Fake.Fail(fake.Failure{Method: "GET", Path: "/accounts/" + e.Fake.AccountID() + "/iam/user_groups", Status: http.StatusForbidden})
	code, out, _ := e.run("plan", "--repo", e.Repo)
	if code != ExitOK || !strings.Contains(out, "? user groups not checked: the token may not read them (403 Forbidden): access through user groups was not checked") {
		t.Errorf("plan: exit %d\n%s", code, out)
	}
	_, out, _ = e.run("plan", "--repo", e.Repo, "--format", "json")
	if nc := planJSONOf(t, out).Accounts[0].NotChecked; len(nc) != 1 || !strings.HasPrefix(nc[0], "user groups not checked") {
		t.Errorf("json not_checked %v", nc)
	}
}

// The organization's Super Administrators are reported, never written;
// without organization_id the plan says they were not checked.
func TestOrganizationSuperAdmins(t *testing.T) {
	t.Parallel()
	const org = "4536bcfad5faccb111b47003c79917fa"
	e := newE2EWith(t, fake.Options{Token: testkit.Token, AccountName: "Production", OrganizationID: org, APIKey: "key-not-a-secret-0123", Email: "ops@example.com"})
	e.Fake.AddOrgMember("cto@example.com", "active")
	_, out, _ := e.run("plan", "--repo", e.Repo)
	if !strings.Contains(out, "? organization "+org+" not checked: this account belongs to an organization") {
		t.Errorf("plan without organization_id:\n%s", out)
	}
	e.Commit("org", map[string]string{"providers.yaml": strings.Replace(e.ReadFile("providers.yaml"), "config: {account_id: ", "config: {organization_id: "+org+", account_id: ", 1)})
	// A token may not list the organization: not checked, said plainly.
	if _, out, _ := e.run("plan", "--repo", e.Repo); !strings.Contains(out, "? organization members not checked: the credentials may not read them (403 Forbidden)") {
		t.Errorf("plan with a token:\n%s", out)
	}
	// The Global API key reads them.
	env := e.env("plan", "--repo", e.Repo, "--format", "json")
	vars := map[string]string{"CLOUDFLARE_API_URL": testkit.APIURL, "CLOUDFLARE_API_KEY": "key-not-a-secret-0123", "CLOUDFLARE_EMAIL": "ops@example.com"}
	env.Getenv = func(k string) string { return vars[k] }
	var stdout strings.Builder
	env.Stdout = &stdout
	Run(t.Context(), env)
	if p := planJSONOf(t, stdout.String()); !cmp.Equal(p.Accounts[0].OrgAdmins, []string{"cto@example.com"}) || len(p.Accounts[0].NotChecked) != 0 {
		t.Errorf("organization_super_admins %v, not_checked %v\n%s", p.Accounts[0].OrgAdmins, p.Accounts[0].NotChecked, stdout.String())
	}
}
