package doctor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/cloudflare/contract"
	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/doctor"
	"github.com/cfaccess/reconciler/internal/testkit"
)

// client reads through t, with the story's token.
func client(t http.RoundTripper) *cloudflare.Client {
	return cloudflare.New(cloudflare.Config{BaseURL: testkit.APIURL, Credentials: cloudflare.Credentials{Token: testkit.Token, Source: "test"},
		HTTPClient: &http.Client{Transport: t}, MaxRetries: -1})
}

// A recording holds no email, no name of the account and no token; it
// validates against the API contract, and replays: read back through the
// client it gives the same account, which seeds a fake that the doctor
// finds as healthy as the original.
func TestRecordAndReplay(t *testing.T) {
	t.Parallel()
	story := testkit.NewStoryWith(t, fake.Options{Token: testkit.Token, AccountName: "Acme Secret Projects"})
	story.Fake.AddOrgMember("root@example.com", "accepted")
	if _, err := story.Fake.PutUserGroup(fake.UserGroupSpec{Name: "Acme night shift", Members: []string{"alice@example.com"},
		Access: []desired.Access{{Role: "Administrator", Resource: testkit.WholeAccount}}}); err != nil {
		t.Fatal(err)
	}
	probe := &doctor.Probe{Next: story.Transport(), Base: fake.BasePath}
	target := doctor.Target{Provider: "prod", AccountID: story.Fake.AccountID(), Client: client(probe)}
	before := doctor.CheckAccount(context.Background(), target, story.Now)
	if doctor.Failed(before) {
		t.Fatalf("the original account fails: %+v", before)
	}
	dir := t.TempDir()
	if err := doctor.Record(dir, probe.Exchanges(), testkit.Token); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, secret := range []string{testkit.Token, "Acme Secret Projects", "Acme night shift", "alice@", "stranger@", "owner@", "root@", "Authorization", "Bearer"} {
			if strings.Contains(string(b), secret) {
				t.Errorf("%s holds %q", filepath.Base(f), secret)
			}
		}
	}
	xs, err := doctor.Load(dir)
	if err != nil || len(xs) != len(probe.Exchanges()) {
		t.Fatalf("load: %d exchanges, %v", len(xs), err)
	}
	v, err := contract.New("../cloudflare/testdata/openapi-excerpt-2024-08-06.json", fake.BasePath)
	if err != nil {
		t.Fatal(err)
	}
	replayed := client(&contract.Transport{Validator: v, Base: doctor.Replay(xs, fake.BasePath), Errorf: t.Errorf})
	acct, err := replayed.ReadAccount(context.Background(), story.Fake.AccountID(), cloudflare.ReadOptions{AllZones: true})
	if err != nil {
		t.Fatalf("the replay does not read: %v", err)
	}
	if got, want := len(acct.Members), len(story.Fake.Members()); got != want {
		t.Errorf("replayed %d members, the account has %d", got, want)
	}
	original, err := client(story.Transport()).ReadAccount(context.Background(), story.Fake.AccountID(), cloudflare.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(acct.PermissionGroups), fmt.Sprint(original.PermissionGroups); got != want {
		t.Errorf("the roles changed in the recording:\n%s\nwant\n%s", got, want)
	}
	if len(acct.UserGroups) != 1 || fmt.Sprint(acct.UserGroups[0].Access) != fmt.Sprint(original.UserGroups[0].Access) {
		t.Errorf("the user group's access changed in the recording: %+v", acct.UserGroups)
	}
	if err := doctor.Record(dir, probe.Exchanges()); err == nil {
		t.Error("a recording written over another")
	}

	// The replayed account, seeded into a fake of its own.
	seeded := testkit.NewStoryWith(t, fake.Options{Token: testkit.Token, AccountID: story.Fake.AccountID()})
	for _, m := range seeded.Fake.Members() {
		seeded.Fake.RemoveMember(m.Email)
	}
	for _, m := range acct.Members {
		spec := fake.MemberSpec{Email: m.Email, Pending: m.Status == "pending"}
		for _, a := range m.Access {
			spec.Access = append(spec.Access, desired.Access{Role: a.Role, Resource: acct.Display(a.Resource)})
		}
		if _, err := seeded.Fake.PutMember(spec); err != nil {
			t.Fatal(err)
		}
	}
	after := doctor.CheckAccount(context.Background(), doctor.Target{Provider: "prod", AccountID: seeded.Fake.AccountID(), Client: client(seeded.Transport())}, seeded.Now)
	if doctor.Failed(after) || len(after) != len(before) {
		t.Errorf("the seeded fake: %+v\nthe original: %+v", after, before)
	}
}

