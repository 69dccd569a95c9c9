package app

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/testkit"
)

// Tests of Cloudflare's real access model end to end: role scopes, domain
// groups, writes that are read back.

// A role over two zones creates one named domain group; a second role over
// the same zones reuses it; the next plan is empty.
func TestE2EDomainGroupCreatedOnceAndReused(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.Fake.AddZone("api.example.com")
	e.Commit("web zones", map[string]string{
		"web.yaml": `roles:
  web-dns: {providers: [prod], inherits: [Domain DNS], resources: {allow: [zone:example.com, zone:api.example.com]}}
  web-read: {providers: [prod], inherits: [Domain Administrator Read Only], resources: {allow: [zone:api.example.com, zone:example.com]}}
grants:
  - {users: [web1@example.com], roles: [web-dns], reason: WEB-1}
  - {users: [web2@example.com], roles: [web-read], reason: WEB-2}
  - {users: [web3@example.com], roles: [web-dns, web-read], reason: WEB-3}
`,
	})
	groupsBefore := len(e.Fake.ResourceGroups())
	if code, out, errOut := e.run("apply", "--repo", e.Repo); code != ExitOK {
		t.Fatalf("apply exit %d\n%s\n%s", code, out, errOut)
	}
	made := e.Fake.ResourceGroups()[groupsBefore:]
	want := []fake.ResourceGroupState{{Name: "cfaccess: web-dns", Zones: []string{"api.example.com", "example.com"}}}
	opts := cmp.Transformer("sortedZones", func(g fake.ResourceGroupState) fake.ResourceGroupState {
		g.ID = ""
		g.Zones = append([]string(nil), g.Zones...)
		for i := range g.Zones {
			for j := i + 1; j < len(g.Zones); j++ {
				if g.Zones[j] < g.Zones[i] {
					g.Zones[i], g.Zones[j] = g.Zones[j], g.Zones[i]
				}
			}
		}
		return g
	})
	if diff := cmp.Diff(want, made, opts); diff != "" {
		t.Errorf("resource groups made (-want +got):\n%s", diff)
	}
	members := e.Members()
	for email, want := range map[string]string{
		"web1@example.com": "pending: Domain DNS on zone:api.example.com, Domain DNS on zone:example.com",
		"web2@example.com": "pending: Domain Administrator Read Only on zone:api.example.com, Domain Administrator Read Only on zone:example.com",
		"web3@example.com": "pending: Domain Administrator Read Only on zone:api.example.com, Domain Administrator Read Only on zone:example.com, Domain DNS on zone:api.example.com, Domain DNS on zone:example.com",
	} {
		if members[email] != want {
			t.Errorf("%s: %s, want %s", email, members[email], want)
		}
	}
	e.Fake.ResetRequests()
	if code, out, _ := e.run("plan", "--repo", e.Repo, "--detailed-exitcode"); code != ExitOK || !strings.Contains(out, "Plan: 0 to invite, 0 to update, 0 to remove.") {
		t.Errorf("second plan: exit %d\n%s", code, out)
	}
	// A steady-state plan does not even read the resource groups.
	for _, r := range e.Fake.Requests() {
		if strings.HasSuffix(r.Path, "/iam/resource_groups") {
			t.Errorf("steady-state plan read the resource groups: %s %s", r.Method, r.Path)
		}
	}
}

