package fake

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cfaccess/reconciler/internal/desired"
)

const testToken = "test-token-not-a-secret"

type response struct {
	Status     int
	Header     http.Header
	Success    bool            `json:"success"`
	Errors     []apiError      `json:"errors"`
	Result     json.RawMessage `json:"result"`
	ResultInfo *resultInfo     `json:"result_info"`
}

func newTestServer(t *testing.T, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	if opts.Token == "" {
		opts.Token = testToken
	}
	s := New(opts)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

func call(t *testing.T, ts *httptest.Server, method, path string, body any, header ...string) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, ts.URL+BasePath+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var r response
	data, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("%s %s: body %q: %v", method, path, data, err)
	}
	r.Status, r.Header = res.StatusCode, res.Header
	return r
}

func acctPath(s *Server, rest string) string { return "/accounts/" + s.AccountID() + rest }

func TestAuth(t *testing.T) {
	s, ts := newTestServer(t, Options{APIKey: "key", Email: "ops@example.com"})
	for _, tc := range []struct {
		name   string
		header []string
		want   int
	}{
		{"bearer", nil, 200},
		{"wrong bearer", []string{"Authorization", "Bearer nope"}, 403},
		{"key and email", []string{"Authorization", "", "X-Auth-Key", "key", "X-Auth-Email", "Ops@example.com"}, 200},
		{"wrong key", []string{"Authorization", "", "X-Auth-Key", "nope", "X-Auth-Email", "ops@example.com"}, 403},
		{"nothing", []string{"Authorization", ""}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, ts, "GET", acctPath(s, ""), nil, tc.header...)
			if r.Status != tc.want {
				t.Errorf("status %d, want %d (%+v)", r.Status, tc.want, r.Errors)
			}
		})
	}
}

func policy(pg, rg string) map[string]any {
	return map[string]any{"access": "allow", "permission_groups": []any{map[string]string{"id": pg}}, "resource_groups": []any{map[string]string{"id": rg}}}
}