// The traffic checks: the budget left, and the clock against Date.
func TestTraffic(t *testing.T) {
	t.Parallel()
	sent := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	x := func(date time.Time, ratelimit string) doctor.Exchange {
		return doctor.Exchange{Method: "GET", Path: "/user/tokens/verify", Status: 200, Sent: sent, Received: sent.Add(200 * time.Millisecond),
			Header: map[string]string{"Date": date.Format(http.TimeFormat), "Ratelimit": ratelimit}}
	}
	withPolicy := func(ratelimit string) doctor.Exchange {
		e := x(sent, ratelimit)
		e.Header["Ratelimit-Policy"] = `"default";q=1200;w=300`
		return e
	}
	for _, tc := range []struct {
		name  string
		xs    []doctor.Exchange
		marks map[string]doctor.Mark
	}{
		{"in step", []doctor.Exchange{x(sent, `"default";r=1100;t=200`)}, map[string]doctor.Mark{"rate limit": doctor.OK, "clock": doctor.OK}},
		{"budget spent elsewhere", []doctor.Exchange{x(sent, `"default";r=50;t=30`)}, map[string]doctor.Mark{"rate limit": doctor.Warn}},
		// With the quota known: 299 of 1,200 spent by others is a warning,
		// 99 is not, though over 200 are left either way.
		{"a quarter spent elsewhere", []doctor.Exchange{withPolicy(`"default";r=900;t=200`)}, map[string]doctor.Mark{"rate limit": doctor.Warn}},
		{"a little spent elsewhere", []doctor.Exchange{withPolicy(`"default";r=1100;t=200`)}, map[string]doctor.Mark{"rate limit": doctor.OK}},
		{"a minute behind", []doctor.Exchange{x(sent.Add(time.Minute), "")}, map[string]doctor.Mark{"clock": doctor.Warn}},
		{"ten minutes ahead", []doctor.Exchange{x(sent.Add(-10*time.Minute), "")}, map[string]doctor.Mark{"clock": doctor.Fail}},
		{"no Date", []doctor.Exchange{{Method: "GET", Status: 200}}, map[string]doctor.Mark{"clock": doctor.Warn}},
	} {
		got := map[string]doctor.Mark{}
		for _, f := range doctor.CheckTraffic(tc.xs) {
			got[f.Check] = f.Mark
		}
		for check, want := range tc.marks {
			if got[check] != want {
				t.Errorf("%s: %s is %s, want %s", tc.name, check, got[check], want)
			}
		}
	}
}

// The probe refuses anything but a GET before it leaves the process.
func TestProbeSendsOnlyGETs(t *testing.T) {
	t.Parallel()
	story := testkit.NewStory(t)
	probe := &doctor.Probe{Next: story.Transport(), Base: fake.BasePath}
	if err := client(probe).Remove(context.Background(), story.Fake.AccountID(), "0123456789abcdef0123456789abcdef"); err == nil || !strings.Contains(err.Error(), "doctor sends only GET requests") {
		t.Errorf("a DELETE through the probe: %v", err)
	}
	if reqs := story.Fake.Requests(); len(reqs) != 0 {
		t.Errorf("the fake saw %v", reqs)
	}
	if refused := probe.Refused(); len(refused) != 1 || !strings.HasPrefix(refused[0], "DELETE ") {
		t.Errorf("refused %v", refused)
	}
}

