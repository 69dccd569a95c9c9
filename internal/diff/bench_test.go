package diff

import (
	"fmt"
	"testing"

	"github.com/cfaccess/reconciler/internal/desired"
)

// drifted builds n desired and n live members where 2% differ: 1% with
// changed access, 0.5% missing live, 0.5% undeclared live.
func drifted(n int) ([]Want, []Live) {
	zone := func(i int) desired.Resource {
		return desired.Resource{Kind: desired.ZoneKey, Zone: fmt.Sprintf("%032x", i%200)}
	}
	want := make([]Want, 0, n)
	live := make([]Live, 0, n)
	for i := range n {
		email := fmt.Sprintf("user%05d@example.com", i)
		access := []desired.Access{{Role: "Domain DNS", Resource: zone(i)}, {Role: "Analytics", Resource: acct}}
		if i%200 != 1 { // 0.5% not declared
			want = append(want, Want{Email: email, Access: access})
		}
		if i%200 == 2 { // 0.5% missing live
			continue
		}
		l := Live{ID: fmt.Sprint(i), Email: email, Status: "accepted", Access: access}
		if i%100 == 3 { // 1% drifted
			l.Access = []desired.Access{{Role: "Firewall", Resource: zone(i)}}
		}
		live = append(live, l)
	}
	return want, live
}

// BenchmarkCompute10k: 10,000 desired against 10,000 live members, 2%
// drift.
func BenchmarkCompute10k(b *testing.B) {
	want, live := drifted(10_000)
	opts := Options{Prune: true, MaxRemovals: 1000}
	b.ReportAllocs()
	for b.Loop() {
		p, err := Compute(want, live, opts)
		if err != nil {
			b.Fatal(err)
		}
		if len(p.Changes) != 200 {
			b.Fatalf("%d changes, want 200", len(p.Changes))
		}
	}
}
