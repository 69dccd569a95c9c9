package fake

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
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
	t.Parallel()
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
	t.Parallel()
	s, ts := newTestServer(t, Options{})
	zid := s.AddZone("example.com")
	var dnsID, domainDNSID, billingID, acctRG, adHocRG string
	s.mu.Lock()
	dnsID, domainDNSID, billingID = s.permGroupByNameLocked("DNS").ID, s.permGroupByNameLocked("Domain DNS").ID, s.permGroupByNameLocked("Billing").ID
	acctRG = s.accountGroupLocked().ID
	adHocRG = s.adHocGroupLocked(zid).ID
	s.mu.Unlock()
	domainRG := s.AddResourceGroup("web", "example.com", "api.example.com")

	errCases := []struct {
		name     string
		body     any
		wantCode int
	}{
		{"accepted status refused", map[string]any{"email": "a@example.com", "status": "accepted", "policies": []any{policy(dnsID, acctRG)}}, 1001},
		{"unknown permission group", map[string]any{"email": "a@example.com", "policies": []any{policy("nope", acctRG)}}, 1006},
		{"unknown resource group", map[string]any{"email": "a@example.com", "policies": []any{policy(dnsID, "nope")}}, 1006},
		{"account-scoped role on a zone", map[string]any{"email": "a@example.com", "policies": []any{policy(billingID, adHocRG)}}, 1006},
		{"account-scoped role on a domain group", map[string]any{"email": "a@example.com", "policies": []any{policy(dnsID, domainRG)}}, 1006},
		{"domain-scoped role on the account", map[string]any{"email": "a@example.com", "policies": []any{policy(domainDNSID, acctRG)}}, 1006},
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

	r := call(t, ts, "POST", acctPath(s, "/members"), map[string]any{"email": "A@Example.com", "policies": []any{policy(domainDNSID, domainRG)}})
	if r.Status != 200 || !r.Success {
		t.Fatalf("create: %d %+v", r.Status, r.Errors)
	}
	var created map[string]any
	_ = json.Unmarshal(r.Result, &created)
	if _, has := created["roles"]; has {
		t.Error("create response has roles; the real one may omit them")
	}
	id := created["id"].(string)
	if r := call(t, ts, "POST", acctPath(s, "/members"), map[string]any{"email": "a@example.com", "policies": []any{policy(domainDNSID, adHocRG)}}); r.Status != 400 || r.Errors[0].Code != 1008 {
		t.Errorf("duplicate email: %d %+v, want 400 code 1008", r.Status, r.Errors)
	}
	zone := func(name string) desired.Resource { return desired.Resource{Kind: desired.ZoneName, Zone: name} }
	want := []MemberState{{ID: id, Email: "a@example.com", Status: "pending",
		Access: []desired.Access{{Role: "Domain DNS", Resource: zone("api.example.com")}, {Role: "Domain DNS", Resource: zone("example.com")}}}}
	if diff := cmp.Diff(want, s.Members()); diff != "" {
		t.Errorf("after create (-want +got):\n%s", diff)
	}

	// A PUT without the member's current status, or with another, answers
	// 200 and changes nothing.
	for _, body := range []map[string]any{
		{"policies": []any{policy(billingID, acctRG)}},
		{"status": "accepted", "policies": []any{policy(billingID, acctRG)}},
	} {
		r = call(t, ts, "PUT", acctPath(s, "/members/"+id), body)
		if r.Status != 200 || s.Members()[0].Access[0].Role != "Domain DNS" {
			t.Errorf("PUT %v: %d, access %v; want 200 and unchanged", body, r.Status, s.Members()[0].Access)
		}
	}
	r = call(t, ts, "PUT", acctPath(s, "/members/"+id), map[string]any{"status": "pending", "policies": []any{policy(billingID, acctRG)}})
	if r.Status != 200 || s.Members()[0].Access[0].Role != "Billing" {
		t.Errorf("PUT with the current status: %d, access %v", r.Status, s.Members()[0].Access)
	}
	r = call(t, ts, "GET", acctPath(s, "/members/"+id), nil)
	var got map[string]any
	_ = json.Unmarshal(r.Result, &got)
	if r.Status != 200 || !strings.Contains(string(r.Result), `"scope":{"key":`) {
		t.Errorf("GET member: %d %s; want the scope as an object", r.Status, r.Result)
	}
	if roles, _ := got["roles"].([]any); len(roles) != 1 || roles[0].(map[string]any)["name"] != "Billing" {
		t.Errorf("roles beside policies = %v, want [Billing]", got["roles"])
	}
	if r := call(t, ts, "DELETE", acctPath(s, "/members/"+id), nil); r.Status != 200 || len(s.Members()) != 0 {
		t.Errorf("DELETE: %d, %d members left", r.Status, len(s.Members()))
	}
	if r := call(t, ts, "DELETE", acctPath(s, "/members/"+id), nil); r.Status != 404 {
		t.Errorf("DELETE again: %d, want 404", r.Status)
	}
}

