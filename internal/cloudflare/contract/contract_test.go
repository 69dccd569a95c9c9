package contract

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
)

const schemaPath = "../testdata/openapi-excerpt-2024-08-06.json"

const (
	apiBase = "https://api.cloudflare.com/client/v4"
	acctURL = apiBase + "/accounts/023e105f4ecef8ad9ca31a8372d0c353"
)

var jsonHeader = http.Header{"Content-Type": {"application/json"}}

// sharedValidator is built once for every test: building the schema is
// most of this package's test time. On the base path alone, it checks the
// requests the tests address to Cloudflare (apiBase) and those sent to the
// fake's test server alike.
var sharedValidator = sync.OnceValues(func() (*Validator, error) { return New(schemaPath, fake.BasePath) })

func newTestValidator(t *testing.T) *Validator {
	t.Helper()
	v, err := sharedValidator()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func checkRequest(v *Validator, method, url, body string) error {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, url, rd)
	var b []byte
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
		b = []byte(body)
	}
	return v.CheckRequest(req, b)
}

func checkResponse(v *Validator, method, url string, status int, body string) ([]string, error) {
	return v.CheckResponse(httptest.NewRequest(method, url, nil), nil, status, jsonHeader, []byte(body))
}

// evidence is a real response body and the differences it needs.
type evidence struct {
	name, method, url string
	body              []byte
	want              []string // Differences applied, sorted
}

// recordedEvidence returns the real recorded member list, and a GET /roles
// answer made of the real roles in it.
func recordedEvidence(t *testing.T) []evidence {
	t.Helper()
	body, err := os.ReadFile("../testdata/recorded-list-members.json")
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(body, &rec); err != nil {
		t.Fatal(err)
	}
	var roles []any
	for _, m := range list(rec["result"]) {
		roles = append(roles, list(mapOf(m)["roles"])...)
	}
	if len(roles) == 0 {
		t.Fatal("recorded response has no roles")
	}
	rolesBody, _ := json.Marshal(map[string]any{"success": true, "errors": []any{}, "messages": []any{}, "result": roles,
		"result_info": map[string]any{"page": 1, "per_page": 20, "count": len(roles), "total_count": len(roles)}})
	return []evidence{
		{"recorded member list", "GET", acctURL + "/members?page=1", body, nil},
		{"roles of the recorded member list", "GET", acctURL + "/roles", rolesBody, []string{"role permissions are a map"}},
	}
}

// TestRecordedResponse keeps Differences honest against real data: each
// piece of evidence validates with exactly the differences it lists, every
// listed difference is needed by some evidence (it fails without it), and
// the recorded member list needs none under the 2026 member schema.
func TestRecordedResponse(t *testing.T) {
	// Not parallel: it swaps the package's Differences, which the other
	// tests read (the parallel ones run only after it).
	v := newTestValidator(t)
	needed := map[string]bool{}
	for _, e := range recordedEvidence(t) {
		applied, err := checkResponse(v, e.method, e.url, 200, string(e.body))
		if err != nil {
			t.Fatalf("%s: invalid even with the known differences: %v", e.name, err)
		}
		sort.Strings(applied)
		if diff := cmp.Diff(e.want, applied, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: differences applied (-want +got):\n%s", e.name, diff)
		}
		for _, name := range applied {
			saved := Differences
			Differences = slices.DeleteFunc(slices.Clone(saved), func(d Difference) bool { return d.Name == name })
			if _, err := checkResponse(v, e.method, e.url, 200, string(e.body)); err == nil {
				t.Errorf("%s validates without %q: that difference is stale", e.name, name)
			} else {
				needed[name] = true
			}
			Differences = saved
		}
	}
	for _, d := range Differences {
		if !needed[d.Name] && !d.Request {
			t.Errorf("difference %q is needed by no recorded evidence", d.Name)
		}
	}
}

