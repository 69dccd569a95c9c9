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