// A pending member has its email in user.email and an empty user.id
// (baton-cloudflare invitation.go).
func TestListMembersPagesAndPendingShape(t *testing.T) {
	t.Parallel()
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
	first, user := members[0], members[0]["user"].(map[string]any)
	if first["status"] != "pending" || user["email"] != "ua@example.com" || user["id"] != "" {
		t.Errorf("pending member = %v; want user.email set and user.id empty", first)
	}
}

// Members made with roles also show the matching policies on the account.
func TestLegacyRolesShowPolicies(t *testing.T) {
	t.Parallel()
	s, ts := newTestServer(t, Options{})
	id, err := s.PutMember(MemberSpec{Email: "old@example.com", LegacyRoles: []string{"Billing"}})
	if err != nil {
		t.Fatal(err)
	}
	r := call(t, ts, "GET", acctPath(s, "/members/"+id), nil)
	if !strings.Contains(string(r.Result), `"name":"Billing"`) || !strings.Contains(string(r.Result), `"objects":[{"key":"*"}]`) {
		t.Errorf("legacy member = %s; want a Billing policy on the account", r.Result)
	}
	if _, err := s.PutMember(MemberSpec{Email: "x@example.com", LegacyRoles: []string{"Domain DNS"}}); err == nil {
		t.Error("a domain-scoped legacy role was accepted; legacy roles are account-wide")
	}
}

// Over the limit, every call is blocked for the whole period, and every
// answer says what is left.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	s, ts := newTestServer(t, Options{RateLimit: 3, RatePeriod: time.Minute, Now: func() time.Time { return now }})
	for i := range 3 {
		r := call(t, ts, "GET", acctPath(s, ""), nil)
		if r.Status != 200 {
			t.Fatalf("status %d", r.Status)
		}
		if got, want := r.Header.Get("Ratelimit"), `"default";r=`+strconv.Itoa(2-i)+`;t=60`; got != want {
			t.Errorf("Ratelimit = %q, want %q", got, want)
		}
		if got := r.Header.Get("Ratelimit-Policy"); got != `"default";q=3;w=60` {
			t.Errorf("Ratelimit-policyRecord = %q", got)
		}
	}
	now = now.Add(20 * time.Second)
	r := call(t, ts, "GET", acctPath(s, ""), nil)
	if r.Status != 429 || r.Header.Get("Retry-After") != "60" {
		t.Errorf("4th request: %d Retry-After %q, want 429 and 60 (blocked for the period)", r.Status, r.Header.Get("Retry-After"))
	}
	now = now.Add(40 * time.Second)
	if r := call(t, ts, "GET", acctPath(s, ""), nil); r.Status != 429 || r.Header.Get("Retry-After") != "20" {
		t.Errorf("still blocked: %d %q, want 429 and 20", r.Status, r.Header.Get("Retry-After"))
	}
	now = now.Add(20 * time.Second)
	if r := call(t, ts, "GET", acctPath(s, ""), nil); r.Status != 200 {
		t.Errorf("after the block: %d, want 200", r.Status)
	}
}

