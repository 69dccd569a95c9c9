package cloudflare

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cfaccess/reconciler/internal/cloudflare/contract"
	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/testkit"
)

const testToken = "cf-test-token-0123456789abcdef"

var account = desired.Resource{Kind: desired.WholeAccount}

type env struct {
	fake   *fake.Server
	client *Client
	url    string
}

// newEnv starts the fake account over real HTTP and a client whose every
// request and response is checked against Cloudflare's OpenAPI schema.
func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	return newEnvFor(t, fake.New(fake.Options{Token: testToken}), cfg)
}

// newEnvFor is newEnv with a fake made by the caller.
func newEnvFor(t *testing.T, s *fake.Server, cfg Config) *env {
	t.Helper()
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return newEnvAt(t, s, ts.URL, http.DefaultTransport, cfg)
}

// newBubbleEnv is newEnvFor in process, for a testing/synctest bubble: the
// client reaches the fake through testkit.Transport, as no socket can be
// used there, so that Retry-After waits and backoff pass in the bubble's
// time.
func newBubbleEnv(t *testing.T, s *fake.Server, cfg Config) *env {
	t.Helper()
	return newEnvAt(t, s, "http://cloudflare.test", testkit.Transport(s), cfg)
}

// newEnvAt makes the client of s at url, carried by base through the
// validating transport.
func newEnvAt(t *testing.T, s *fake.Server, url string, base http.RoundTripper, cfg Config) *env {
	t.Helper()
	cfg.BaseURL = url + fake.BasePath
	if cfg.Credentials == (Credentials{}) {
		cfg.Credentials = Credentials{Token: testToken, Source: "environment variable CLOUDFLARE_API_TOKEN"}
	}
	cfg.HTTPClient = &http.Client{Transport: &contract.Transport{Validator: testValidator(t), Base: base, Errorf: t.Errorf}}
	return &env{fake: s, client: New(cfg), url: url}
}

// contractValidator is the contract validator every test shares: building
// it is a good part of the package's test time. It matches requests by
// path alone, so it fits every test server's address.
var contractValidator = sync.OnceValues(func() (*contract.Validator, error) {
	return contract.New("testdata/openapi-excerpt-2024-08-06.json", fake.BasePath)
})

func testValidator(t *testing.T) *contract.Validator {
	t.Helper()
	v, err := contractValidator()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (e *env) addMembers(t *testing.T, n int) {
	t.Helper()
	zone := desired.Resource{Kind: desired.ZoneName, Zone: "example.com"}
	for i := range n {
		spec := fake.MemberSpec{Email: fmt.Sprintf("user%03d@example.com", i), Pending: i%7 == 0, TwoFactor: i%2 == 0,
			Access: []desired.Access{{Role: "Domain DNS", Resource: zone}, {Role: "Analytics", Resource: account}}}
		if _, err := e.fake.PutMember(spec); err != nil {
			t.Fatal(err)
		}
	}
}

func countPath(reqs []fake.Request, suffix string) int {
	n := 0
	for _, r := range reqs {
		if strings.HasSuffix(r.Path, suffix) {
			n++
		}
	}
	return n
}

func TestReadAccountSizes(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 49, 50, 51, 120} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			e := newEnv(t, Config{})
			e.addMembers(t, n)
			acct, err := e.client.ReadAccount(t.Context(), e.fake.AccountID(), ReadOptions{Zones: []string{"example.com"}})
			if err != nil {
				t.Fatal(err)
			}
			if len(acct.Members) != n {
				t.Fatalf("%d members, want %d", len(acct.Members), n)
			}
			zoneID := acct.ZoneIDs["example.com"]
			if n > 0 && zoneID == "" {
				t.Fatal("example.com not resolved")
			}
			for i, m := range acct.Members {
				want := Member{ID: m.ID, Email: fmt.Sprintf("user%03d@example.com", i), Status: "accepted", TwoFactor: i%2 == 0,
					Access: []desired.Access{{Role: "Analytics", Resource: account}, {Role: "Domain DNS", Resource: desired.Resource{Kind: desired.ZoneKey, Zone: zoneID}}}}
				if i%7 == 0 {
					want.Status = "pending"
				}
				if diff := cmp.Diff(want, m); diff != "" {
					t.Fatalf("member %d (-want +got):\n%s", i, diff)
				}
			}
			pages := max(1, (n+49)/50)
			if got := countPath(e.fake.Requests(), "/members"); got != pages {
				t.Errorf("%d member list requests, want %d (one per page, no empty page)", got, pages)
			}
			if len(acct.PermissionGroups) != 91 {
				t.Errorf("%d permission groups, want 91", len(acct.PermissionGroups))
			}
		})
	}
}