// What the sanitizer must not let through: IP addresses anywhere, names
// under any key, a name inside a text, emails in every spelling, an email
// as a key; and what it must keep: role names, zone names, ids.
func TestSanitizeHostile(t *testing.T) {
	t.Parallel()
	xs := []doctor.Exchange{
		{Method: "GET", Path: "/accounts/023e105f4ecef8ad9ca31a8372d0c353", Status: 200,
			Body: []byte(`{"result":{"id":"023e105f4ecef8ad9ca31a8372d0c353","name":"Acme Secret Projects","managed_by":{"parent_org_name":"Acme Holding"}}}`)},
		{Method: "GET", Path: "/accounts/023e105f4ecef8ad9ca31a8372d0c353/members", Status: 403,
			Body: []byte(`{"success":false,"errors":[{"code":9109,"message":"Cannot use the access token from location: 198.51.100.7"}]}`)},
		{Method: "GET", Path: "/organizations/o/members?email=dave%40corp.com;x", Status: 200,
			Body: []byte(`{"result":[{"id":"aa","user":{"name":"Dave Smith","email":"Dave@Corp.com"}}]}`)},
		{Method: "GET", Path: "/accounts/023e105f4ecef8ad9ca31a8372d0c353/logs/audit", Status: 200,
			Body: []byte(`{"result":[{"id":"e1","action":{"description":"Renamed account to Acme Secret Projects"},"account":{"id":"023e105f4ecef8ad9ca31a8372d0c353","name":"Acme Secret Projects"},
			"actor":{"token_name":"Bob laptop","ip_address":"2a01:4f8::1","email":"jürgen@müller.de"},
			"raw":{"uri":"/accounts/x/members?email=carol%40corp.com","user_agent":"curl from root@localhost"},
			"resource":{"request":{"o'brien@corp.com":"x","to":"brien@corp.com"}}}]}`)},
		{Method: "GET", Path: "/accounts/023e105f4ecef8ad9ca31a8372d0c353/iam/user_groups", Status: 200,
			Body: []byte(`{"result":[{"id":"g1","name":"Night shift","policies":[{"permission_groups":[{"id":"p1","name":"Administrator","meta":{"scopes":"com.cloudflare.api.account"}}],
			"resource_groups":[{"id":"r1","name":"Production web zones","scope":{"key":"k","objects":[]}}]}]}]}`)},
		{Method: "GET", Path: "/zones", Status: 200, Body: []byte(`{"result":[{"id":"z1","name":"shop.example.net","account":{"id":"023e105f4ecef8ad9ca31a8372d0c353","name":"Acme Secret Projects"}}]}`)},
		{Method: "GET", Path: "/user", Status: 502, Text: "<html>Your IP: 203.0.113.9; token tok-0123456789 refused</html>"},
		// A user group whose name could be part of an id: the ids stay whole.
		{Method: "GET", Path: "/accounts/023e105f4ecef8ad9ca31a8372d0c353/iam/user_groups/cafe", Status: 200,
			Body: []byte(`{"result":{"id":"cafecafecafecafecafecafecafecafe","name":"cafe","description":"the cafe rota"}}`)},
	}
	clean, err := doctor.Sanitize(xs, "tok-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	all := ""
	for _, x := range clean {
		all += x.Path + string(x.Body) + x.Text + "\n"
	}
	for _, leak := range []string{"198.51.100.7", "2a01:4f8::1", "203.0.113.9", "Acme", "Dave", "Bob laptop", "Night shift", "jürgen", "müller",
		"corp.com", "localhost", "tok-0123456789", "o'brien", "cafe rota"} {
		if strings.Contains(all, leak) {
			t.Errorf("%q survived:\n%s", leak, all)
		}
	}
	for _, kept := range []string{`"id":"cafecafecafecafecafecafecafecafe"`, `"name":"Administrator"`, `"name":"Production web zones"`, `"name":"shop.example.net"`, "023e105f4ecef8ad9ca31a8372d0c353", `"id":"g1"`} {
		if !strings.Contains(all, kept) {
			t.Errorf("%s lost:\n%s", kept, all)
		}
	}
	var audit struct {
		Result []struct {
			Resource struct{ Request map[string]string }
		}
	}
	if err := json.Unmarshal(clean[3].Body, &audit); err != nil || len(audit.Result) != 1 {
		t.Fatalf("%v %s", err, clean[3].Body)
	}
	for k, v := range audit.Result[0].Resource.Request {
		if k == v {
			t.Errorf("o'brien@corp.com and brien@corp.com share a placeholder: %v", audit.Result[0].Resource.Request)
		}
	}
}

// A recording of more than 999 exchanges loads whole, in order.
func TestLoadManyExchanges(t *testing.T) {
	t.Parallel()
	var xs []doctor.Exchange
	for i := range 1002 {
		xs = append(xs, doctor.Exchange{Method: "GET", Path: fmt.Sprintf("/zones?page=%d", i+1), Status: 200, Body: []byte(`{"result":[]}`)})
	}
	dir := t.TempDir()
	if err := doctor.Record(dir, xs); err != nil {
		t.Fatal(err)
	}
	got, err := doctor.Load(dir)
	if err != nil || len(got) != len(xs) || got[1001].Path != "/zones?page=1002" {
		t.Errorf("loaded %d (%v)", len(got), err)
	}
}