func TestMembersLifecycle(t *testing.T) {
	s, ts := newTestServer(t, Options{})
	s.AddZone("example.com")
	var dnsID, billingID, acctRG string
	s.mu.Lock()
	dnsID, billingID = s.permGroupByNameLocked("DNS").ID, s.permGroupByNameLocked("Billing").ID
	acctRG = s.rgroups[0].ID
	zoneRG := s.addGroupLocked(s.scopeLocked(desired.Resource{Kind: desired.ZoneName, Zone: "example.com"})).ID
	s.mu.Unlock()

	errCases := []struct {
		name     string
		body     any
		wantCode int
	}{
		{"accepted status refused", map[string]any{"email": "a@example.com", "status": "accepted", "policies": []any{policy(dnsID, acctRG)}}, 1001},
		{"unknown permission group", map[string]any{"email": "a@example.com", "policies": []any{policy("nope", acctRG)}}, 1006},
		{"unknown resource group", map[string]any{"email": "a@example.com", "policies": []any{policy(dnsID, "nope")}}, 1006},
		{"account-only role on a zone", map[string]any{"email": "a@example.com", "policies": []any{policy(billingID, zoneRG)}}, 1006},
		{"unknown field", map[string]any{"email": "a@example.com", "policies": []any{policy(dnsID, acctRG)}, "bogus": 1}, 1001},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, ts, "POST", acctPath(s, "/members"), tc.body)
			if r.Status != 400 || r.Success || len(r.Errors) != 1 || r.Errors[0].Code != tc.wantCode {
				t.Errorf("got %d %+v, want 400 code %d", r.Status, r.Errors, tc.wantCode)
			}
		})
	}

	r := call(t, ts, "POST", acctPath(s, "/members"), map[string]any{"email": "A@Example.com", "policies": []any{policy(dnsID, zoneRG)}})
	if r.Status != 200 || !r.Success {
		t.Fatalf("create: %d %+v", r.Status, r.Errors)
	}
	var created map[string]any
	_ = json.Unmarshal(r.Result, &created)
	if _, has := created["roles"]; has {
		t.Error("create response has roles; the real one omits them")
	}
	id := created["id"].(string)
	if r := call(t, ts, "POST", acctPath(s, "/members"), map[string]any{"email": "a@example.com", "policies": []any{policy(dnsID, zoneRG)}}); r.Status != 400 {
		t.Errorf("duplicate email: %d, want 400", r.Status)
	}
	want := []MemberState{{ID: id, Email: "a@example.com", Status: "pending",
		Access: []desired.Access{{Role: "DNS", Resource: desired.Resource{Kind: desired.ZoneName, Zone: "example.com"}}}}}
	if diff := cmp.Diff(want, s.Members()); diff != "" {
		t.Errorf("after create (-want +got):\n%s", diff)
	}

	// A PUT carrying a different status is silently dropped, as in real life.
	r = call(t, ts, "PUT", acctPath(s, "/members/"+id), map[string]any{"status": "accepted", "policies": []any{policy(billingID, acctRG)}})
	if r.Status != 200 || s.Members()[0].Access[0].Role != "DNS" {
		t.Errorf("PUT with status: %d, access %v; want 200 and unchanged", r.Status, s.Members()[0].Access)
	}
	r = call(t, ts, "PUT", acctPath(s, "/members/"+id), map[string]any{"policies": []any{policy(billingID, acctRG)}})
	if r.Status != 200 || s.Members()[0].Access[0].Role != "Billing" {
		t.Errorf("PUT: %d, access %v", r.Status, s.Members()[0].Access)
	}
	if r := call(t, ts, "GET", acctPath(s, "/members/"+id), nil); r.Status != 200 || !strings.Contains(string(r.Result), `"scope":{"key":`) {
		t.Errorf("GET member: %d %s; want the scope as an object", r.Status, r.Result)
	}
	if r := call(t, ts, "DELETE", acctPath(s, "/members/"+id), nil); r.Status != 200 || len(s.Members()) != 0 {
		t.Errorf("DELETE: %d, %d members left", r.Status, len(s.Members()))
	}
	if r := call(t, ts, "DELETE", acctPath(s, "/members/"+id), nil); r.Status != 404 {
		t.Errorf("DELETE again: %d, want 404", r.Status)
	}
}

func TestListMembersPagesAndPendingEmail(t *testing.T) {
	s, ts := newTestServer(t, Options{})
	for i := range 51 {
		if _, err := s.PutMember(MemberSpec{Email: "u" + string(rune('a'+i%26)) + strings.Repeat("x", i/26) + "@example.com", Pending: i == 0,
			Access: []desired.Access{{Role: "Analytics", Resource: desired.Resource{Kind: desired.WholeAccount}}}}); err != nil {
			t.Fatal(err)
		}
	}
	r := call(t, ts, "GET", acctPath(s, "/members?per_page=50&page=2"), nil)
	if r.ResultInfo == nil || r.ResultInfo.TotalPages != 2 || r.ResultInfo.TotalCount != 51 || r.ResultInfo.Count != 1 {
		t.Errorf("page 2 info = %+v", r.ResultInfo)
	}
	r = call(t, ts, "GET", acctPath(s, "/members?per_page=50&page=1"), nil)
	var members []map[string]any
	_ = json.Unmarshal(r.Result, &members)
	first := members[0]
	if first["status"] != "pending" || first["email"] != "ua@example.com" || first["user"].(map[string]any)["email"] != "" {
		t.Errorf("pending member = %v; want its email at the top level only", first)
	}
}

func TestRateLimit(t *testing.T) {
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	s, ts := newTestServer(t, Options{RateLimit: 3, RatePeriod: time.Minute, Now: func() time.Time { return now }})
	for range 3 {
		if r := call(t, ts, "GET", acctPath(s, ""), nil); r.Status != 200 {
			t.Fatalf("status %d", r.Status)
		}
	}
	now = now.Add(20 * time.Second)
	r := call(t, ts, "GET", acctPath(s, ""), nil)
	if r.Status != 429 || r.Header.Get("Retry-After") != "40" {
		t.Errorf("4th request: %d Retry-After %q, want 429 and 40", r.Status, r.Header.Get("Retry-After"))
	}
	now = now.Add(40 * time.Second)
	if r := call(t, ts, "GET", acctPath(s, ""), nil); r.Status != 200 {
		t.Errorf("after the window: %d, want 200", r.Status)
	}
}

