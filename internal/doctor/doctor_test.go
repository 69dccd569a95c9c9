package doctor_test

import (
	"context"
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
		for _, secret := range []string{testkit.Token, "Acme Secret Projects", "alice@", "stranger@", "owner@", "root@", "Authorization", "Bearer"} {
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
	for _, tc := range []struct {
		name  string
		xs    []doctor.Exchange
		marks map[string]doctor.Mark
	}{
		{"in step", []doctor.Exchange{x(sent, `"default";r=1100;t=200`)}, map[string]doctor.Mark{"rate limit": doctor.OK, "clock": doctor.OK}},
		{"budget spent elsewhere", []doctor.Exchange{x(sent, `"default";r=50;t=30`)}, map[string]doctor.Mark{"rate limit": doctor.Warn}},
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