func TestFailures(t *testing.T) {
	t.Parallel()
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

	// Ignored: a PUT answered 200 that changes nothing.
	id, _ := s.PutMember(MemberSpec{Email: "a@example.com", Access: []desired.Access{{Role: "Billing", Resource: desired.Resource{Kind: desired.WholeAccount}}}})
	s.Fail(Failure{Method: "PUT", Path: acctPath(s, "/members/*"), Ignored: true, Times: 1})
	s.mu.Lock()
	dnsID, acctRG := s.permGroupByNameLocked("DNS").ID, s.accountGroupLocked().ID
	s.mu.Unlock()
	r := call(t, ts, "PUT", acctPath(s, "/members/"+id), map[string]any{"status": "accepted", "policies": []any{policy(dnsID, acctRG)}})
	if r.Status != 200 || !strings.Contains(string(r.Result), `"Billing"`) || s.Members()[0].Access[0].Role != "Billing" {
		t.Errorf("ignored PUT: %d %s, access %v; want 200 and unchanged", r.Status, r.Result, s.Members()[0].Access)
	}
}

func TestZonesAndResourceGroups(t *testing.T) {
	t.Parallel()
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
	if r := call(t, ts, "POST", acctPath(s, "/iam/resource_groups"), map[string]any{"scope": scope}); r.Status != 400 {
		t.Errorf("create without a name: %d, want 400", r.Status)
	}
	badScope := map[string]any{"key": desired.ZoneKeyPrefix + zid, "objects": []any{map[string]string{"key": "*"}}}
	if r := call(t, ts, "POST", acctPath(s, "/iam/resource_groups"), map[string]any{"name": "x", "scope": badScope}); r.Status != 400 {
		t.Errorf("create a zone-keyed group: %d, want 400", r.Status)
	}
	for range 2 {
		if r := call(t, ts, "POST", acctPath(s, "/iam/resource_groups"), map[string]any{"name": "cfaccess: web", "scope": scope}); r.Status != 200 {
			t.Fatalf("create resource group: %d %+v", r.Status, r.Errors)
		}
	}
	// One unpaged list, page parameters ignored.
	for _, q := range []string{"", "?page=1&per_page=5", "?page=2"} {
		r = call(t, ts, "GET", acctPath(s, "/iam/resource_groups"+q), nil)
		var groups []map[string]any
		_ = json.Unmarshal(r.Result, &groups)
		if r.ResultInfo != nil || len(groups) != 3 || !strings.Contains(string(r.Result), `"scope":{"key"`) {
			t.Errorf("resource groups%s: %+v %s; want all 3, no result_info, scope as an object", q, r.ResultInfo, r.Result)
		}
	}
	r = call(t, ts, "GET", acctPath(s, "/iam/permission_groups?per_page=50&page=2"), nil)
	if r.ResultInfo.TotalCount != 91 || r.ResultInfo.Count != 41 {
		t.Errorf("permission groups: %+v", r.ResultInfo)
	}
	r = call(t, ts, "GET", acctPath(s, "/iam/permission_groups?name=Domain+DNS"), nil)
	if !strings.Contains(string(r.Result), `"scopes":"com.cloudflare.api.account.zone"`) {
		t.Errorf("Domain DNS = %s; want domain-scoped", r.Result)
	}
	if r := call(t, ts, "GET", "/user", nil); r.Status != 403 {
		t.Errorf("GET /user without owner: %d, want 403", r.Status)
	}
	if r := call(t, ts, "GET", "/accounts/0000000000000000000000000000000a/members", nil); r.Status != 403 {
		t.Errorf("other account: %d, want 403", r.Status)
	}
}

