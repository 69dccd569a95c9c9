package cloudflare

import (
	"fmt"
	"net/http/httptest"
	"runtime"
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

// BenchmarkAuditLogHugeEntries reads an audit log whose entries carry
// 28 KB request bodies (pages of about 28 MB, as an adversary or a very
// busy account can make them) with report's bounds (100 pages), and
// reports the memory the result keeps once the pages are garbage (issue
// 19: it was 14 GB for report, 904 MiB for the daemon). Target: a few
// megabytes kept, the query truncated at DefaultAuditMaxBytes.
func BenchmarkAuditLogHugeEntries(b *testing.B) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	s := fake.New(fake.Options{Token: testToken, Now: func() time.Time { return now }})
	for i := range 5000 {
		if _, err := s.PutMember(fake.MemberSpec{Email: fmt.Sprintf("u%05d@example.com", i), Access: []desired.Access{{Role: "Analytics", Resource: account}}}); err != nil {
			b.Fatal(err)
		}
	}
	now = now.Add(time.Minute)
	padAudit(s, 18_000, 500)
	ts := httptest.NewServer(s)
	defer ts.Close()
	c := New(Config{BaseURL: ts.URL + fake.BasePath, Credentials: Credentials{Token: testToken, Source: "test"}})
	b.ReportAllocs()
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		res, err := c.AuditLog(b.Context(), s.AccountID(), AuditQuery{Since: now.Add(-time.Hour), Before: now, MaxPages: 100})
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), "kept-MiB")
		b.ReportMetric(float64(res.Bytes)/(1<<20), "read-MiB")
		b.ReportMetric(float64(len(res.Entries)), "entries")
		if !res.Truncated {
			b.Fatal("not truncated")
		}
		runtime.KeepAlive(res)
	}
}

// BenchmarkJournalJudge judges a query's worth of entries (5,000, what
// the daemon reads at most) against a full journal (JournalMax writes of
// 2,000 members). Target: well under the second a reconcile allows it.
func BenchmarkJournalJudge(b *testing.B) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	now := t0
	j := NewJournal(func() time.Time { return now })
	us := Identity{TokenID: "00000000000000000000000000000001"}
	var es []AuditEntry
	for i := range JournalMax {
		now = t0.Add(time.Minute + time.Duration(i)*time.Second)
		path := fmt.Sprintf("/accounts/a/members/%032x", i%2000)
		seq := j.record("PUT", path, "cfaccess/v1")
		j.done(seq, 200)
		if i >= JournalMax-5000 {
			es = append(es, AuditEntry{ID: fmt.Sprint(i), Time: now, TokenID: us.TokenID, Method: "PUT", URI: path, UserAgent: "cfaccess/v1"})
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		for i := range j.writes {
			j.writes[i].Entry = "" // judged afresh each time
		}
		for _, o := range j.JudgeAll(es, us) {
			if o != Ours {
				b.Fatalf("judged %v", o)
			}
		}
	}
}