func TestFailures(t *testing.T) {
	s, ts := newTestServer(t, Options{})
	s.Fail(Failure{Method: "GET", Path: acctPath(s, "/members"), Page: 2, Status: 502, Times: 1})
	if r := call(t, ts, "GET", acctPath(s, "/members?page=1"), nil); r.Status != 200 {
		t.Errorf("page 1: %d", r.Status)
	}
	if r := call(t, ts, "GET", acctPath(s, "/members?page=2"), nil); r.Status != 502 || r.Success {
		t.Errorf("page 2: %d, want 502", r.Status)
	}
	if r := call(t, ts, "GET", acctPath(s, "/members?page=2"), nil); r.Status != 200 {
		t.Errorf("page 2 again: %d, want 200 (Times: 1)", r.Status)
	}
	s.Fail(Failure{Path: "/accounts/*", Status: 429, RetryAfter: "2", Times: 1})
	if r := call(t, ts, "GET", acctPath(s, "/roles"), nil); r.Status != 429 || r.Header.Get("Retry-After") != "2" {
		t.Errorf("429 hook: %d %q", r.Status, r.Header.Get("Retry-After"))
	}
	s.Fail(Failure{Path: acctPath(s, "/members"), Reset: true, Times: 1})
	req, _ := http.NewRequest("GET", ts.URL+BasePath+acctPath(s, "/members"), nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	res, err := http.DefaultClient.Do(req)
	if err == nil {
		_, err = io.ReadAll(res.Body)
		res.Body.Close()
	}
	if err == nil {
		t.Error("reset mid-body: read succeeded")
	}
	log := s.Requests()
	if len(log) != 5 || log[1].Status != 502 || log[1].Query != "page=2" {
		t.Errorf("request log = %+v", log)
	}
}

func TestZonesAndResourceGroups(t *testing.T) {
	s, ts := newTestServer(t, Options{})
	zid := s.AddZone("Example.com")
	s.AddZone("other.com")
	r := call(t, ts, "GET", "/zones?account.id="+s.AccountID()+"&name=example.com", nil)
	var zones []map[string]any
	_ = json.Unmarshal(r.Result, &zones)
	if len(zones) != 1 || zones[0]["id"] != zid {
		t.Errorf("zones = %v", zones)
	}
	scope := map[string]any{"key": "com.cloudflare.api.account." + s.AccountID(), "objects": []any{map[string]string{"key": desired.ZoneKeyPrefix + zid}}}
	r = call(t, ts, "POST", acctPath(s, "/iam/resource_groups"), map[string]any{"scope": scope})
	if r.Status != 200 {
		t.Fatalf("create resource group: %d %+v", r.Status, r.Errors)
	}
	r = call(t, ts, "GET", acctPath(s, "/iam/resource_groups"), nil)
	if r.ResultInfo.TotalCount != 2 || !strings.Contains(string(r.Result), `"scope":[{"key"`) {
		t.Errorf("resource groups: %+v %s; want 2 with scope as a list", r.ResultInfo, r.Result)
	}
	r = call(t, ts, "GET", acctPath(s, "/iam/permission_groups?per_page=50&page=2"), nil)
	if r.ResultInfo.TotalCount != 78 || r.ResultInfo.Count != 28 {
		t.Errorf("permission groups: %+v", r.ResultInfo)
	}
	if r := call(t, ts, "GET", "/user", nil); r.Status != 403 {
		t.Errorf("GET /user without owner: %d, want 403", r.Status)
	}
	if r := call(t, ts, "GET", "/accounts/0000000000000000000000000000000a/members", nil); r.Status != 403 {
		t.Errorf("other account: %d, want 403", r.Status)
	}
}
