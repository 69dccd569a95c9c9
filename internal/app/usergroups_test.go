package app

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

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
	for _, inherited := range []string{"own policies only", "group's policies too"} {
		e := groupStory(t, func(o *fake.Options) { o.InheritedPolicies = inherited != "own policies only" })
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
// built-in guardrail: the changes that give access are held back, while
// those that take it away go on (an expiry must not wait on someone
// else's dashboard change); once the plan takes the member out of the
// group, everything applies. A protected member may keep it.
func TestSuperAdminThroughAGroupDenied(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	if _, err := e.Fake.PutUserGroup(fake.UserGroupSpec{Name: "break-glass", Members: []string{"alice@example.com", "owner@example.com"},
		Access: []desired.Access{{Role: "Super Administrator - All Privileges", Resource: testkit.WholeAccount}}}); err != nil {
		t.Fatal(err)
	}
	e.Fake.ResetRequests()
	code, out, _ := e.run("apply", "--repo", e.Repo)
	if code != ExitDenied || !strings.Contains(out, `alice@example.com holds "Super Administrator - All Privileges" on the whole account of prod through user group break-glass`) {
		t.Fatalf("apply: exit %d, want 3 and the denial\n%s", code, out)
	}
	if strings.Contains(out, "owner@example.com holds") {
		t.Errorf("the protected owner was denied:\n%s", out)
	}
	for _, w := range e.Writes() {
		if strings.HasPrefix(w, "POST") {
			t.Errorf("a change giving access was applied under the denial: %s", w)
		}
	}
	if e.HasMember("stranger@example.com") || strings.Contains(e.Members()["carol@example.com"], "Billing") {
		t.Errorf("removals were held back too: %v", e.Members())
	}
	if !strings.Contains(out, "held back") {
		t.Errorf("the held-back invitations are not shown:\n%s", out)
	}
	e.Commit("prune user groups", map[string]string{"providers.yaml": strings.Replace(e.ReadFile("providers.yaml"), "max_removals: 3}", "max_removals: 3, prune_user_groups: true}", 1)})
	if code, out, _ := e.run("apply", "--repo", e.Repo); code != ExitOK {
		t.Fatalf("apply with prune_user_groups: exit %d\n%s", code, out)
	}
	if g := e.Fake.UserGroups(); !cmp.Equal(g[0].Members, []string{"owner@example.com"}) {
		t.Errorf("break-glass members %v, want the protected owner alone", g[0].Members)
	}
	if !e.HasMember("dave@example.com") {
		t.Error("the held-back invitation was not sent once the denial cleared")
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

// mirroredGroup declares "oncall" as a Cloudflare user group of alice,
// Bob (accepted), pat (pending) and zed (not a member yet), granted
// Administrator Read Only on the account through the group.
const mirroredGroup = `groups:
  oncall:
    name: On-call
    cloudflare_user_group: true
    members: [alice@example.com, bob@example.com, pat@example.com, zed@example.com]
grants:
  - {groups: [oncall], roles: [ro], reason: OPS-7 on-call rotation}
`

// A declared mirrored group is created with its policies and its accepted
// members; pending members join once they accept; someone declared only
// through the group is invited with Minimal Account Access; the next plan
// is empty.
func TestMirroredUserGroup(t *testing.T) {
	t.Parallel()
	for _, inherited := range []string{"own policies only", "group's policies too"} {
		t.Run("member answers list "+inherited, func(t *testing.T) {
			t.Parallel()
			testMirroredUserGroup(t, newE2EWith(t, fake.Options{Token: testkit.Token, AccountName: "Production",
				InheritedPolicies: inherited != "own policies only"}))
		})
	}
	// An update that names every policy of the group, as the 2026 schema
	// reads: the group's correction keeps its one policy's id.
	t.Run("policy ids required on update", func(t *testing.T) {
		t.Parallel()
		testMirroredUserGroup(t, newE2EWith(t, fake.Options{Token: testkit.Token, AccountName: "Production", StrictPolicyIDs: true}))
	})
}

func testMirroredUserGroup(t *testing.T, e *e2e) {
	e.Commit("oncall group", map[string]string{"oncall.yaml": mirroredGroup})
	_, out, _ := e.run("plan", "--repo", e.Repo, "--format", "json")
	p := planJSONOf(t, out)
	want := []string{"remove stranger@example.com", "update carol@example.com", "create_user_group ", "join_user_group alice@example.com",
		"join_user_group bob@example.com", "invite dave@example.com", "invite erin@example.com", "invite zed@example.com"}
	if diff := cmp.Diff(want, changesOf(p)); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
	if w := p.Accounts[0].Waiting; len(w) != 2 || w[0].Email != "pat@example.com" || w[1].Email != "zed@example.com" {
		t.Errorf("waiting %+v", w)
	}
	code, out, _ := e.run("apply", "--repo", e.Repo)
	if code != ExitOK {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	groups := e.Fake.UserGroups()
	if len(groups) != 1 || groups[0].Name != "On-call" || !cmp.Equal(groups[0].Members, []string{"alice@example.com", "bob@example.com"}) ||
		len(groups[0].Access) != 1 || groups[0].Access[0].Role != "Administrator Read Only" {
		t.Fatalf("user groups after apply: %+v", groups)
	}
	if m := e.Members()["zed@example.com"]; m != "pending: Minimal Account Access on account:*" {
		t.Errorf("zed: %q, want invited with Minimal Account Access", m)
	}
	if code, out, _ := e.run("plan", "--repo", e.Repo, "--detailed-exitcode"); code != ExitOK || !strings.Contains(out, "pat@example.com joins user group On-call once they accept the invitation") {
		t.Errorf("second plan: exit %d\n%s", code, out)
	}
	// They accept: the next apply puts them in the group, and nothing else.
	e.Fake.Accept("pat@example.com")
	e.Fake.Accept("zed@example.com")
	e.Fake.ResetRequests()
	_, out, _ = e.run("apply", "--repo", e.Repo, "--format", "json")
	if got := changesOf(planJSONOf(t, out)); !cmp.Equal(got, []string{"join_user_group pat@example.com", "join_user_group zed@example.com"}) {
		t.Errorf("after accepting: %v", got)
	}
	if g := e.Fake.UserGroups(); len(g[0].Members) != 4 {
		t.Errorf("members %v", g[0].Members)
	}
	if code, out, _ := e.run("plan", "--repo", e.Repo, "--detailed-exitcode"); code != ExitOK {
		t.Errorf("final plan: exit %d\n%s", code, out)
	}
	// Someone added to the group in the dashboard is taken out; a changed
	// policy is set back.
	if _, err := e.Fake.PutUserGroup(fake.UserGroupSpec{Name: "On-call", Members: []string{"alice@example.com", "bob@example.com", "pat@example.com", "zed@example.com", "carol@example.com"},
		Access: []desired.Access{{Role: "Administrator", Resource: testkit.WholeAccount}}}); err != nil {
		t.Fatal(err)
	}
	// Setting the policy back takes Administrator from the four members
	// of the group, and taking carol out from her: five people losing
	// access, more than max_removals (3). The breaker stops it until a
	// person confirms (issue 19: every loss of access counts).
	code, out, _ = e.run("apply", "--repo", e.Repo)
	if code != ExitError || !strings.Contains(out, "the plan takes access away from 5 people (1 taken out of user groups, 4 losing access through a user group's policies), more than max_removals (3)") {
		t.Errorf("after the dashboard change: exit %d, want the breaker\n%s", code, out)
	}
	_, out, _ = e.run("apply", "--repo", e.Repo, "--format", "json", "--allow-mass-removal")
	if got := changesOf(planJSONOf(t, out)); !cmp.Equal(got, []string{"leave_group carol@example.com", "update_user_group "}) {
		t.Errorf("after the dashboard change: %v\n%s", got, out)
	}
	if code, out, _ := e.run("plan", "--repo", e.Repo, "--detailed-exitcode"); code != ExitOK {
		t.Errorf("plan after correcting: exit %d\n%s", code, out)
	}
}

// With scim, the identity provider owns user groups and their members:
// cfaccess reports who differs and writes no membership, here to a group
// synced by SCIM that Cloudflare would refuse to change anyway.
func TestSCIMGroupNeverWritten(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.Put("zed@example.com", false, desired.Access{Role: "Minimal Account Access", Resource: testkit.WholeAccount})
	if _, err := e.Fake.PutUserGroup(fake.UserGroupSpec{Name: "On-call", SCIM: true, Members: []string{"alice@example.com", "carol@example.com"},
		Access: []desired.Access{{Role: "Administrator Read Only", Resource: testkit.WholeAccount}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Fake.PutUserGroup(fake.UserGroupSpec{Name: "okta-admins", SCIM: true, Members: []string{"alice@example.com"},
		Access: []desired.Access{{Role: "Administrator", Resource: testkit.WholeAccount}}}); err != nil {
		t.Fatal(err)
	}
	e.Commit("scim", map[string]string{
		"oncall.yaml":    mirroredGroup,
		"providers.yaml": strings.Replace(e.ReadFile("providers.yaml"), "max_removals: 3}", "max_removals: 3, prune_user_groups: true, scim: true}", 1),
	})
	e.Fake.ResetRequests()
	code, out, _ := e.run("apply", "--repo", e.Repo, "--format", "json")
	if code != ExitOK {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	for _, w := range e.Writes() {
		if strings.Contains(w, "/iam/user_groups") {
			t.Errorf("a SCIM group was written: %s", w)
		}
	}
	p := planJSONOf(t, out)
	if slices.Contains(changesOf(p), "remove zed@example.com") {
		t.Error("a member holding only Minimal Account Access was pruned under scim")
	}
	var reported []string
	for _, g := range p.Accounts[0].GroupAccess {
		reported = append(reported, fmt.Sprintf("%s %s %v", g.Email, g.Group, g.Missing))
	}
	if want := []string{"alice@example.com okta-admins false", "bob@example.com On-call true", "carol@example.com On-call false", "zed@example.com On-call true"}; !cmp.Equal(reported, want) {
		t.Errorf("reported %v, want %v", reported, want)
	}
}

// Super Administrator granted through a mirrored group is denied at the
// grant's file and line, like any grant.
func TestSuperAdminToAMirroredGroupDenied(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.Commit("root group", map[string]string{"root.yaml": `roles:
  root: {providers: [prod], inherits: [Super Administrator - All Privileges], resources: {allow: ["account:*"]}}
groups:
  admins: {cloudflare_user_group: true, members: [alice@example.com]}
grants:
  - {groups: [admins], roles: [root], reason: INC-9}
`})
	code, out, _ := e.run("validate", "--repo", e.Repo)
	if code != ExitDenied || !strings.Contains(out, `root.yaml:6: denied: role "root" grants "Super Administrator - All Privileges" on the whole account to alice@example.com`) {
		t.Errorf("validate: exit %d\n%s", code, out)
	}
}

// Import of an account with three user groups — one synced by SCIM, one on
// zones through a hand-made domain group — declares them as mirrored
// groups with their members, and the plan right after is empty.
func TestImportUserGroupsRoundTrip(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.Fake.AddZone("example.com")
	e.Fake.AddZone("api.example.com")
	web := e.Fake.AddResourceGroup("Web zones", "example.com", "api.example.com")
	e.Put("zed@example.com", false, desired.Access{Role: "Minimal Account Access", Resource: testkit.WholeAccount})
	for _, spec := range []fake.UserGroupSpec{
		{Name: "ops-admins", Members: []string{"alice@example.com", "carol@example.com"}, Access: []desired.Access{{Role: "Administrator", Resource: testkit.WholeAccount}}},
		{Name: "okta-readers", SCIM: true, Members: []string{"zed@example.com", "alice@example.com"}, Access: []desired.Access{{Role: "Administrator Read Only", Resource: testkit.WholeAccount}}},
		{Name: "web-dns", Members: []string{"zed@example.com"}, Policies: []fake.PolicySpec{{Roles: []string{"Domain DNS"}, ResourceGroups: []string{web}}}},
	} {
		if _, err := e.Fake.PutUserGroup(spec); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir() + "/access"
	if code, out, errOut := e.run("import", "--account-id", e.Fake.AccountID(), "--provider-id", "prod", "--out", dir); code != ExitOK {
		t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := e.run("validate", "--repo", dir); code != ExitOK {
		t.Fatalf("validate: exit %d\n%s", code, out)
	}
	e.Fake.ResetRequests()
	if code, out, errOut := e.run("plan", "--repo", dir, "--detailed-exitcode"); code != ExitOK {
		t.Fatalf("plan after import: exit %d\n%s%s", code, out, errOut)
	}
	groups, err := os.ReadFile(dir + "/groups.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"name: \"okta-readers\"\n    cloudflare_user_group: true", "name: \"web-dns\"", "name: \"ops-admins\""} {
		if !strings.Contains(string(groups), want) {
			t.Errorf("groups.yaml lacks %q:\n%s", want, groups)
		}
	}
}

// A mirrored group's grant expires: the group's policies are emptied (its
// members keep no access through it), even when every member is also
// named directly in the grant.
func TestMirroredGroupGrantExpires(t *testing.T) {
	t.Parallel()
	for _, direct := range []bool{false, true} {
		e := newE2E(t)
		grant := "  - {groups: [oncall], roles: [ro], reason: OPS-7, expires: 2026-11-24T00:00:00Z}\n"
		if direct {
			grant = "  - {users: [alice@example.com], groups: [oncall], roles: [ro], reason: OPS-7, expires: 2026-11-24T00:00:00Z}\n"
		}
		e.Commit("oncall", map[string]string{"oncall.yaml": "groups:\n  oncall:\n    name: On-call\n    cloudflare_user_group: true\n    members: [alice@example.com]\ngrants:\n" + grant})
		if code, out, _ := e.run("apply", "--repo", e.Repo); code != ExitOK {
			t.Fatalf("direct %v: apply: exit %d\n%s", direct, code, out)
		}
		if g := e.Fake.UserGroups(); len(g) != 1 || len(g[0].Access) != 1 {
			t.Fatalf("direct %v: group %+v", direct, g)
		}
		e.now = time.Date(2026, 11, 24, 0, 0, 1, 0, time.UTC)
		_, out, _ := e.run("apply", "--repo", e.Repo, "--format", "json")
		if g := e.Fake.UserGroups(); len(g[0].Access) != 0 {
			t.Errorf("direct %v: the group keeps %v after its grant expired\n%s", direct, g[0].Access, out)
		}
	}
}

// A failed leave_group holds back a change that would give the same group
// more: the member who should have left would get it.
func TestFailedLeaveHoldsBackARaise(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.Commit("oncall", map[string]string{"oncall.yaml": mirroredGroup})
	if code, out, _ := e.run("apply", "--repo", e.Repo); code != ExitOK {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	id, err := e.Fake.PutUserGroup(fake.UserGroupSpec{Name: "On-call", Members: []string{"alice@example.com", "bob@example.com", "carol@example.com"},
		Access: []desired.Access{{Role: "Administrator Read Only", Resource: testkit.WholeAccount}}})
	if err != nil {
		t.Fatal(err)
	}
	e.Commit("raise", map[string]string{"roles.yaml": strings.Replace(e.ReadFile("roles.yaml"), "inherits: [Administrator Read Only]", "inherits: [Administrator Read Only, Analytics]", 1)})
	e.Fake.Fail(fake.Failure{Method: "DELETE", Path: "/accounts/" + e.Fake.AccountID() + "/iam/user_groups/" + id + "/members/*", Status: http.StatusInternalServerError})
	code, out, _ := e.run("apply", "--repo", e.Repo, "--cloudflare-max-retries", "0")
	if code != ExitError || !strings.Contains(out, "taking carol@example.com out of user group \"On-call\" failed, and this change would give them more") {
		t.Errorf("apply: exit %d\n%s", code, out)
	}
	if g := e.Fake.UserGroups(); len(g[0].Access) != 1 {
		t.Errorf("the group was raised while carol is still in it: %v", g[0].Access)
	}
}

// Under scim, a synced group's policies are still set (Cloudflare allows
// it; the update sends no name, which it refuses on synced groups).
func TestSCIMGroupPoliciesSet(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	if _, err := e.Fake.PutUserGroup(fake.UserGroupSpec{Name: "On-call", SCIM: true, Members: []string{"alice@example.com"},
		Access: []desired.Access{{Role: "Administrator", Resource: testkit.WholeAccount}}}); err != nil {
		t.Fatal(err)
	}
	e.Commit("scim", map[string]string{
		"oncall.yaml":    mirroredGroup,
		"providers.yaml": strings.Replace(e.ReadFile("providers.yaml"), "max_removals: 3}", "max_removals: 3, scim: true}", 1),
	})
	if code, out, _ := e.run("apply", "--repo", e.Repo); code != ExitOK || !strings.Contains(out, "~ update user group On-call") {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	if g := e.Fake.UserGroups(); len(g[0].Access) != 1 || g[0].Access[0].Role != "Administrator Read Only" || !cmp.Equal(g[0].Members, []string{"alice@example.com"}) {
		t.Errorf("SCIM group %+v", g)
	}
}
