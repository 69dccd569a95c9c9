package fake

import (
	"context"
	"net/http"
	"testing"
	"time"

	cf "github.com/cloudflare/cloudflare-go/v7"
	"github.com/cloudflare/cloudflare-go/v7/accounts"

	"github.com/cfaccess/reconciler/internal/desired"
)

// TestAuditLogThroughTheSDK reads the fake's audit log with the SDK's own
// pager (in the SDK's cursor shape, which its pager follows) and checks
// every entry decodes into the SDK's types with nothing unknown or
// missing; and that GET requests and refused writes are not logged (GA
// changelog, 2026-03-10).
func TestAuditLogThroughTheSDK(t *testing.T) {
	t.Parallel()
	s, ts := newTestServer(t, Options{AuditCursorsAfter: true, Owner: "ops@example.com"})
	for _, email := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		if _, err := s.PutMember(MemberSpec{Email: email, Access: []desired.Access{{Role: "Analytics", Resource: desired.Resource{Kind: desired.WholeAccount}}}}); err != nil {
			t.Fatal(err)
		}
	}
	s.RemoveMember("b@example.com")
	call(t, ts, http.MethodGet, "/accounts/"+s.AccountID()+"/members", nil)
	call(t, ts, http.MethodDelete, "/accounts/"+s.AccountID()+"/members/"+hexID("nobody"), nil)
	members := s.Members()
	call(t, ts, http.MethodDelete, "/accounts/"+s.AccountID()+"/members/"+members[0].ID, nil)

	c := sdkClient(ts.URL)
	var p accounts.LogAuditListParams
	p.AccountID = cf.F(s.AccountID())
	p.Since = cf.F(time.Now().Add(-48 * time.Hour))
	p.Before = cf.F(time.Now().Add(48 * time.Hour))
	p.Limit = cf.F(2.0)
	p.Direction = cf.F(accounts.LogAuditListParamsDirectionAsc)
	pager := c.Accounts.Logs.Audit.ListAutoPaging(context.Background(), p)
	var got []accounts.LogAuditListResponse
	for pager.Next() {
		e := pager.Current()
		noExtra(t, "entry", e.JSON)
		noExtra(t, "action", e.Action.JSON)
		noExtra(t, "actor", e.Actor.JSON)
		noExtra(t, "raw", e.Raw.JSON)
		noExtra(t, "resource", e.Resource.JSON)
		noExtra(t, "account", e.Account.JSON)
		got = append(got, e)
	}
	if err := pager.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("%d entries, want 3 adds, a removal in the dashboard and one through the API", len(got))
	}
	if e := got[0]; e.Action.Description != "Add Member" || e.Actor.Context != "dash" || e.Resource.Product != "members" || e.Raw.Method != http.MethodPost {
		t.Errorf("first entry %+v", e)
	}
	if e := got[4]; e.Action.Type != "delete" || e.Actor.Context != "api_token" || e.Actor.TokenID != s.TokenID() || e.Resource.ID != members[0].ID || e.Actor.Email != "ops@example.com" {
		t.Errorf("last entry %+v", e)
	}
}
