package testkit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Insider changes an account over its API as a person with a token of
// their own would, with curl: any User-Agent they like ("cfaccess/…"
// included), their token or one they got hold of.
type Insider struct {
	// BaseURL is the API's (APIURL for Transport, or a served fake's).
	BaseURL   string
	AccountID string
	Token     string
	UserAgent string
	// Transport carries the requests (http.DefaultTransport when nil).
	Transport http.RoundTripper
}

// SetRole gives the member of email exactly role on the whole account
// (PUT /members/{id}, with its status), as the dashboard's API would.
func (in Insider) SetRole(t testing.TB, email, role string) {
	t.Helper()
	id, status := in.member(t, email)
	body := map[string]any{"status": status, "policies": in.policy(t, role)}
	in.call(t, "PUT", "/accounts/"+in.AccountID+"/members/"+id, body, nil)
}

// Invite invites email with role on the whole account (POST /members).
func (in Insider) Invite(t testing.TB, email, role string) {
	t.Helper()
	in.call(t, "POST", "/accounts/"+in.AccountID+"/members", map[string]any{"email": email, "policies": in.policy(t, role)}, nil)
}

// Remove removes the member of email (DELETE /members/{id}).
func (in Insider) Remove(t testing.TB, email string) {
	t.Helper()
	id, _ := in.member(t, email)
	in.call(t, "DELETE", "/accounts/"+in.AccountID+"/members/"+id, nil, nil)
}

// member finds a member's id and status by email (the first page).
func (in Insider) member(t testing.TB, email string) (id, status string) {
	t.Helper()
	var members []struct {
		ID, Status string
		User       struct{ Email string }
	}
	in.call(t, "GET", "/accounts/"+in.AccountID+"/members?per_page=50", nil, &members)
	for _, m := range members {
		if strings.EqualFold(m.User.Email, email) {
			return m.ID, m.Status
		}
	}
	t.Fatalf("insider: %s is not a member (first page)", email)
	return "", ""
}

// policy is role on the whole account, as a write's policies.
func (in Insider) policy(t testing.TB, role string) []any {
	t.Helper()
	acct := "/accounts/" + in.AccountID
	var pgs []struct{ ID string }
	in.call(t, "GET", acct+"/iam/permission_groups?name="+url.QueryEscape(role), nil, &pgs)
	if len(pgs) == 0 {
		t.Fatalf("insider: no permission group %q", role)
	}
	var rgs []struct {
		ID    string
		Scope struct {
			Key     string
			Objects []struct{ Key string }
		}
	}
	in.call(t, "GET", acct+"/iam/resource_groups", nil, &rgs)
	for _, g := range rgs {
		if g.Scope.Key == "com.cloudflare.api.account."+in.AccountID && len(g.Scope.Objects) == 1 && g.Scope.Objects[0].Key == "*" {
			return []any{map[string]any{"access": "allow", "permission_groups": []any{map[string]string{"id": pgs[0].ID}},
				"resource_groups": []any{map[string]string{"id": g.ID}}}}
		}
	}
	t.Fatal("insider: no resource group of the whole account")
	return nil
}

// call makes one request and decodes its result into out (when not nil).
func (in Insider) call(t testing.TB, method, path string, body, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, strings.TrimSuffix(in.BaseURL, "/")+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+in.Token)
	req.Header.Set("User-Agent", in.UserAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	tr := in.Transport
	if tr == nil {
		tr = http.DefaultTransport
	}
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("insider: %s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	var env struct {
		Success bool
		Result  json.RawMessage
	}
	if err := json.NewDecoder(res.Body).Decode(&env); err != nil || !env.Success {
		t.Fatalf("insider: %s %s: %d %s %v", method, path, res.StatusCode, env.Result, err)
	}
	if out != nil {
		if err := json.Unmarshal(env.Result, out); err != nil {
			t.Fatal(fmt.Errorf("insider: %s %s: %w", method, path, err))
		}
	}
}
