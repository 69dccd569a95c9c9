package fake

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"testing"

	cf "github.com/cloudflare/cloudflare-go/v7"
	"github.com/cloudflare/cloudflare-go/v7/accounts"
	"github.com/cloudflare/cloudflare-go/v7/iam"
	"github.com/cloudflare/cloudflare-go/v7/option"
	"github.com/cloudflare/cloudflare-go/v7/organizations"

	"github.com/cfaccess/reconciler/internal/desired"
)

// sdkClient is the official SDK pointed at the fake, every option explicit.
func sdkClient(ts string, auth ...option.RequestOption) *cf.Client {
	opts := append([]option.RequestOption{option.WithBaseURL(ts + BasePath + "/"), option.WithHTTPClient(http.DefaultClient),
		option.WithMaxRetries(0)}, auth...)
	if len(auth) == 0 {
		opts = append(opts, option.WithAPIToken(testToken))
	}
	return cf.NewClient(opts...)
}

// noExtra fails when the SDK decoded a field its types do not know, or
// found a required one missing: the fake answers in the SDK's shapes. (The
// schema files have no user-group or organization operations; the SDK's
// types are the evidence.)
func noExtra(t *testing.T, what string, jsonMeta any) {
	t.Helper()
	v := reflect.ValueOf(jsonMeta)
	if extra := v.FieldByName("ExtraFields"); extra.IsValid() && extra.Len() > 0 {
		t.Errorf("%s: fields the SDK does not know: %v", what, extra.MapKeys())
	}
	for i := range v.NumField() {
		if !v.Field(i).CanInterface() {
			continue
		}
		if f, ok := v.Field(i).Interface().(interface{ IsMissing() bool }); ok && f.IsMissing() && v.Type().Field(i).Name != "Policies" {
			t.Errorf("%s: %s missing", what, v.Type().Field(i).Name)
		}
	}
}

