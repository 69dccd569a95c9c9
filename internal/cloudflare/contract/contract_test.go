package contract

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
)

const schemaPath = "../testdata/openapi-excerpt-2024-08-06.json"

// TestRecordedResponse checks the real recorded response: it validates
// with exactly the two known differences applied, and fails without them.
func TestRecordedResponse(t *testing.T) {
	v, err := New(schemaPath, "https://api.cloudflare.com/client/v4")
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile("../testdata/recorded-list-members.json")
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "https://api.cloudflare.com/client/v4/accounts/023e105f4ecef8ad9ca31a8372d0c353/members?page=1", nil)
	header := http.Header{"Content-Type": {"application/json"}}
	applied, err := v.CheckResponse(req, nil, 200, header, body)
	if err != nil {
		t.Fatalf("recorded response invalid even with the known differences: %v", err)
	}
	sort.Strings(applied)
	if diff := cmp.Diff([]string{"member resource group scope is an object", "role permissions are a map"}, applied); diff != "" {
		t.Errorf("differences applied (-want +got):\n%s", diff)
	}
	saved := Differences
	Differences = nil
	defer func() { Differences = saved }()
	if _, err := v.CheckResponse(req, nil, 200, header, body); err == nil {
		t.Error("recorded response validates without the exemptions: the listed differences are stale")
	}
}

// TestFakeServesTheContract drives every endpoint of the fake through the
// validating transport: requests as a client would send them, responses as
// the fake answers, errors included.
func TestFakeServesTheContract(t *testing.T) {
	s := fake.New(fake.Options{Token: "t", Owner: "owner@example.com"})
	ts := httptest.NewServer(s)
	defer ts.Close()
	v, err := New(schemaPath, ts.URL+fake.BasePath)
	if err != nil {
		t.Fatal(err)
	}
	tr := &Transport{Validator: v, Errorf: t.Errorf}
	client := &http.Client{Transport: tr}
	zone := s.AddZone("example.com")
	if _, err := s.PutMember(fake.MemberSpec{Email: "legacy@example.com", LegacyRoles: []string{"Administrator Read Only"}}); err != nil {
		t.Fatal(err)
	}
	acct := "/accounts/" + s.AccountID()
	do := func(method, path string, body any) map[string]any {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, ts.URL+fake.BasePath+path, rd)
		req.Header.Set("Authorization", "Bearer t")
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(res.Body).Decode(&out)
		return out
	}
	first := func(out map[string]any) map[string]any {
		l, _ := out["result"].([]any)
		if len(l) == 0 {
			t.Fatalf("empty result: %v", out)
		}
		return l[0].(map[string]any)
	}
	do("GET", "/user/tokens/verify", nil)
	// GET /accounts/{id}/tokens/verify is not in the excerpt: not checked.
	do("GET", acct, nil)
	do("GET", acct+"/roles", nil)
	dns := first(do("GET", acct+"/iam/permission_groups?name=DNS", nil))["id"]
	do("GET", acct+"/iam/permission_groups?page=2&per_page=50", nil)
	do("GET", "/zones?account.id="+s.AccountID()+"&name=example.com", nil)
	rg := do("POST", acct+"/iam/resource_groups", map[string]any{"scope": map[string]any{
		"key": "com.cloudflare.api.account." + s.AccountID(), "objects": []any{map[string]string{"key": desired.ZoneKeyPrefix + zone}}}})
	rgID := rg["result"].(map[string]any)["id"]
	do("GET", acct+"/iam/resource_groups", nil)
	pol := []any{map[string]any{"access": "allow", "permission_groups": []any{map[string]any{"id": dns}}, "resource_groups": []any{map[string]any{"id": rgID}}}}
	m := do("POST", acct+"/members", map[string]any{"email": "new@example.com", "policies": pol})
	id := m["result"].(map[string]any)["id"].(string)
	do("POST", acct+"/members", map[string]any{"email": "new@example.com", "policies": pol}) // 400: exists
	do("GET", acct+"/members?page=1&per_page=50", nil)
	do("GET", acct+"/members/"+id, nil)
	do("PUT", acct+"/members/"+id, map[string]any{"policies": pol})
	do("DELETE", acct+"/members/"+id, nil)
	do("GET", acct+"/members/"+id, nil) // 404

	ops := tr.Operations()
	var got []string
	for op := range ops {
		got = append(got, op)
	}
	slices.Sort(got)
	want := []string{
		"DELETE /accounts/{account_id}/members/{member_id}",
		"GET /accounts/{account_id}",
		"GET /accounts/{account_id}/iam/permission_groups",
		"GET /accounts/{account_id}/iam/resource_groups",
		"GET /accounts/{account_id}/members",
		"GET /accounts/{account_id}/members/{member_id}",
		"GET /accounts/{account_id}/roles",
		"GET /user/tokens/verify",
		"GET /zones",
		"POST /accounts/{account_id}/iam/resource_groups",
		"POST /accounts/{account_id}/members",
		"PUT /accounts/{account_id}/members/{member_id}",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("operations exercised (-want +got):\n%s", diff)
	}
}

// TestCatchesBadRequests checks the validator is not vacuous.
func TestCatchesBadRequests(t *testing.T) {
	v, err := New(schemaPath, "https://api.cloudflare.com/client/v4")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/accounts/023e105f4ecef8ad9ca31a8372d0c353/members", `{"policies": []}`},
		{"POST", "/accounts/023e105f4ecef8ad9ca31a8372d0c353/members", `{"email": "a@example.com", "status": "invited", "policies": []}`},
		{"PUT", "/accounts/023e105f4ecef8ad9ca31a8372d0c353/members/x", `{"roles": [{"id": "r"}]}`},
		{"GET", "/accounts/023e105f4ecef8ad9ca31a8372d0c353/members?per_page=500", ``},
		{"GET", "/accounts/023e105f4ecef8ad9ca31a8372d0c353/audit_logs", ``},
	} {
		req := httptest.NewRequest(tc.method, "https://api.cloudflare.com/client/v4"+tc.path, bytes.NewReader([]byte(tc.body)))
		req.Header.Set("Content-Type", "application/json")
		if err := v.CheckRequest(req, []byte(tc.body)); err == nil {
			t.Errorf("%s %s %s: accepted", tc.method, tc.path, tc.body)
		}
	}
}
