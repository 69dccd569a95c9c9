package cloudflare

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
)

// The user-group writes send exactly the documented bodies: a create with
// the name and policies, an update with the policies alone, a member add
// as a bare array of ids — policies never with ids of their own. And the
// read gives each group's access and members, and tells a member's own
// policies from the group's.
func TestUserGroupReadsAndWrites(t *testing.T) {
	t.Parallel()
	s := fake.New(fake.Options{Token: testToken, InheritedPolicies: true})
	e := newEnvFor(t, s, Config{})
	ctx := context.Background()
	id := s.AccountID()
	account := desired.Resource{Kind: desired.WholeAccount}
	alice, err := s.PutMember(fake.MemberSpec{Email: "alice@example.com", Access: []desired.Access{{Role: "Analytics", Resource: account}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutUserGroup(fake.UserGroupSpec{Name: "ops", Members: []string{"alice@example.com"},
		Access: []desired.Access{{Role: "Administrator", Resource: account}}}); err != nil {
		t.Fatal(err)
	}
	acct, err := e.client.ReadAccount(ctx, id, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(acct.UserGroups) != 1 || acct.UserGroups[0].Name != "ops" || len(acct.UserGroups[0].Members) != 1 || acct.UserGroups[0].Members[0].ID != alice {
		t.Fatalf("user groups %+v", acct.UserGroups)
	}
	if diff := cmp.Diff([]desired.Access{{Role: "Administrator", Resource: account}}, acct.UserGroups[0].Access); diff != "" {
		t.Errorf("group access (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]desired.Access{{Role: "Analytics", Resource: account}}, acct.Members[0].Access); diff != "" {
		t.Errorf("alice's own access, the group's left out (-want +got):\n%s", diff)
	}

	pg, _ := acct.PermissionGroup("DNS")
	rg, _ := acct.ResourceGroup([]desired.Resource{account})
	pols := []Policy{{PermissionGroups: []string{pg.ID}, ResourceGroups: []string{rg.ID}}}
	s.ResetRequests()
	g, err := e.client.CreateUserGroup(ctx, acct, "oncall", pols)
	if err != nil || len(g.Access) != 1 {
		t.Fatalf("create: %v %+v", err, g)
	}
	if _, err := e.client.UpdateUserGroup(ctx, acct, g.ID, "oncall", nil); err != nil {
		t.Fatal(err)
	}
	if err := e.client.JoinUserGroup(ctx, id, g.ID, alice); err != nil {
		t.Fatal(err)
	}
	if err := e.client.LeaveUserGroup(ctx, id, g.ID, alice); err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, r := range s.Requests() {
		if r.Method != "GET" {
			var v any
			if err := json.Unmarshal(r.Body, &v); r.Body != nil && err != nil {
				t.Fatalf("%s %s: body %q", r.Method, r.Path, r.Body)
			}
			b, _ := json.Marshal(v)
			bodies = append(bodies, r.Method+" "+strings.TrimPrefix(r.Path, "/accounts/"+id)+" "+string(b))
		}
	}
	want := []string{
		`POST /iam/user_groups {"name":"oncall","policies":[{"access":"allow","permission_groups":[{"id":"` + pg.ID + `"}],"resource_groups":[{"id":"` + rg.ID + `"}]}]}`,
		`PUT /iam/user_groups/` + g.ID + ` {"policies":[]}`,
		`POST /iam/user_groups/` + g.ID + `/members [{"id":"` + alice + `"}]`,
		`DELETE /iam/user_groups/` + g.ID + `/members/` + alice + ` null`,
	}
	if diff := cmp.Diff(want, bodies); diff != "" {
		t.Errorf("bodies (-want +got):\n%s", diff)
	}
}

// A user-group update names the group's policies it keeps, and edits in
// place those it replaces: only a policy beyond the group's count goes
// without an id (the 2026 schema requires ids; Cloudflare's Terraform
// provider sends none). Every request is checked against the schema.
func TestUserGroupUpdateNamesItsPolicies(t *testing.T) {
	t.Parallel()
	for _, strict := range []bool{false, true} {
		s := fake.New(fake.Options{Token: testToken, InheritedPolicies: true, StrictPolicyIDs: strict})
		e := newEnvFor(t, s, Config{})
		ctx := t.Context()
		acct, err := e.client.ReadAccount(ctx, s.AccountID(), ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pg := func(name string) string {
			p, err := acct.PermissionGroup(name)
			if err != nil {
				t.Fatal(err)
			}
			return p.ID
		}
		if err := e.client.loadResourceGroups(ctx, acct); err != nil {
			t.Fatal(err)
		}
		rg, _ := acct.ResourceGroup([]desired.Resource{account})
		policy := func(names ...string) Policy {
			var ids []string
			for _, n := range names {
				ids = append(ids, pg(n))
			}
			return Policy{PermissionGroups: ids, ResourceGroups: []string{rg.ID}}
		}
		g, err := e.client.CreateUserGroup(ctx, acct, "oncall", []Policy{policy("Analytics"), policy("Billing")})
		if err != nil {
			t.Fatal(err)
		}
		ids := func(g UserGroup) []string {
			var out []string
			for _, p := range g.Policies {
				out = append(out, p.ID)
			}
			return out
		}
		first := ids(g)
		s.ResetRequests()
		// Billing kept, Analytics replaced by Firewall: both ids named.
		g, err = e.client.UpdateUserGroup(ctx, acct, g.ID, "oncall", []Policy{policy("Billing"), policy("Firewall")})
		if err != nil {
			t.Fatalf("strict %v: %v", strict, err)
		}
		var sent struct {
			Policies []struct {
				ID               string `json:"id"`
				PermissionGroups []struct {
					ID string `json:"id"`
				} `json:"permission_groups"`
			} `json:"policies"`
		}
		if err := json.Unmarshal(s.Requests()[0].Body, &sent); err != nil {
			t.Fatal(err)
		}
		if len(sent.Policies) != 2 || sent.Policies[0].ID != first[1] || sent.Policies[1].ID != first[0] {
			t.Errorf("strict %v: sent %+v, want Billing as %s and Firewall in place of Analytics, %s", strict, sent.Policies, first[1], first[0])
		}
		if diff := cmp.Diff([]desired.Access{{Role: "Billing", Resource: account}, {Role: "Firewall", Resource: account}}, g.Access); diff != "" {
			t.Errorf("strict %v: answer (-want +got):\n%s", strict, diff)
		}
		if diff := cmp.Diff(ids(g), ids(acct.UserGroups[len(acct.UserGroups)-1])); diff != "" {
			t.Errorf("strict %v: the account's copy of the group keeps stale policy ids (-answer +copy):\n%s", strict, diff)
		}
		// A third policy: sent without an id, as Terraform sends them. The
		// schema's letter (StrictPolicyIDs) refuses it, and says why.
		_, err = e.client.UpdateUserGroup(ctx, acct, g.ID, "oncall", []Policy{policy("Billing"), policy("Firewall"), policy("DNS")})
		if strict != (err != nil) || strict && !strings.Contains(err.Error(), "policies.id is required") {
			t.Errorf("strict %v: growing the group: %v", strict, err)
		}
	}
}

func TestUpdatePolicies(t *testing.T) {
	t.Parallel()
	cur := []GroupPolicy{{ID: "a", PermissionGroups: []string{"p1"}, ResourceGroups: []string{"r"}},
		{ID: "b", PermissionGroups: []string{"p2"}, ResourceGroups: []string{"r"}},
		{ID: "c", Deny: true, PermissionGroups: []string{"p3"}, ResourceGroups: []string{"r"}}}
	pol := func(pg string) Policy { return Policy{PermissionGroups: []string{pg}, ResourceGroups: []string{"r"}} }
	got := func(want ...Policy) string {
		var out []string
		for _, p := range updatePolicies(cur, want) {
			out = append(out, p.ID+":"+p.PermissionGroups[0].ID)
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		want []Policy
		out  string
	}{
		{[]Policy{pol("p2"), pol("p1")}, "b:p2 a:p1"},                                // kept, whatever the order
		{[]Policy{pol("p2")}, "b:p2"},                                                // one dropped
		{[]Policy{pol("p4"), pol("p1")}, "b:p4 a:p1"},                                // replaced in place
		{[]Policy{pol("p3")}, "a:p3"},                                                // a deny is never kept as an allow
		{[]Policy{pol("p1"), pol("p4"), pol("p5"), pol("p6")}, "a:p1 b:p4 c:p5 :p6"}, // grown: the last without an id
	} {
		if g := got(tc.want...); g != tc.out {
			t.Errorf("updatePolicies(%v) = %q, want %q", tc.want, g, tc.out)
		}
	}
}
