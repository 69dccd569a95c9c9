package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/gitsource"
	"github.com/cfaccess/reconciler/internal/metrics"
	"github.com/cfaccess/reconciler/internal/reconcile"
	"github.com/cfaccess/reconciler/internal/testkit"
)

// BenchmarkSteadyReconcile is one reconcile of the daemon over a steady
// account of 2,000 members (nothing to change) with change detection from
// the audit log: the daemon's common case. One op is one RunOnce: the
// directory read again, the guardrails evaluated, the audit log asked, the
// last read reused, the plan made and published. (The real binary's CPU
// per reconcile: go run ./internal/benchdriver -sizes 2000 -daemon-cpu 30.)
func BenchmarkSteadyReconcile(b *testing.B) {
	const n = 2000
	s := fake.New(fake.Options{Token: "bench-token", RateLimit: 1_000_000})
	s.SetDashboardUser("") // the seeding is not in the log
	dir := b.TempDir()
	var grants strings.Builder
	grants.WriteString("grants:\n")
	for i := range n {
		email := fmt.Sprintf("user%05d@example.com", i)
		fmt.Fprintf(&grants, "  - {users: [%s], roles: [analytics], reason: T-%d}\n", email, i)
		if _, err := s.PutMember(fake.MemberSpec{Email: email, Access: []desired.Access{{Role: "Analytics", Resource: desired.Resource{Kind: desired.WholeAccount}}}}); err != nil {
			b.Fatal(err)
		}
	}
	for name, data := range map[string]string{
		"providers.yaml": "providers:\n  prod:\n    provider: cloudflare\n    config: {account_id: " + s.AccountID() + "}\n",
		"roles.yaml":     "roles:\n  analytics: {providers: [prod], inherits: [Analytics], resources: {allow: [\"account:*\"]}}\n",
		"grants.yaml":    grants.String(),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s.SetClock(clock)
	p := reconcile.NewPlanner(&cloudflare.Clients{BaseURL: testkit.APIURL, Getenv: func(k string) string { return map[string]string{"CLOUDFLARE_API_TOKEN": "bench-token"}[k] },
		RateLimit: 1_000_000, MaxRetries: 1, Timeout: time.Minute, Transport: testkit.Transport(s)}, reconcile.NewState(clock))
	p.Detect = &reconcile.Detection{FullReadInterval: 24 * time.Hour, Margin: 5 * time.Minute}
	reg := prometheus.NewRegistry()
	l := NewLoop(LoopConfig{Source: gitsource.Directory{Path: dir}, Planner: p, Checks: check.Options{Reuse: true}, Plans: reconcile.PlanOptions{Grants: true}, Interval: time.Minute,
		Metrics: metrics.New(reg, "bench"), Log: slog.New(slog.DiscardHandler), Now: clock})
	for range 2 { // the first read, then the first reused one
		if err := l.RunOnce(context.Background()); err != nil {
			b.Fatal(err)
		}
		now = now.Add(time.Minute)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := l.RunOnce(context.Background()); err != nil {
			b.Fatal(err)
		}
		now = now.Add(time.Minute)
	}
	if st := l.Board.Status(); len(st.Accounts) != 1 || st.Accounts[0].Read == nil || st.Accounts[0].Read.Read != reconcile.ReadReused {
		b.Fatalf("not a steady reconcile: %+v", st.Accounts)
	}
}
