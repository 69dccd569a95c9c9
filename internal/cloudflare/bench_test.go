package cloudflare

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
)

// BenchmarkReadAccount10k reads a 10,000-member account from the fake with
// 20 ms latency per request. Targets: at most ceil(10000/50)+5 = 205
// requests and under 2 s.
func BenchmarkReadAccount10k(b *testing.B) {
	const n = 10_000
	s := fake.New(fake.Options{Token: testToken})
	zone := desired.Resource{Kind: desired.ZoneName, Zone: "example.com"}
	for i := range n {
		access := []desired.Access{{Role: "Analytics", Resource: desired.Resource{Kind: desired.WholeAccount}}}
		if i%3 == 0 {
			access = append(access, desired.Access{Role: "Domain DNS", Resource: zone})
		}
		if _, err := s.PutMember(fake.MemberSpec{Email: fmt.Sprintf("user%05d@example.com", i), Access: access}); err != nil {
			b.Fatal(err)
		}
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	s.SetLatency(20 * time.Millisecond)
	c := New(Config{BaseURL: ts.URL + fake.BasePath, Credentials: Credentials{Token: testToken, Source: "test"}})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s.ResetRequests()
		acct, err := c.ReadAccount(b.Context(), s.AccountID(), ReadOptions{Zones: []string{"example.com"}})
		if err != nil {
			b.Fatal(err)
		}
		if len(acct.Members) != n {
			b.Fatalf("%d members", len(acct.Members))
		}
		b.ReportMetric(float64(len(s.Requests())), "requests/op")
	}
}