// An account with 120 hand-made domain groups and ad-hoc groups made by the
// dashboard imports with every member declared; plan right after import is
// empty; applying an added grant reads the resource groups in exactly one
// request and reuses the hand-made group.
func TestE2EImportHandMadeAndAdHocGroups(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	for _, id := range e.Fake.Members() {
		e.Fake.RemoveMember(id.Email)
	}
	var groups []string
	for i := range 120 {
		a, b := fmt.Sprintf("site%03d.example.com", i), fmt.Sprintf("site%03d.example.net", i)
		groups = append(groups, e.Fake.AddResourceGroup(fmt.Sprintf("Team %d sites", i), a, b))
	}
	zone := func(name string) desired.Resource { return desired.Resource{Kind: desired.ZoneName, Zone: name} }
	put := func(spec fake.MemberSpec) {
		if _, err := e.Fake.PutMember(spec); err != nil {
			t.Fatal(err)
		}
	}
	put(fake.MemberSpec{Email: "owner@example.com", Access: []desired.Access{{Role: "Super Administrator - All Privileges", Resource: testkit.WholeAccount}}})
	for i := range 60 {
		spec := fake.MemberSpec{Email: fmt.Sprintf("dev%02d@example.com", i), Pending: i%5 == 0}
		switch i % 3 {
		case 0: // through a hand-made domain group
			spec.Policies = []fake.PolicySpec{{Roles: []string{"Domain DNS"}, ResourceGroups: []string{groups[i]}}}
		case 1: // ad hoc, as the dashboard grants one zone
			spec.Access = []desired.Access{{Role: "Domain DNS", Resource: zone(fmt.Sprintf("site%03d.example.com", i))},
				{Role: "Cache Domain Purge", Resource: zone(fmt.Sprintf("site%03d.example.com", i))}}
		default: // both, and an account role
			spec.Access = []desired.Access{{Role: "Analytics", Resource: testkit.WholeAccount}, {Role: "Domain DNS", Resource: zone("site000.example.com")}}
			spec.Policies = []fake.PolicySpec{{Roles: []string{"Domain Administrator Read Only"}, ResourceGroups: []string{groups[i]}}}
		}
		put(spec)
	}
	dir := filepath.Join(t.TempDir(), "access")
	code, out, errOut := e.run("import", "--account-id", e.Fake.AccountID(), "--provider-id", "prod", "--out", dir)
	if code != ExitOK {
		t.Fatalf("import exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "imported 60 members") || strings.Contains(out, "left undeclared") {
		t.Errorf("import output:\n%s", out)
	}
	if code, out, _ := e.run("validate", "--repo", dir); code != ExitOK {
		t.Fatalf("validate exit %d\n%s", code, out)
	}
	e.Fake.ResetRequests()
	if code, out, errOut := e.run("plan", "--repo", dir, "--detailed-exitcode"); code != ExitOK || !strings.Contains(out, "Plan: 0 to invite, 0 to update, 0 to remove.") {
		t.Fatalf("plan after import: exit %d\n%s\n%s", code, out, errOut)
	}

	// A new member with the access of a hand-made group: the group is
	// reused, and the resource groups are read in one request.
	roles, err := os.ReadFile(filepath.Join(dir, "roles.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var roleID string
	for _, line := range strings.Split(string(roles), "\n") {
		if strings.HasPrefix(line, "  domain-dns-several") && strings.HasSuffix(line, ":") {
			roleID = strings.TrimSuffix(strings.TrimSpace(line), ":")
			break
		}
	}
	if roleID == "" {
		t.Fatalf("no role for a hand-made group in:\n%s", roles)
	}
	if err := os.WriteFile(filepath.Join(dir, "new.yaml"), []byte("grants:\n  - {users: [newcomer@example.com], roles: ["+roleID+"], reason: NEW-1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	groupsBefore := len(e.Fake.ResourceGroups())
	e.Fake.ResetRequests()
	if code, out, errOut := e.run("apply", "--repo", dir); code != ExitOK {
		t.Fatalf("apply exit %d\n%s\n%s", code, out, errOut)
	}
	groupReads := 0
	for _, r := range e.Fake.Requests() {
		if r.Method == "GET" && strings.HasSuffix(r.Path, "/iam/resource_groups") {
			groupReads++
		}
	}
	if groupReads != 1 {
		t.Errorf("resource groups read in %d requests, want 1", groupReads)
	}
	if n := len(e.Fake.ResourceGroups()); n != groupsBefore {
		t.Errorf("%d resource groups made; the hand-made one should be reused", n-groupsBefore)
	}
}

// Cloudflare answers a member PUT with 200 and changes nothing (as it does
// without the right status): apply reads the member back, reports the
// change as failed, names the member and exits 1; the next apply converges.
func TestE2EWriteThatDoesNotTake(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.Fake.Fail(fake.Failure{Method: "PUT", Path: "/accounts/" + e.Fake.AccountID() + "/members/*", Ignored: true, Times: 1})
	code, out, errOut := e.run("apply", "--repo", e.Repo)
	if code != ExitError {
		t.Fatalf("apply exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out+errOut, "carol@example.com") || !strings.Contains(out+errOut, "the change did not take") {
		t.Errorf("apply output does not name carol's change as not taken:\n%s\n%s", out, errOut)
	}
	if strings.Count(out, "✓ applied") != 3 {
		t.Errorf("want the 3 other changes applied:\n%s", out)
	}
	if got := e.Members()["carol@example.com"]; !strings.Contains(got, "Billing") {
		t.Fatalf("carol changed after all: %s", got)
	}
	if code, out, errOut := e.run("apply", "--repo", e.Repo); code != ExitOK {
		t.Fatalf("second apply exit %d\n%s\n%s", code, out, errOut)
	}
	if got := e.Members()["carol@example.com"]; got != "accepted: Domain DNS on zone:example.com" {
		t.Errorf("carol after the second apply: %s", got)
	}
	if code, out, _ := e.run("plan", "--repo", e.Repo, "--detailed-exitcode"); code != ExitOK {
		t.Errorf("plan after convergence: exit %d\n%s", code, out)
	}
}

// A Retry-After of a day on a list page: plan fails within the per-attempt
// timeout, says when to retry, and writes nothing.
func TestE2ERetryAfterADay(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.Fake.Fail(fake.Failure{Path: "/accounts/" + e.Fake.AccountID() + "/members", Status: 429, RetryAfter: "86400"})
	code, out, errOut := e.run("apply", "--repo", e.Repo, "--cloudflare-timeout", "3s")
	if code != ExitError {
		t.Fatalf("apply exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out+errOut, "Cloudflare asks to wait until ") {
		t.Errorf("output does not say when to retry:\n%s\n%s", out, errOut)
	}
	if w := e.Writes(); len(w) != 0 {
		t.Errorf("wrote %v", w)
	}
}

// A repository written for the old model (account-scoped roles on zones,
// zone:*) is refused by plan before any read, one line per role saying
// what to write.
func TestE2EOldModelRefused(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.Commit("old model", map[string]string{
		"roles.yaml": `roles:
  dns: {providers: [prod], inherits: [DNS, Analytics], resources: {allow: [zone:example.com]}}
  ro: {providers: [prod], inherits: [Administrator Read Only], resources: {allow: ["zone:*"]}}
`,
	})
	code, out, errOut := e.run("plan", "--repo", e.Repo)
	if code != ExitError {
		t.Fatalf("plan exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{
		`roles.yaml:2: error: role "dns": DNS is account-scoped: on zone:example.com use Domain DNS, or grant DNS on account:*`,
		`roles.yaml:2: error: role "dns": Analytics is account-scoped and no domain-scoped role does the same: grant it on account:* (in a role of its own), not on zone:example.com`,
		`roles.yaml:3: error: role "ro": resource "zone:*": Cloudflare has no "all zones" resource`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := len(e.Fake.Requests()); n != 0 {
		t.Errorf("%d requests to Cloudflare; an invalid repository reads nothing", n)
	}
}

// Resource groups cannot be listed (Cloudflare: they "may be unavailable on
// some plans"): changes that use only groups the members already use still
// apply; one that needs a new group fails, saying why, and nothing else.
func TestE2EResourceGroupsUnlisted(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.Fake.AddZone("api.example.com")
	e.Fake.Fail(fake.Failure{Method: "GET", Path: "/accounts/" + e.Fake.AccountID() + "/iam/resource_groups", Status: 403})
	code, out, errOut := e.run("apply", "--repo", e.Repo)
	if code != ExitOK {
		t.Fatalf("apply exit %d\n%s\n%s", code, out, errOut)
	}
	e.Commit("a new domain group", map[string]string{
		"web.yaml": `roles:
  web: {providers: [prod], inherits: [Domain DNS], resources: {allow: [zone:example.com, zone:api.example.com]}}
grants:
  - {users: [web@example.com], roles: [web], reason: WEB-1}
`,
	})
	code, out, errOut = e.run("apply", "--repo", e.Repo)
	if code != ExitError || !strings.Contains(out, "no resource group known covers zone:example.com, zone:api.example.com") && !strings.Contains(out, "no resource group known covers zone:api.example.com, zone:example.com") {
		t.Errorf("apply exit %d, want 1 naming the missing group\n%s\n%s", code, out, errOut)
	}
}

// An invitation accepted between the read and the update: the update sent
// with the old status is dropped by Cloudflare, seen on read-back, and sent
// again with the status read back.
func TestE2EAcceptedDuringApply(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	if _, err := e.Fake.PutMember(fake.MemberSpec{Email: "pat@example.com", Pending: true,
		Access: []desired.Access{{Role: "Billing", Resource: testkit.WholeAccount}}}); err != nil {
		t.Fatal(err)
	}
	accepted := false
	e.Fake.BeforeRequest(func(r *http.Request) {
		if r.Method == "PUT" && !accepted {
			accepted = e.Fake.Accept("pat@example.com")
		}
	})
	code, out, errOut := e.run("apply", "--repo", e.Repo)
	if code != ExitOK {
		t.Fatalf("apply exit %d\n%s\n%s", code, out, errOut)
	}
	if got := e.Members()["pat@example.com"]; got != "accepted: Domain DNS on zone:example.com" {
		t.Errorf("pat: %s", got)
	}
	var bodies []string
	for _, r := range e.Fake.Requests() {
		if r.Method == "PUT" {
			bodies = append(bodies, string(r.Body))
		}
	}
	// carol's update, then pat's twice: with "pending", then "accepted".
	if len(bodies) != 3 || !strings.Contains(bodies[1], `"status":"pending"`) || !strings.Contains(bodies[2], `"status":"accepted"`) {
		t.Errorf("PUT bodies:\n%s", strings.Join(bodies, "\n"))
	}
}

// The answer to a resource-group creation is lost (502 after Cloudflare
// made it): the groups are listed again and the one made is used; no
// second group.
func TestE2EGroupCreationAnswerLost(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.Fake.AddZone("api.example.com")
	e.Commit("a new domain group", map[string]string{
		"web.yaml": `roles:
  web: {providers: [prod], inherits: [Domain DNS], resources: {allow: [zone:example.com, zone:api.example.com]}}
grants:
  - {users: [web@example.com, web2@example.com], roles: [web], reason: WEB-1}
`,
	})
	e.Fake.Fail(fake.Failure{Method: "POST", Path: "/accounts/" + e.Fake.AccountID() + "/iam/resource_groups", Status: 502, AfterProcessing: true, Times: 1})
	before := len(e.Fake.ResourceGroups())
	code, out, errOut := e.run("apply", "--repo", e.Repo)
	if code != ExitOK {
		t.Fatalf("apply exit %d\n%s\n%s", code, out, errOut)
	}
	if n := len(e.Fake.ResourceGroups()) - before; n != 1 {
		t.Errorf("%d resource groups made, want 1", n)
	}
}