// The dashboard hook grants domain roles on one zone through the zone's
// ad-hoc group, and refuses what the dashboard refuses.
func TestDashboardHook(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, Options{})
	zone := desired.Resource{Kind: desired.ZoneName, Zone: "example.com"}
	if _, err := s.PutMember(MemberSpec{Email: "a@example.com", Access: []desired.Access{{Role: "Domain DNS", Resource: zone}, {Role: "Cache Domain Purge", Resource: zone}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutMember(MemberSpec{Email: "b@example.com", Access: []desired.Access{{Role: "DNS", Resource: zone}}}); err == nil {
		t.Error("DNS on a zone accepted")
	}
	var adHoc []ResourceGroupState
	for _, g := range s.ResourceGroups() {
		if g.AdHoc {
			adHoc = append(adHoc, g)
		}
	}
	if len(adHoc) != 1 || !slices.Equal(adHoc[0].Zones, []string{"example.com"}) {
		t.Errorf("ad-hoc groups = %+v, want one for example.com", adHoc)
	}
}

// What no operation serves is answered in Cloudflare's envelope, never in
// ServeMux's plain text: an unknown path 404 (code 7003), a method a
// written path does not serve 405 (code 10405) with the methods it
// serves in Allow. ServeMux's own habits do not show: HEAD is not served
// by GET, and a path is not cleaned and redirected.
func TestUnrouted(t *testing.T) {
	t.Parallel()
	s := New(Options{Token: testToken})
	acct := BasePath + acctPath(s, "")
	type answer struct {
		Status      int
		Allow       string
		ContentType string
		Body        string
	}
	errorAnswer := func(status int, allow string, code int, msg string) answer {
		m, err := json.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		return answer{Status: status, Allow: allow, ContentType: "application/json",
			Body: `{"success":false,"errors":[{"code":` + strconv.Itoa(code) + `,"message":` + string(m) + `}],"messages":[],"result":null}` + "\n"}
	}
	notFound := func(path string) answer {
		return errorAnswer(http.StatusNotFound, "", 7003, "Could not route to "+path+", perhaps your object identifier is invalid?")
	}
	for _, tc := range []struct {
		name, method, path string
		want               answer
	}{
		{"unknown path", "GET", acct + "/nope", notFound(acctPath(s, "/nope"))},
		{"unknown path under a user group", "GET", acct + "/iam/user_groups/g/nope",
			errorAnswer(http.StatusNotFound, "", 7003, "Could not route to "+strings.TrimPrefix(acctPath(s, "/iam/user_groups/g/nope"), "/"))},
		{"unknown method on a collection", "PATCH", acct + "/members", errorAnswer(http.StatusMethodNotAllowed, "GET, POST", 10405, "Method not allowed")},
		{"unknown method on a resource", "POST", acct + "/members/m", errorAnswer(http.StatusMethodNotAllowed, "GET, PUT, DELETE", 10405, "Method not allowed")},
		{"unknown method on a user group's members", "DELETE", acct + "/iam/user_groups/g/members", errorAnswer(http.StatusMethodNotAllowed, "GET, POST, PUT", 10405, "Method not allowed")},
		{"HEAD on a collection", "HEAD", acct + "/iam/user_groups", errorAnswer(http.StatusMethodNotAllowed, "GET, POST", 10405, "Method not allowed")},
		// A read-only path answers another method as an unknown path.
		{"unknown method on a read-only path", "POST", BasePath + "/user", notFound("/user")},
		{"HEAD on a read-only path", "HEAD", BasePath + "/zones", notFound("/zones")},
		{"trailing slash outside an account", "GET", BasePath + "/user/", notFound("/user/")},
		// ServeMux would clean the path and redirect; ".." is an id here.
		{"dot-dot member id", "GET", acct + "/members/..", errorAnswer(http.StatusNotFound, "", 1003, "Member not found")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, "http://api.example"+tc.path, nil)
			req.Header.Set("Authorization", "Bearer "+testToken)
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			got := answer{Status: rec.Code, Allow: rec.Header().Get("Allow"), ContentType: rec.Header().Get("Content-Type"), Body: rec.Body.String()}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s %s (-want +got):\n%s", tc.method, tc.path, diff)
			}
		})
	}
}