func TestUserGroupsThroughTheSDK(t *testing.T) {
	t.Parallel()
	s, ts := newTestServer(t, Options{})
	ctx := context.Background()
	c := sdkClient(ts.URL)
	acct := cf.F(s.AccountID())
	s.AddZone("example.com")
	alice, _ := s.PutMember(MemberSpec{Email: "alice@example.com", Access: []desired.Access{{Role: "Analytics", Resource: desired.Resource{Kind: desired.WholeAccount}}}})
	pending, _ := s.PutMember(MemberSpec{Email: "pat@example.com", Pending: true, Access: []desired.Access{{Role: "Analytics", Resource: desired.Resource{Kind: desired.WholeAccount}}}})

	var accountGroup string
	for _, g := range s.ResourceGroups() {
		if g.Account {
			accountGroup = g.ID
		}
	}
	var dnsPG string
	for _, pg := range s.permGroup {
		if pg.Name == "DNS" {
			dnsPG = pg.ID
		}
	}
	g, err := c.IAM.UserGroups.New(ctx, iam.UserGroupNewParams{AccountID: acct, Name: cf.F("dns-oncall"),
		Policies: cf.F([]iam.UserGroupNewParamsPolicy{{Access: cf.F(iam.UserGroupNewParamsPoliciesAccessAllow),
			PermissionGroups: cf.F([]iam.UserGroupNewParamsPoliciesPermissionGroup{{ID: cf.F(dnsPG)}}),
			ResourceGroups:   cf.F([]iam.UserGroupNewParamsPoliciesResourceGroup{{ID: cf.F(accountGroup)}})}})})
	if err != nil {
		t.Fatal(err)
	}
	noExtra(t, "created group", g.JSON)
	if _, err := c.IAM.UserGroups.New(ctx, iam.UserGroupNewParams{AccountID: acct, Name: cf.F("CF-reserved")}); err == nil {
		t.Error("a name starting with CF was taken")
	}

	added, err := c.IAM.UserGroups.Members.New(ctx, g.ID, iam.UserGroupMemberNewParams{AccountID: acct,
		Members: []iam.UserGroupMemberNewParamsMember{{ID: cf.F(alice)}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(added.Result) != 1 || added.Result[0].ID != alice || added.Result[0].Email != "alice@example.com" {
		t.Errorf("added %+v", added.Result)
	}
	_, err = c.IAM.UserGroups.Members.New(ctx, g.ID, iam.UserGroupMemberNewParams{AccountID: acct,
		Members: []iam.UserGroupMemberNewParamsMember{{ID: cf.F(pending)}}})
	var apiErr *cf.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest {
		t.Errorf("a pending member joined a group: %v", err)
	}

	page, err := c.IAM.UserGroups.List(ctx, iam.UserGroupListParams{AccountID: acct, PerPage: cf.F(500.0)})
	if err != nil || len(page.Result) != 1 {
		t.Fatalf("list: %v %+v", err, page)
	}
	noExtra(t, "listed group", page.Result[0].JSON)
	if p := page.Result[0].Policies; len(p) != 1 || p[0].PermissionGroups[0].Name != "DNS" || p[0].ResourceGroups[0].Scope.Key == "" {
		t.Errorf("policies %+v", p)
	}
	members, err := c.IAM.UserGroups.Members.List(ctx, g.ID, iam.UserGroupMemberListParams{AccountID: acct})
	if err != nil || len(members.Result) != 1 {
		t.Fatalf("members: %v %+v", err, members)
	}
	noExtra(t, "group member", members.Result[0].JSON)
	if m := members.Result[0]; m.Status != "accepted" {
		t.Errorf("member %+v", m)
	}
	if _, err := c.IAM.UserGroups.List(ctx, iam.UserGroupListParams{AccountID: acct, PerPage: cf.F(501.0)}); err == nil {
		t.Error("per_page 501 was taken")
	}

	// PUT replaces the policies; an empty list clears them.
	up, err := c.IAM.UserGroups.Update(ctx, g.ID, iam.UserGroupUpdateParams{AccountID: acct, Name: cf.F("dns-oncall"),
		Policies: cf.F([]iam.UserGroupUpdateParamsPolicy{})})
	if err != nil || len(up.Policies) != 0 {
		t.Fatalf("update: %v %+v", err, up)
	}
	if _, err := c.IAM.UserGroups.Members.Delete(ctx, g.ID, alice, iam.UserGroupMemberDeleteParams{AccountID: acct}); err != nil {
		t.Fatal(err)
	}
	if st := s.UserGroups(); len(st) != 1 || len(st[0].Members) != 0 {
		t.Errorf("after removal: %+v", st)
	}

	// A SCIM group keeps its name and members; its policies can be set.
	scim, err := s.PutUserGroup(UserGroupSpec{Name: "okta-admins", SCIM: true, Members: []string{"alice@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	for what, call := range map[string]func() error{
		"rename": func() error {
			_, err := c.IAM.UserGroups.Update(ctx, scim, iam.UserGroupUpdateParams{AccountID: acct, Name: cf.F("renamed")})
			return err
		},
		"delete": func() error {
			_, err := c.IAM.UserGroups.Delete(ctx, scim, iam.UserGroupDeleteParams{AccountID: acct})
			return err
		},
		"remove a member": func() error {
			_, err := c.IAM.UserGroups.Members.Delete(ctx, scim, alice, iam.UserGroupMemberDeleteParams{AccountID: acct})
			return err
		},
		"replace the members": func() error {
			_, err := c.IAM.UserGroups.Members.Update(ctx, scim, iam.UserGroupMemberUpdateParams{AccountID: acct, Members: []iam.UserGroupMemberUpdateParamsMember{}})
			return err
		},
	} {
		if err := call(); err == nil {
			t.Errorf("SCIM group: %s was allowed", what)
		}
	}
	if _, err := c.IAM.UserGroups.Update(ctx, scim, iam.UserGroupUpdateParams{AccountID: acct,
		Policies: cf.F([]iam.UserGroupUpdateParamsPolicy{{ID: cf.F(""), Access: cf.F(iam.UserGroupUpdateParamsPoliciesAccessAllow),
			PermissionGroups: cf.F([]iam.UserGroupUpdateParamsPoliciesPermissionGroup{{ID: cf.F(dnsPG)}}),
			ResourceGroups:   cf.F([]iam.UserGroupUpdateParamsPoliciesResourceGroup{{ID: cf.F(accountGroup)}})}})}); err != nil {
		t.Errorf("SCIM group: setting policies refused: %v", err)
	}
	if st := s.UserGroups(); !slices.ContainsFunc(st, func(g UserGroupState) bool {
		return g.Name == "okta-admins" && len(g.Members) == 1 && len(g.Access) == 1 && g.Access[0].Role == "DNS"
	}) {
		t.Errorf("SCIM group after the refusals: %+v", st)
	}
	// Removing a member from the account removes it from its groups.
	s.RemoveMember("alice@example.com")
	if st := s.UserGroups(); slices.ContainsFunc(st, func(g UserGroupState) bool { return len(g.Members) > 0 }) {
		t.Errorf("a removed member is still in a group: %+v", st)
	}
}

// Member answers list only the member's own policies, unless the fake is
// told to list the inherited ones too (InheritedPolicies), under the
// group's policy ids.
func TestInheritedPoliciesMode(t *testing.T) {
	t.Parallel()
	for _, inherited := range []bool{false, true} {
		s, ts := newTestServer(t, Options{InheritedPolicies: inherited})
		alice, _ := s.PutMember(MemberSpec{Email: "alice@example.com", Access: []desired.Access{{Role: "Analytics", Resource: desired.Resource{Kind: desired.WholeAccount}}}})
		if _, err := s.PutUserGroup(UserGroupSpec{Name: "admins", Members: []string{"alice@example.com"},
			Access: []desired.Access{{Role: "Administrator", Resource: desired.Resource{Kind: desired.WholeAccount}}}}); err != nil {
			t.Fatal(err)
		}
		m, err := sdkClient(ts.URL).Accounts.Members.Get(context.Background(), alice, accounts.MemberGetParams{AccountID: cf.F(s.AccountID())})
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{false: 1, true: 2}[inherited]; len(m.Policies) != want {
			t.Errorf("inherited %v: %d policies, want %d", inherited, len(m.Policies), want)
		}
		if st := s.Members(); len(st) != 1 || !slices.Equal(st[0].Groups, []string{"admins"}) || len(st[0].Access) != 1 {
			t.Errorf("member state %+v", st)
		}
	}
}

// The organization's members: paged by cursor, Global API key only.
func TestOrganizationMembers(t *testing.T) {
	t.Parallel()
	s, ts := newTestServer(t, Options{OrganizationID: "0rg0000000000000000000000000000a", APIKey: "key-not-a-secret", Email: "ops@example.com"})
	for i := range 25 {
		s.AddOrgMember(string(rune('a'+i))+"@example.com", "active")
	}
	ctx := context.Background()
	if _, err := sdkClient(ts.URL).Organizations.Members.List(ctx, "0rg0000000000000000000000000000a", organizations.MemberListParams{}); err == nil {
		t.Error("a token read the organization's members")
	}
	c := sdkClient(ts.URL, option.WithAPIKey("key-not-a-secret"), option.WithAPIEmail("ops@example.com"))
	var emails []string
	params := organizations.MemberListParams{PageSize: cf.F(int64(10))}
	for range 5 {
		page, err := c.Organizations.Members.List(ctx, "0rg0000000000000000000000000000a", params)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Result {
			noExtra(t, "organization member", m.JSON)
			emails = append(emails, m.User.Email)
		}
		var info struct {
			NextPageToken string `json:"next_page_token"`
		}
		if raw := page.JSON.ExtraFields["result_info"].Raw(); raw != "" {
			_ = json.Unmarshal([]byte(raw), &info)
		}
		if info.NextPageToken == "" {
			break
		}
		params.PageToken = cf.F(info.NextPageToken)
	}
	if len(emails) != 25 {
		t.Errorf("%d members read by cursor, want 25", len(emails))
	}
	acct, err := c.Accounts.Get(ctx, accounts.AccountGetParams{AccountID: cf.F(s.AccountID())})
	if err != nil || acct.ManagedBy.ParentOrgID != "0rg0000000000000000000000000000a" {
		t.Errorf("account managed_by: %v %+v", err, acct.ManagedBy)
	}
}
