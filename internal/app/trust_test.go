package app

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/testkit"
)

// Issue 19's findings, tried as an insider would, each over the fake.

// The breaker counts every loss of access: a revision that cuts 24 members
// down to Minimal Account Access — 12 by their own policies, 12 through
// their user group's — is refused with max_removals 2, and nothing is
// written (it used to apply: only deleted members were counted).
func TestBreakerCountsEveryLossOfAccess(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	var direct, staff []string
	for i := range 24 {
		email := fmt.Sprintf("m%02d@example.com", i)
		if i < 12 {
			e.Put(email, false, desired.Access{Role: "Analytics", Resource: testkit.WholeAccount})
			direct = append(direct, email)
			continue
		}
		e.Put(email, false, desired.Access{Role: "Minimal Account Access", Resource: testkit.WholeAccount})
		staff = append(staff, email)
	}
	if _, err := e.Fake.PutUserGroup(fake.UserGroupSpec{Name: "Staff", Members: staff,
		Access: []desired.Access{{Role: "Administrator", Resource: testkit.WholeAccount}}}); err != nil {
		t.Fatal(err)
	}
	e.Commit("everyone down to minimal", map[string]string{
		"providers.yaml": strings.Replace(e.ReadFile("providers.yaml"), "max_removals: 3}", "max_removals: 2}", 1),
		"staff.yaml": `roles:
  minimal: {providers: [prod], inherits: [Minimal Account Access], resources: {allow: ["account:*"]}}
groups:
  staff:
    name: Staff
    cloudflare_user_group: true
    members: [` + strings.Join(staff, ", ") + `]
grants:
  - {groups: [staff], roles: [minimal], reason: SEC-9 least privilege}
  - {users: [` + strings.Join(direct, ", ") + `], roles: [minimal], reason: SEC-9 least privilege}
`})
	e.Fake.ResetRequests()
	code, out, _ := e.run("apply", "--repo", e.Repo)
	const breaker = "the plan takes access away from 26 people (1 removed from the account, 13 with their own policies cut, 12 losing access through a user group's policies), more than max_removals (2)"
	if code != ExitError || !strings.Contains(out, breaker) || !strings.Contains(out, "26 people lose access") {
		t.Errorf("apply: exit %d, want the breaker:\n%s", code, out)
	}
	if w := e.Writes(); len(w) != 0 {
		t.Errorf("wrote %v", w)
	}
	// The count is in every format.
	_, js, _ := e.run("plan", "--repo", e.Repo, "--format", "json")
	if p := planJSONOf(t, js); p.Summary.LosingAccess != 26 || p.Accounts[0].LosingAccess != 26 || len(p.Accounts[0].Losing) != 26 {
		t.Errorf("JSON: losing_access %d, account %d, losing %d", p.Summary.LosingAccess, p.Accounts[0].LosingAccess, len(p.Accounts[0].Losing))
	}
	if _, md, _ := e.run("plan", "--repo", e.Repo, "--format", "markdown"); !strings.Contains(md, "(the plans refused would take access from **26 people**)") {
		t.Errorf("markdown:\n%s", md)
	}
}

// The protected owner holds Super Administrator through a user group that
// the repository mirrors under the same name and grants Analytics: setting
// the group's policies would demote the owner. The plan is refused at the
// group's declaration, whatever --allow-mass-removal says, and nothing is
// written (it used to apply and exit 0).
func TestProtectedOwnerThroughAUserGroup(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.Put("owner@example.com", false, desired.Access{Role: "Minimal Account Access", Resource: testkit.WholeAccount})
	if _, err := e.Fake.PutUserGroup(fake.UserGroupSpec{Name: "Admins", Members: []string{"owner@example.com"},
		Access: []desired.Access{{Role: "Super Administrator - All Privileges", Resource: testkit.WholeAccount}}}); err != nil {
		t.Fatal(err)
	}
	e.Commit("an admins group", map[string]string{"admins.yaml": `roles:
  analytics: {providers: [prod], inherits: [Analytics], resources: {allow: ["account:*"]}}
groups:
  admins:
    name: Admins
    cloudflare_user_group: true
    members: [alice@example.com]
grants:
  - {groups: [admins], roles: [analytics], reason: OPS-5 dashboards}
`})
	e.Fake.ResetRequests()
	for _, args := range [][]string{{"apply", "--repo", e.Repo}, {"apply", "--repo", e.Repo, "--allow-mass-removal"}} {
		code, out, _ := e.run(args...)
		const refusal = `admins.yaml:4: user group "Admins" (cloudflare_user_group) would have its policies set so that protected member owner@example.com loses Super Administrator - All Privileges on account:*: refused, nothing written`
		if code != ExitError || !strings.Contains(out, refusal) {
			t.Errorf("%v: exit %d, want the refusal:\n%s", args, code, out)
		}
		if w := e.Writes(); len(w) != 0 {
			t.Errorf("%v: wrote %v", args, w)
		}
	}
}

// A member's own policy may hold what a policy of her user group holds:
// read back after an update, it is still hers. (Told apart by content, it
// was dropped as inherited: apply said "the change did not take" and exited
// 1, and the next plan was empty.)
func TestOwnPolicyLikeHerGroupsIsHers(t *testing.T) {
	t.Parallel()
	ro := desired.Access{Role: "Administrator Read Only", Resource: testkit.WholeAccount}
	for _, inherited := range []bool{false, true} {
		e := newE2EWith(t, fake.Options{Token: testkit.Token, AccountName: "Production", InheritedPolicies: inherited})
		e.Put("alice@example.com", false, ro, desired.Access{Role: "Firewall", Resource: testkit.WholeAccount})
		if _, err := e.Fake.PutUserGroup(fake.UserGroupSpec{Name: "readers", Members: []string{"alice@example.com"}, Access: []desired.Access{ro}}); err != nil {
			t.Fatal(err)
		}
		e.Commit("alice reads too", map[string]string{"alice.yaml": "grants:\n  - {users: [alice@example.com], roles: [ro], reason: OPS-8}\n"})
		code, out, _ := e.run("apply", "--repo", e.Repo)
		if code != ExitOK || !strings.Contains(out, "~ update alice@example.com") {
			t.Errorf("inherited listed %v: apply exit %d\n%s", inherited, code, out)
		}
		if got := e.Members()["alice@example.com"]; got != "accepted: Domain DNS on zone:example.com, Administrator Read Only on account:*" &&
			got != "accepted: Administrator Read Only on account:*, Domain DNS on zone:example.com" {
			t.Errorf("inherited listed %v: alice %q", inherited, got)
		}
		if code, out, _ := e.run("plan", "--repo", e.Repo, "--detailed-exitcode"); code != ExitOK {
			t.Errorf("inherited listed %v: second plan exit %d\n%s", inherited, code, out)
		}
	}
}