// TestUserGroups2026 checks the 2026 user-group operations: a create needs
// a name; an update names each policy's id, but for the one difference
// (a policy the group did not have, sent without one, as Cloudflare's
// Terraform provider does); members are added as a bare array of ids.
func TestUserGroups2026(t *testing.T) {
	// Not parallel: it swaps the package's Differences, which the other
	// tests read (the parallel ones run only after it).
	v := newTestValidator(t)
	const group = acctURL + "/iam/user_groups/f267e341f3dd4697bd3b9f71dd96247f"
	policy := func(id string) string {
		p := `"access": "allow", "permission_groups": [{"id": "c8fed203ed3043cba015a93ad1616f1f"}], "resource_groups": [{"id": "6d7f2f5f5b1d4a0e9081fdc98d432fd1"}]`
		if id != "" {
			p = `"id": "` + id + `", ` + p
		}
		return "{" + p + "}"
	}
	for _, tc := range []struct {
		name, method, url, body string
		valid                   bool
	}{
		{"create", "POST", acctURL + "/iam/user_groups", `{"name": "oncall", "policies": [` + policy("") + `]}`, true},
		{"create without name", "POST", acctURL + "/iam/user_groups", `{"policies": [` + policy("") + `]}`, false},
		{"create with a policy lacking resource groups", "POST", acctURL + "/iam/user_groups",
			`{"name": "oncall", "policies": [{"access": "allow", "permission_groups": [{"id": "c8fed203ed3043cba015a93ad1616f1f"}]}]}`, false},
		{"update naming its policies", "PUT", group, `{"policies": [` + policy("7a1b2c3d4e5f60718293a4b5c6d7e8f9") + `]}`, true},
		{"update with a policy added, without an id (the difference)", "PUT", group,
			`{"policies": [` + policy("7a1b2c3d4e5f60718293a4b5c6d7e8f9") + `, ` + policy("") + `]}`, true},
		{"update emptying the policies", "PUT", group, `{"policies": []}`, true},
		{"update with a policy of an unknown access", "PUT", group, `{"policies": [{"id": "7a1b2c3d4e5f60718293a4b5c6d7e8f9", "access": "maybe", "permission_groups": [], "resource_groups": []}]}`, false},
		{"add members", "POST", group + "/members", `[{"id": "4f5f0c14a2a41d5063dd301b2f829f04"}]`, true},
		{"add members as an object", "POST", group + "/members", `{"id": "4f5f0c14a2a41d5063dd301b2f829f04"}`, false},
		{"add a member without id", "POST", group + "/members", `[{}]`, false},
		{"list", "GET", acctURL + "/iam/user_groups?page=1&per_page=100", ``, true},
		{"list past the page size", "GET", acctURL + "/iam/user_groups?per_page=501", ``, false},
		{"list members", "GET", group + "/members?page=1&per_page=100", ``, true},
		{"get a member", "GET", group + "/members/4f5f0c14a2a41d5063dd301b2f829f04", ``, true},
		{"remove a member", "DELETE", group + "/members/4f5f0c14a2a41d5063dd301b2f829f04", ``, true},
		{"a group id that is not an id", "GET", acctURL + "/iam/user_groups/f267", ``, false},
	} {
		err := checkRequest(v, tc.method, tc.url, tc.body)
		if tc.valid && err != nil {
			t.Errorf("%s: refused: %v", tc.name, err)
		} else if !tc.valid && err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	// The difference is needed, and covers only the added policy.
	saved := Differences
	Differences = slices.DeleteFunc(slices.Clone(saved), func(d Difference) bool { return d.Request })
	defer func() { Differences = saved }()
	if err := checkRequest(v, "PUT", group, `{"policies": [`+policy("")+`]}`); err == nil {
		t.Error("an update policy without an id validates without the difference: it is stale")
	}
}

// TestMemberResponses2026 checks the 2026 member schema is in effect: the
// 2024 shapes of the recorded member list are refused.
func TestMemberResponses2026(t *testing.T) {
	t.Parallel()
	v := newTestValidator(t)
	body, err := os.ReadFile("../testdata/recorded-list-members.json")
	if err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(m map[string]any){
		"resource group scope as an array (2024 iam_resource_group)": func(m map[string]any) {
			rg := mapOf(list(mapOf(list(m["policies"])[0])["resource_groups"])[0])
			rg["scope"] = []any{rg["scope"]}
		},
		"role permissions as an array of strings (2024 iam_schemas-role)": func(m map[string]any) {
			mapOf(list(m["roles"])[0])["permissions"] = []any{"#zones:read"}
		},
		"status other than accepted or pending": func(m map[string]any) { m["status"] = "rejected" },
	} {
		var rec map[string]any
		if err := json.Unmarshal(body, &rec); err != nil {
			t.Fatal(err)
		}
		mutate(mapOf(list(rec["result"])[0]))
		b, _ := json.Marshal(rec)
		if _, err := checkResponse(v, "GET", acctURL+"/members", 200, string(b)); err == nil {
			t.Errorf("member list with %s: accepted", name)
		}
	}
}

// TestResourceGroups2026 checks the 2026 resource group operations: one
// unpaged list of groups whose scope is an object, and a create body that
// needs a name.
func TestResourceGroups2026(t *testing.T) {
	t.Parallel()
	v := newTestValidator(t)
	group := func(scope string) string {
		return `{"id": "6d7f2f5f5b1d4a0e9081fdc98d432fd1", "name": "com.cloudflare.api.account.023e105f4ecef8ad9ca31a8372d0c353",
			"meta": {"editable": "false"}, "scope": ` + scope + `}`
	}
	const object = `{"key": "com.cloudflare.api.account.023e105f4ecef8ad9ca31a8372d0c353", "objects": [{"key": "*"}]}`
	const ok = `"success": true, "errors": [], "messages": []`
	for _, tc := range []struct {
		name, method, body string
		valid              bool
	}{
		{"list without result_info", "GET", `{` + ok + `, "result": [` + group(object) + `]}`, true},
		{"empty list", "GET", `{` + ok + `, "result": []}`, true},
		{"list with scope as an array (2024 shape)", "GET", `{` + ok + `, "result": [` + group(`[`+object+`]`) + `]}`, false},
		{"list with a group without scope", "GET", `{` + ok + `, "result": [{"id": "6d7f2f5f5b1d4a0e9081fdc98d432fd1"}]}`, false},
		{"created group", "POST", `{` + ok + `, "result": ` + group(object) + `}`, true},
		{"created group with scope as an array", "POST", `{` + ok + `, "result": ` + group(`[`+object+`]`) + `}`, false},
		{"created group without id", "POST", `{` + ok + `, "result": {"scope": ` + object + `}}`, false},
	} {
		_, err := checkResponse(v, tc.method, acctURL+"/iam/resource_groups", 200, tc.body)
		if tc.valid && err != nil {
			t.Errorf("%s: refused: %v", tc.name, err)
		} else if !tc.valid && err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	for _, tc := range []struct {
		name, body string
		valid      bool
	}{
		{"create with name", `{"name": "example.com", "scope": ` + object + `}`, true},
		{"create without name", `{"scope": ` + object + `}`, false},
		{"create without scope", `{"name": "example.com"}`, false},
		{"create with scope as an array", `{"name": "example.com", "scope": [` + object + `]}`, false},
	} {
		err := checkRequest(v, "POST", acctURL+"/iam/resource_groups", tc.body)
		if tc.valid && err != nil {
			t.Errorf("%s: refused: %v", tc.name, err)
		} else if !tc.valid && err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if err := checkRequest(v, "GET", acctURL+"/iam/resource_groups?id=6d7f2f5f5b1d4a0e9081fdc98d432fd1", ""); err != nil {
		t.Errorf("list by id: %v", err)
	}
	if err := checkRequest(v, "GET", acctURL+"/iam/resource_groups?id=6d7f", ""); err == nil {
		t.Error("list by a 4-character id: accepted")
	}
}

// TestPutMemberWithStatus checks the body cfaccess sends on PUT: the
// member's current status with the policies.
func TestPutMemberWithStatus(t *testing.T) {
	t.Parallel()
	v := newTestValidator(t)
	const policies = `[{"access": "allow", "permission_groups": [{"id": "c8fed203ed3043cba015a93ad1616f1f"}],
		"resource_groups": [{"id": "6d7f2f5f5b1d4a0e9081fdc98d432fd1"}]}]`
	for _, status := range []string{"accepted", "pending"} {
		body := `{"status": "` + status + `", "policies": ` + policies + `}`
		if err := checkRequest(v, "PUT", acctURL+"/members/4536bcfad5faccb111b47003c79917fa", body); err != nil {
			t.Errorf("PUT with status %s: refused: %v", status, err)
		}
	}
}

// TestFailureAnswers checks 4XX answers against the 2026 failure envelope
// (iam_api-response-common-failure, referred to directly).
func TestFailureAnswers(t *testing.T) {
	t.Parallel()
	v := newTestValidator(t)
	const errs = `"errors": [{"code": 1008, "message": "Account member already exists for email address"}], "messages": []`
	for _, tc := range []struct {
		name, body string
		valid      bool
	}{
		{"failure", `{"success": false, ` + errs + `, "result": null}`, true},
		{"success true", `{"success": true, ` + errs + `, "result": null}`, false},
		{"without result", `{"success": false, ` + errs + `}`, false},
		{"with a result", `{"success": false, ` + errs + `, "result": {"id": "x"}}`, false},
		{"error code below 1000", `{"success": false, "errors": [{"code": 7, "message": "x"}], "messages": [], "result": null}`, false},
	} {
		for _, op := range []struct{ method, url string }{
			{"POST", acctURL + "/members"},
			{"GET", acctURL + "/members/4536bcfad5faccb111b47003c79917fa"},
			{"GET", acctURL + "/iam/resource_groups"},
			{"GET", apiBase + "/user/tokens/verify"},
		} {
			_, err := checkResponse(v, op.method, op.url, 400, tc.body)
			if tc.valid && err != nil {
				t.Errorf("%s %s: %s: refused: %v", op.method, op.url, tc.name, err)
			} else if !tc.valid && err == nil {
				t.Errorf("%s %s: %s: accepted", op.method, op.url, tc.name)
			}
		}
	}
}

// TestSchemaFixesAreNeeded shows each SchemaFix is needed: without it, New
// fails, or a request or response cfaccess relies on is judged wrongly.
func TestSchemaFixesAreNeeded(t *testing.T) {
	t.Parallel()
	const policies = `[{"access": "allow", "permission_groups": [{"id": "c8fed203ed3043cba015a93ad1616f1f"}],
		"resource_groups": [{"id": "6d7f2f5f5b1d4a0e9081fdc98d432fd1"}]}]`
	const member = acctURL + "/members/4536bcfad5faccb111b47003c79917fa"
	// Each check must hold with every fix; without the fix, New must fail
	// or some check must not hold.
	type check func(v *Validator) error
	accepts := func(method, url, body string) check {
		return func(v *Validator) error { return checkRequest(v, method, url, body) }
	}
	refuses := func(method, url, body string) check {
		return func(v *Validator) error {
			if checkRequest(v, method, url, body) == nil {
				return fmt.Errorf("%s %s %s: accepted", method, url, body)
			}
			return nil
		}
	}
	answers := func(method, url, body string) check {
		return func(v *Validator) error { _, err := checkResponse(v, method, url, 200, body); return err }
	}
	const verified = `{"success": true, "errors": [], "messages": [], "result": {"id": "ed17574386854bf78a67040be0a770b0", "status": "active"}}`
	const group = acctURL + "/iam/user_groups/f267e341f3dd4697bd3b9f71dd96247f"
	const groupPolicy = `{"id": "7a1b2c3d4e5f60718293a4b5c6d7e8f9", "access": "allow", "permission_groups": [{"id": "c8fed203ed3043cba015a93ad1616f1f"}], "resource_groups": [{"id": "6d7f2f5f5b1d4a0e9081fdc98d432fd1"}]}`
	const listed = `{"success": true, "errors": [], "messages": [], "result_info": {"page": 1, "per_page": 100, "count": 1, "total_count": 1},
		"result": [{"id": "f267e341f3dd4697bd3b9f71dd96247f", "name": "oncall", "created_on": "2026-01-01T00:00:00Z", "modified_on": "2026-01-01T00:00:00Z", "policies": []}]}`
	proofs := map[string][]check{
		"iam_resource_group_identifier is a 32-character string": {
			accepts("GET", acctURL+"/iam/resource_groups?id=6d7f2f5f5b1d4a0e9081fdc98d432fd1", ""),
			refuses("GET", acctURL+"/iam/resource_groups?id=6d7f", ""),
		},
		"iam_response_single_account is the 2024 iam_response_single": {
			answers("GET", acctURL, `{"success": true, "errors": [], "messages": [], "result": {"id": "023e105f4ecef8ad9ca31a8372d0c353", "name": "Example"}}`),
		},
		"iam_token_verify_response_single_segment is the 2024 iam_response_single_segment": {
			answers("GET", apiBase+"/user/tokens/verify", verified),
			answers("GET", acctURL+"/tokens/verify", verified),
		},
		"PUT /members/{member_id} takes the with-policies body": {
			accepts("PUT", member, `{"policies": `+policies+`}`),
			refuses("PUT", member, `{}`),
			refuses("PUT", member, `{"roles": ["3536bcfad5faccb999b47003c79917fb"]}`),
		},
		"DELETE /members/{member_id} has no required body": {
			accepts("DELETE", member, ""),
		},
		"iam_user_group_identifier is a 32-character string": {
			accepts("GET", group, ""),
			refuses("GET", acctURL+"/iam/user_groups/f267", ""),
		},
		"iam_user_group_member_identifier is a 32-character string": {
			accepts("DELETE", group+"/members/4f5f0c14a2a41d5063dd301b2f829f04", ""),
			refuses("DELETE", group+"/members/4f5f", ""),
		},
		"iam_permission_group_ids and iam_resource_group_ids are arrays of {id}": {
			accepts("PUT", group, `{"policies": [`+groupPolicy+`]}`),
			refuses("PUT", group, `{"policies": [{"id": "7a1b2c3d4e5f60718293a4b5c6d7e8f9", "access": "allow", "permission_groups": [{}], "resource_groups": [{}]}]}`),
		},
		"iam_user_groups is an array of iam_user_group": {
			answers("GET", acctURL+"/iam/user_groups", listed),
		},
	}
	with := newTestValidator(t)
	for _, f := range SchemaFixes {
		checks := proofs[f.Name]
		if len(checks) == 0 {
			t.Errorf("schema fix %q: no proof it is needed", f.Name)
			continue
		}
		without, err := newValidator(schemaPath, apiBase, f.Name)
		allHold := err == nil
		for _, c := range checks {
			if err := c(with); err != nil {
				t.Errorf("schema fix %q: %v", f.Name, err)
			}
			if without != nil && c(without) != nil {
				allHold = false
			}
		}
		if allHold {
			t.Errorf("schema fix %q: everything holds without it: the fix is stale", f.Name)
		}
	}
	for name := range proofs {
		if !slices.ContainsFunc(SchemaFixes, func(f SchemaFix) bool { return f.Name == name }) {
			t.Errorf("proof for %q, which is not a schema fix", name)
		}
	}
}

// TestFakeServesTheContract drives every endpoint of the fake through the
// validating transport: requests as a client would send them, responses as
// the fake answers, errors included.
func TestFakeServesTheContract(t *testing.T) {
	t.Parallel()
	s := fake.New(fake.Options{Token: "t", Owner: "owner@example.com"})
	ts := httptest.NewServer(s)
	defer ts.Close()
	tr := &Transport{Validator: newTestValidator(t), Errorf: t.Errorf}
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
	do("GET", acct+"/tokens/verify", nil)
	do("GET", acct, nil)
	do("GET", acct+"/roles", nil)
	dns := first(do("GET", acct+"/iam/permission_groups?name=Domain+DNS", nil))["id"] // domain-scoped: fits the zone group
	do("GET", acct+"/iam/permission_groups?page=2&per_page=50", nil)
	do("GET", "/zones?account.id="+s.AccountID()+"&name=example.com", nil)
	rg := do("POST", acct+"/iam/resource_groups", map[string]any{"name": "example.com", "scope": map[string]any{
		"key": "com.cloudflare.api.account." + s.AccountID(), "objects": []any{map[string]string{"key": desired.ZoneKeyPrefix + zone}}}})
	rgID := rg["result"].(map[string]any)["id"]
	do("GET", acct+"/iam/resource_groups", nil)
	pol := []any{map[string]any{"access": "allow", "permission_groups": []any{map[string]any{"id": dns}}, "resource_groups": []any{map[string]any{"id": rgID}}}}
	m := do("POST", acct+"/members", map[string]any{"email": "new@example.com", "policies": pol})
	id := m["result"].(map[string]any)["id"].(string)
	do("POST", acct+"/members", map[string]any{"email": "new@example.com", "policies": pol}) // 400: exists
	do("GET", acct+"/members?page=1&per_page=50", nil)
	do("GET", acct+"/members/"+id, nil)
	do("PUT", acct+"/members/"+id, map[string]any{"status": m["result"].(map[string]any)["status"], "policies": pol})
	// User groups: every operation cfaccess uses, as it sends them.
	accepted := m["result"].(map[string]any)
	s.Accept("new@example.com")
	g := do("POST", acct+"/iam/user_groups", map[string]any{"name": "oncall", "policies": pol})["result"].(map[string]any)
	gid := g["id"].(string)
	kept := g["policies"].([]any)[0].(map[string]any)["id"]
	do("GET", acct+"/iam/user_groups?page=1&per_page=100", nil)
	do("GET", acct+"/iam/user_groups/"+gid, nil)
	twice := append([]any{map[string]any{"id": kept, "access": "allow", "permission_groups": []any{map[string]any{"id": dns}},
		"resource_groups": []any{map[string]any{"id": rgID}}}}, pol...) // the second, added, without an id
	do("PUT", acct+"/iam/user_groups/"+gid, map[string]any{"policies": twice})
	do("PUT", acct+"/iam/user_groups/"+gid, map[string]any{"policies": []any{map[string]any{"id": "0123456789abcdef0123456789abcdef",
		"access": "allow", "permission_groups": []any{map[string]any{"id": dns}}, "resource_groups": []any{map[string]any{"id": rgID}}}}}) // 400: not its policy
	do("POST", acct+"/iam/user_groups/"+gid+"/members", []any{map[string]any{"id": accepted["id"]}})
	do("GET", acct+"/iam/user_groups/"+gid+"/members?page=1&per_page=100", nil)
	do("GET", acct+"/iam/user_groups/"+gid+"/members/"+id, nil)
	do("DELETE", acct+"/iam/user_groups/"+gid+"/members/"+id, nil)
	do("GET", acct+"/iam/user_groups/"+gid+"/members/"+id, nil) // 404
	do("DELETE", acct+"/members/"+id, nil)
	do("GET", acct+"/members/"+id, nil) // 404

	ops := tr.Operations()
	var got []string
	for op := range ops {
		got = append(got, op)
	}
	slices.Sort(got)
	want := []string{
		"DELETE /accounts/{account_id}/iam/user_groups/{user_group_id}/members/{member_id}",
		"DELETE /accounts/{account_id}/members/{member_id}",
		"GET /accounts/{account_id}",
		"GET /accounts/{account_id}/iam/permission_groups",
		"GET /accounts/{account_id}/iam/resource_groups",
		"GET /accounts/{account_id}/iam/user_groups",
		"GET /accounts/{account_id}/iam/user_groups/{user_group_id}",
		"GET /accounts/{account_id}/iam/user_groups/{user_group_id}/members",
		"GET /accounts/{account_id}/iam/user_groups/{user_group_id}/members/{member_id}",
		"GET /accounts/{account_id}/members",
		"GET /accounts/{account_id}/members/{member_id}",
		"GET /accounts/{account_id}/roles",
		"GET /accounts/{account_id}/tokens/verify",
		"GET /user/tokens/verify",
		"GET /zones",
		"POST /accounts/{account_id}/iam/resource_groups",
		"POST /accounts/{account_id}/iam/user_groups",
		"POST /accounts/{account_id}/iam/user_groups/{user_group_id}/members",
		"POST /accounts/{account_id}/members",
		"PUT /accounts/{account_id}/iam/user_groups/{user_group_id}",
		"PUT /accounts/{account_id}/members/{member_id}",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("operations exercised (-want +got):\n%s", diff)
	}
	if n := tr.Applied()["a policy added by a user-group update has no id"]; n != 1 {
		t.Errorf("the added policy's difference applied %d times, want 1", n)
	}
}

// TestCatchesBadRequests checks the validator is not vacuous.
func TestCatchesBadRequests(t *testing.T) {
	t.Parallel()
	v := newTestValidator(t)
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/accounts/023e105f4ecef8ad9ca31a8372d0c353/members", `{"policies": []}`},
		{"POST", "/accounts/023e105f4ecef8ad9ca31a8372d0c353/members", `{"email": "a@example.com", "status": "invited", "policies": []}`},
		{"PUT", "/accounts/023e105f4ecef8ad9ca31a8372d0c353/members/x", `{"roles": [{"id": "r"}]}`},
		{"PUT", "/accounts/023e105f4ecef8ad9ca31a8372d0c353/members/x", `{}`},
		{"PUT", "/accounts/023e105f4ecef8ad9ca31a8372d0c353/members/x", `{"status": "accepted", "policies": [{"id": "f267e341f3dd4697bd3b9f71dd96247f", "access": "allow", "permission_groups": [{"id": "p"}], "resource_groups": [{"id": "r"}]}]}`},
		{"PUT", "/accounts/023e105f4ecef8ad9ca31a8372d0c353/members/x", `{"status": "accepted", "policies": [{"access": "maybe", "permission_groups": [{"id": "p"}], "resource_groups": [{"id": "r"}]}]}`},
		{"POST", "/accounts/023e105f4ecef8ad9ca31a8372d0c353/iam/resource_groups", `{"scope": {"key": "k", "objects": [{"key": "*"}]}}`},
		{"GET", "/accounts/023e105f4ecef8ad9ca31a8372d0c353/roles?per_page=500", ``},
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