// Members made with legacy roles are listed with matching policies too,
// and read from those; a pending member's email is in user.email; deny
// policies are counted.
func TestReadRolesPendingAndDeny(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	zid := e.fake.AddZone("example.com")
	if _, err := e.fake.PutMember(fake.MemberSpec{Email: "Old@Example.com", LegacyRoles: []string{"Administrator Read Only", "Billing"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.fake.PutMember(fake.MemberSpec{Email: "new@example.com", Pending: true,
		Access: []desired.Access{{Role: "Domain DNS", Resource: desired.Resource{Kind: desired.ZoneName, Zone: "example.com"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.fake.PutMember(fake.MemberSpec{Email: "denied@example.com", Access: []desired.Access{{Role: "Analytics", Resource: account}}, Deny: []string{"Billing"}}); err != nil {
		t.Fatal(err)
	}
	acct, err := e.client.ReadAccount(t.Context(), e.fake.AccountID(), ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Member{
		{Email: "denied@example.com", Status: "accepted", Denies: 1, Access: []desired.Access{{Role: "Analytics", Resource: account}}},
		{Email: "new@example.com", Status: "pending", Access: []desired.Access{{Role: "Domain DNS", Resource: desired.Resource{Kind: desired.ZoneKey, Zone: zid}}}},
		{Email: "old@example.com", Status: "accepted", Access: []desired.Access{{Role: "Administrator Read Only", Resource: account}, {Role: "Billing", Resource: account}}},
	}
	if diff := cmp.Diff(want, acct.Members, cmpIgnoreID); diff != "" {
		t.Errorf("members (-want +got):\n%s", diff)
	}
}

var cmpIgnoreID = cmp.Transformer("noID", func(m Member) Member { m.ID = ""; return m })

// A 429 is retried after exactly the Retry-After it gives, in the bubble's
// time.
func TestRetry429ThenSuccess(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		e := newBubbleEnv(t, fake.New(fake.Options{Token: testToken}), Config{})
		e.addMembers(t, 3)
		e.fake.Fail(fake.Failure{Path: "/accounts/" + e.fake.AccountID() + "/members", Status: 429, RetryAfter: "1", Times: 1})
		start := time.Now()
		acct, err := e.client.ReadAccount(t.Context(), e.fake.AccountID(), ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(acct.Members) != 3 {
			t.Errorf("%d members, want 3", len(acct.Members))
		}
		var statuses []int
		for _, r := range e.fake.Requests() {
			if strings.HasSuffix(r.Path, "/members") {
				statuses = append(statuses, r.Status)
			}
		}
		if diff := cmp.Diff([]int{429, 200}, statuses); diff != "" {
			t.Errorf("member list statuses (-want +got):\n%s", diff)
		}
		if waited := time.Since(start); waited != time.Second {
			t.Errorf("retried after %v; Retry-After said 1s", waited)
		}
	})
}

func TestServerErrorOnPage2FailsTheRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{MaxRetries: -1})
	e.addMembers(t, 120)
	e.fake.Fail(fake.Failure{Path: "/accounts/" + e.fake.AccountID() + "/members", Page: 2, Status: 502})
	acct, err := e.client.ReadAccount(t.Context(), e.fake.AccountID(), ReadOptions{})
	if acct != nil || err == nil {
		t.Fatalf("ReadAccount = %v, %v; want no account and an error", acct, err)
	}
	if !IsTransient(err) || !strings.Contains(err.Error(), "list members of account "+e.fake.AccountID()+": 502 Bad Gateway") {
		t.Errorf("error = %v (transient %v)", err, IsTransient(err))
	}
}

func TestWrongTokenNamesItsSourceOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{Credentials: Credentials{Token: "wrong-secret-value-123456", Source: "file /run/secrets/cf-token"}})
	_, err := e.client.ReadAccount(t.Context(), e.fake.AccountID(), ReadOptions{})
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if strings.Contains(msg, "wrong-secret-value") || strings.Contains(fmt.Sprintf("%v %+v %#v", err, err, e.client.creds), "wrong-secret-value") {
		t.Errorf("the token leaked: %s", msg)
	}
	if !strings.Contains(msg, "403 Forbidden: Authentication error (code 10000); check the token from file /run/secrets/cf-token") {
		t.Errorf("error = %s", msg)
	}
	var ae *APIError
	if !errors.As(err, &ae) || !ae.Auth() || ae.Transient() {
		t.Errorf("error %v: want an auth error, not transient", err)
	}
}

func TestWrites(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.fake.AddZone("example.com")
	e.fake.AddZone("api.example.com")
	ctx := t.Context()
	id := e.fake.AccountID()
	acct, err := e.client.ReadAccount(ctx, id, ReadOptions{Zones: []string{"example.com", "api.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	dns, err := acct.PermissionGroup("Domain DNS")
	if err != nil {
		t.Fatal(err)
	}
	if dns.Scope != desired.ScopeDomain {
		t.Errorf("Domain DNS scope %v, want domain-scoped", dns.Scope)
	}
	if _, err := acct.PermissionGroup("Domain DSN"); err == nil || !strings.Contains(err.Error(), `role "Domain DSN" does not exist in Cloudflare account `+id+` (did you mean "Domain DNS"?)`) {
		t.Errorf("unknown role error = %v", err)
	}
	var zones []desired.Resource
	for _, name := range []string{"example.com", "api.example.com"} {
		z, err := acct.Resolve(desired.Resource{Kind: desired.ZoneName, Zone: name})
		if err != nil {
			t.Fatal(err)
		}
		zones = append(zones, z)
	}
	if _, err := acct.Resolve(desired.Resource{Kind: desired.ZoneName, Zone: "exmaple.com"}); err == nil || !strings.Contains(err.Error(), `(did you mean "example.com"?)`) {
		t.Errorf("unknown zone error = %v", err)
	}
	if err := e.client.loadResourceGroups(ctx, acct); err != nil {
		t.Fatal(err)
	}
	if _, ok := acct.ResourceGroup(zones); ok {
		t.Fatal("domain group exists before creation")
	}
	rg, err := e.client.CreateResourceGroup(ctx, id, "cfaccess: web", zones)
	if err != nil {
		t.Fatal(err)
	}
	if rg.Name != "cfaccess: web" || len(rg.Resources) != 2 {
		t.Errorf("created %+v", rg)
	}
	acctRG, ok := acct.ResourceGroup([]desired.Resource{account})
	if !ok {
		t.Fatal("no account resource group")
	}
	analytics, _ := acct.PermissionGroup("Analytics")
	pols := []Policy{{PermissionGroups: []string{dns.ID}, ResourceGroups: []string{rg.ID}}}
	mid, err := e.client.Invite(ctx, id, "alice@example.com", pols)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.Invite(ctx, id, "alice@example.com", pols); !errors.Is(err, ErrAlreadyMember) || !strings.Contains(err.Error(), "(code 1008)") {
		t.Errorf("second invite: %v, want ErrAlreadyMember (code 1008)", err)
	}
	if err := e.client.ReplacePolicies(ctx, id, mid, "pending", []Policy{{PermissionGroups: []string{analytics.ID}, ResourceGroups: []string{acctRG.ID}}}); err != nil {
		t.Fatal(err)
	}
	m, err := e.client.GetMember(ctx, &Account{ID: id}, mid)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]desired.Access{{Role: "Analytics", Resource: account}}, m.Access); diff != "" {
		t.Errorf("after update (-want +got):\n%s", diff)
	}
	// A wrong status is accepted with 200 and changes nothing (the fake is
	// faithful to Cloudflare there): only a read-back shows it.
	if err := e.client.ReplacePolicies(ctx, id, mid, "accepted", pols); err != nil {
		t.Fatal(err)
	}
	if m, _ := e.client.GetMember(ctx, &Account{ID: id}, mid); m.Access[0].Role != "Analytics" {
		t.Errorf("a PUT with another status changed the member: %v", m.Access)
	}
	billing, _ := acct.PermissionGroup("Billing")
	err = e.client.ReplacePolicies(ctx, id, mid, "pending", []Policy{{PermissionGroups: []string{billing.ID}, ResourceGroups: []string{rg.ID}}})
	if err == nil || !strings.Contains(err.Error(), "(code 1006)") {
		t.Errorf("account-scoped role on a domain group: %v, want code 1006", err)
	}
	if err := e.client.Remove(ctx, id, mid); err != nil {
		t.Fatal(err)
	}
	if len(e.fake.Members()) != 0 {
		t.Errorf("members left: %v", e.fake.Members())
	}
	// Never a status on create; always the current one on update.
	for _, r := range e.fake.Requests() {
		switch {
		case r.Method == "POST" && strings.Contains(string(r.Body), `"status"`):
			t.Errorf("%s %s sent a status: %s", r.Method, r.Path, r.Body)
		case r.Method == "PUT" && !strings.Contains(string(r.Body), `"status":"`):
			t.Errorf("%s %s sent no status: %s", r.Method, r.Path, r.Body)
		case r.Method == "POST" && strings.HasSuffix(r.Path, "/resource_groups") && !strings.Contains(string(r.Body), `"name":"cfaccess: web"`):
			t.Errorf("resource group created without its name: %s", r.Body)
		}
	}
}

// Every attempt is observed, a retried 500 too; the retry's backoff
// passes in the bubble's time.
func TestObserveCountsEveryAttempt(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		seen := map[string]int{}
		e := newBubbleEnv(t, fake.New(fake.Options{Token: testToken}), Config{Observe: func(method, endpoint, code string, d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			seen[method+" "+endpoint+" "+code]++
		}})
		e.fake.Fail(fake.Failure{Path: "/accounts/" + e.fake.AccountID(), Status: 500, Times: 1})
		if _, err := e.client.Verify(t.Context(), e.fake.AccountID()); err != nil {
			t.Fatal(err)
		}
		want := map[string]int{"GET /accounts/:id 500": 1, "GET /accounts/:id 200": 1}
		if diff := cmp.Diff(want, seen); diff != "" {
			t.Errorf("observed (-want +got):\n%s", diff)
		}
	})
}

func TestWindowLimiter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	w := newWindow(3, time.Minute, clock)
	for range 3 {
		if err := w.Wait(t.Context(), 0); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := w.Wait(ctx, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("4th event within the window: %v, want to wait", err)
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	if err := w.Wait(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
}

func TestEndpoint(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/client/v4/accounts/023e105f4ecef8ad9ca31a8372d0c353/members":                                  "/accounts/:id/members",
		"/client/v4/accounts/023e105f4ecef8ad9ca31a8372d0c353/members/9ad9fa82d0ca4f4da16d8869b062892b": "/accounts/:id/members/:id",
		"/client/v4/zones": "/zones",
	} {
		if got := Endpoint(in); got != want {
			t.Errorf("Endpoint(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOwner(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	if owner, err := e.client.Owner(t.Context()); owner != "" || err != nil {
		t.Errorf("Owner() = %q, %v; want no owner and no error for a token that may not read /user", owner, err)
	}
}

// TestMembersChangingWhileRead: a member added between two page reads
// shifts the pages. The client notices the count change and fails the
// read as transient — nothing is decided on a list that was moving — after
// no more requests than the pages the first page announced.
func TestMembersChangingWhileRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.addMembers(t, 120)
	var once sync.Once
	e.fake.BeforeRequest(func(r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/members") && r.URL.Query().Get("page") == "2" {
			once.Do(func() {
				if _, err := e.fake.PutMember(fake.MemberSpec{Email: "aaa-new@example.com",
					Access: []desired.Access{{Role: "DNS", Resource: account}}}); err != nil {
					t.Error(err)
				}
			})
		}
	})
	acct, err := e.client.ReadAccount(t.Context(), e.fake.AccountID(), ReadOptions{})
	if acct != nil || err == nil || !IsTransient(err) || !strings.Contains(err.Error(), "the list changed while it was read") {
		t.Fatalf("ReadAccount = %v, %v; want a transient error", acct != nil, err)
	}
	if got := countPath(e.fake.Requests(), "/members"); got > 3 {
		t.Errorf("%d member page requests, want at most 3", got)
	}
	acct, err = e.client.ReadAccount(t.Context(), e.fake.AccountID(), ReadOptions{})
	if err != nil || len(acct.Members) != 121 {
		t.Fatalf("the next read: %v; want 121 members", err)
	}
}

func TestZonesListedWhenMany(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	var names []string
	for i := range 60 {
		names = append(names, fmt.Sprintf("z%02d.example.com", i))
		e.fake.AddZone(names[i])
	}
	acct, err := e.client.ReadAccount(t.Context(), e.fake.AccountID(), ReadOptions{Zones: names[:10]})
	if err != nil {
		t.Fatal(err)
	}
	if len(acct.ZoneIDs) != 10 {
		t.Errorf("%d zones resolved, want the 10 asked for", len(acct.ZoneIDs))
	}
	if got := countPath(e.fake.Requests(), "/zones"); got != 2 {
		t.Errorf("%d zone requests, want 2 (60 zones, 50 a page)", got)
	}
}

// Under leader election a write is sent only before the fence the lease
// gives (Config.WritesUntil): past it, nothing reaches Cloudflare and the
// call fails as transient; reads go on.
func TestWritesFenced(t *testing.T) {
	t.Parallel()
	s := fake.New(fake.Options{Token: testToken})
	var until atomic.Pointer[time.Time]
	past, future := time.Now().Add(-time.Second), time.Now().Add(time.Hour)
	until.Store(&future)
	e := newEnvFor(t, s, Config{WritesUntil: func() time.Time { return *until.Load() }})
	ctx := t.Context()
	acct, err := e.client.ReadAccount(ctx, s.AccountID(), ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	analytics, _ := acct.PermissionGroup("Analytics")
	rg, err := e.client.CreateResourceGroup(ctx, s.AccountID(), "cfaccess: account", []desired.Resource{account})
	if err != nil {
		t.Fatal(err)
	}
	pols := []Policy{{PermissionGroups: []string{analytics.ID}, ResourceGroups: []string{rg.ID}}}
	until.Store(&past)
	s.ResetRequests()
	_, err = e.client.Invite(ctx, s.AccountID(), "carol@example.com", pols)
	if err == nil || !strings.Contains(err.Error(), "does not hold the leader lease") {
		t.Errorf("a write past the fence: %v", err)
	}
	if n := len(s.Requests()); n != 0 {
		t.Errorf("%d requests reached Cloudflare past the fence", n)
	}
	until.Store(&future)
	if _, err := e.client.Invite(ctx, s.AccountID(), "carol@example.com", pols); err != nil {
		t.Errorf("a write within the fence: %v", err)
	}
}
