package reconcile

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/gitsource"
	"github.com/cfaccess/reconciler/internal/testkit"
)

// generateRepo writes an access repository of the given size across files
// of at most 500 grants, the way a large organisation would split it.
func generateRepo(grants, roles, users int) *desired.Source {
	accountRoles := []string{"DNS", "Analytics", "Firewall", "Cache Purge", "Workers Editor", "Page Shield", "Load Balancer", "Cloudflare R2 Read", "Billing", "Audit Logs Viewer"}
	domainRoles := []string{"Domain DNS", "Cache Domain Purge", "Domain Page Shield", "Domain Administrator Read Only", "Domain Waiting Room Read"}
	var b strings.Builder
	src := &desired.Source{}
	add := func(path string) {
		src.YAML = append(src.YAML, desired.File{Path: path, Data: []byte(b.String())})
		b.Reset()
	}
	b.WriteString("providers:\n  prod:\n    provider: cloudflare\n    config: {account_id: 023e105f4ecef8ad9ca31a8372d0c353}\n    reconcile: {protected: [owner@example.com]}\n")
	add("providers.yaml")
	b.WriteString("roles:\n")
	// Half the roles are domain-scoped roles on two zones (a domain
	// group), half account-scoped roles on the account; each gives 4
	// bindings per member.
	for i := range roles {
		if i%2 == 0 {
			fmt.Fprintf(&b, "  role-%d:\n    providers: [prod]\n    inherits: [%q, %q]\n    resources:\n      allow: [zone:zone%d.example.com, zone:zone%d.example.com]\n",
				i, domainRoles[i%len(domainRoles)], domainRoles[(i+3)%len(domainRoles)], i%200, (i+7)%200)
			continue
		}
		fmt.Fprintf(&b, "  role-%d:\n    providers: [prod]\n    inherits: [%q, %q, %q, %q]\n    resources:\n      allow: [\"account:*\"]\n",
			i, accountRoles[i%len(accountRoles)], accountRoles[(i+3)%len(accountRoles)], accountRoles[(i+5)%len(accountRoles)], accountRoles[(i+7)%len(accountRoles)])
	}
	add("roles.yaml")
	b.WriteString("groups:\n")
	for g := range users / 20 {
		fmt.Fprintf(&b, "  team-%d:\n    members:\n", g)
		for m := range 20 {
			fmt.Fprintf(&b, "      - user%d@example.com\n", g*20+m)
		}
	}
	add("groups.yaml")
	for i := range grants {
		if i%500 == 0 {
			b.WriteString("grants:\n")
		}
		if i%10 == 0 {
			fmt.Fprintf(&b, "  - groups: [team-%d]\n", i%(users/20))
		} else {
			fmt.Fprintf(&b, "  - users: [user%d@example.com]\n", i%users)
		}
		fmt.Fprintf(&b, "    roles: [role-%d]\n    reason: \"TICKET-%d\"\n", i%roles, i)
		if i%3 == 0 {
			fmt.Fprintf(&b, "    expires: 2027-%02d-01\n", 1+i%12)
		}
		if i%500 == 499 || i == grants-1 {
			add(fmt.Sprintf("grants/%03d.yaml", i/500))
		}
	}
	return src
}

// BenchmarkValidate loads, validates and evaluates the guardrails on a
// repository of 10,000 grants, 200 roles and 2,000 users (target: under
// 1 s and 200 MB on 2 cores).
func BenchmarkValidate(b *testing.B) {
	src := generateRepo(10_000, 200, 2_000)
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		c, err := check.Check(context.Background(), src, nil, now, check.Options{RunTests: true})
		if err != nil {
			b.Fatal(err)
		}
		if !c.Valid() || c.Denied() {
			fs := c.Findings()
			b.Fatalf("generated repository invalid: %v", fs[:min(3, len(fs))])
		}
	}
}

func TestGeneratedRepoValid(t *testing.T) {
	t.Parallel()
	src := generateRepo(600, 20, 200)
	c, err := check.Check(t.Context(), src, nil, time.Now(), check.Options{RunTests: true})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Valid() || c.Denied() || len(c.Findings()) > 0 {
		t.Fatalf("findings: %v", c.Findings())
	}
}

// BenchmarkPlan10k plans 10,000 declared members (10,000 grants, 201 roles,
// 200 zones) against a 10,000-member account with 2% drift, served by the
// fake with 20 ms latency per request: load, guardrails, live read, diff,
// guardrails with live and plan.
func BenchmarkPlan10k(b *testing.B) {
	const n = 10_000
	s := fake.New(fake.Options{Token: "bench-token"})
	var roles, grants strings.Builder
	roles.WriteString("roles:\n  analytics: {providers: [prod], inherits: [Analytics], resources: {allow: [\"account:*\"]}}\n")
	for z := range 200 {
		s.AddZone(fmt.Sprintf("zone%03d.example.com", z))
		fmt.Fprintf(&roles, "  dns-%d: {providers: [prod], inherits: [Domain DNS], resources: {allow: [zone:zone%03d.example.com]}}\n", z, z)
	}
	grants.WriteString("grants:\n")
	for i := range n {
		email := fmt.Sprintf("user%05d@example.com", i)
		zone := desired.Resource{Kind: desired.ZoneName, Zone: fmt.Sprintf("zone%03d.example.com", i%200)}
		if i%200 != 1 { // 0.5% not declared: removed
			fmt.Fprintf(&grants, "  - {users: [%s], roles: [dns-%d, analytics], reason: T-%d}\n", email, i%200, i)
		}
		if i%200 == 2 { // 0.5% missing: invited
			continue
		}
		access := []desired.Access{{Role: "Domain DNS", Resource: zone}, {Role: "Analytics", Resource: desired.Resource{Kind: desired.WholeAccount}}}
		if i%100 == 3 { // 1% drifted: updated
			access = access[:1]
		}
		if _, err := s.PutMember(fake.MemberSpec{Email: email, Access: access}); err != nil {
			b.Fatal(err)
		}
	}
	src := &desired.Source{YAML: []desired.File{
		{Path: "providers.yaml", Data: []byte("providers:\n  prod:\n    provider: cloudflare\n    config: {account_id: " + s.AccountID() + "}\n    reconcile: {max_removals: 100}\n")},
		{Path: "roles.yaml", Data: []byte(roles.String())},
		{Path: "grants.yaml", Data: []byte(grants.String())},
	}}
	s.SetLatency(20 * time.Millisecond)
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	p := NewPlanner(&cloudflare.Clients{BaseURL: testkit.APIURL, Getenv: func(k string) string { return map[string]string{"CLOUDFLARE_API_TOKEN": "bench-token"}[k] },
		RateLimit: 1200, MaxRetries: 4, Timeout: 30 * time.Second, Transport: testkit.Transport(s)}, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s.ResetRequests()
		c, err := check.Check(context.Background(), src, nil, now, check.Options{})
		if err != nil {
			b.Fatal(err)
		}
		o, err := p.Plan(context.Background(), c, gitsource.Revision{}, now, PlanOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if o.Failed() || o.Changes() != 200 {
			b.Fatalf("failed %v, %d changes (%v)", o.Failed(), o.Changes(), o.Accounts[0].Err)
		}
		b.ReportMetric(float64(len(s.Requests())), "requests/op")
	}
}

// BenchmarkRequestsPerHour counts the Cloudflare requests of an hour of
// reconciles at a 1-minute interval over a steady account (nothing to
// change), without and with change detection from the audit log
// (--full-read-interval 10m). Run with -benchtime=1x: one op is one
// simulated hour (the clock is injected; nothing sleeps).
func BenchmarkRequestsPerHour(b *testing.B) {
	for _, n := range []int{10_000, 50_000} {
		s := fake.New(fake.Options{Token: "bench-token", RateLimit: 1_000_000})
		s.SetDashboardUser("") // the seeding is not in the log
		src := &desired.Source{YAML: []desired.File{
			{Path: "providers.yaml", Data: []byte("providers:\n  prod:\n    provider: cloudflare\n    config: {account_id: " + s.AccountID() + "}\n")},
			{Path: "roles.yaml", Data: []byte("roles:\n  analytics: {providers: [prod], inherits: [Analytics], resources: {allow: [\"account:*\"]}}\n")},
		}}
		var grants strings.Builder
		for i := range n {
			if i%5000 == 0 {
				grants.WriteString("grants:\n")
			}
			email := fmt.Sprintf("user%05d@example.com", i)
			fmt.Fprintf(&grants, "  - {users: [%s], roles: [analytics], reason: T-%d}\n", email, i)
			if i%5000 == 4999 || i == n-1 {
				src.YAML = append(src.YAML, desired.File{Path: fmt.Sprintf("grants/%02d.yaml", i/5000), Data: []byte(grants.String())})
				grants.Reset()
			}
			if _, err := s.PutMember(fake.MemberSpec{Email: email, Access: []desired.Access{{Role: "Analytics", Resource: desired.Resource{Kind: desired.WholeAccount}}}}); err != nil {
				b.Fatal(err)
			}
		}
		c, err := check.Check(context.Background(), src, nil, time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), check.Options{})
		if err != nil || !c.Valid() {
			b.Fatal(err, c.Findings())
		}
		for _, detect := range []bool{false, true} {
			b.Run(fmt.Sprintf("members=%d/audit-log=%v", n, detect), func(b *testing.B) {
				for b.Loop() {
					now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
					clock := func() time.Time { return now }
					s.SetClock(clock)
					p := NewPlanner(&cloudflare.Clients{BaseURL: testkit.APIURL, Getenv: func(k string) string { return map[string]string{"CLOUDFLARE_API_TOKEN": "bench-token"}[k] },
						RateLimit: 1_000_000, MaxRetries: 1, Timeout: time.Minute, Transport: testkit.Transport(s)}, nil)
					if detect {
						p.Detect = &Detection{FullReadInterval: 10 * time.Minute, Margin: 5 * time.Minute}
					}
					// A first reconcile, then an hour of them.
					if _, err := p.Plan(context.Background(), c, gitsource.Revision{}, now, PlanOptions{}); err != nil {
						b.Fatal(err)
					}
					s.ResetRequests()
					full := 0
					for range 60 {
						now = now.Add(time.Minute)
						o, err := p.Plan(context.Background(), c, gitsource.Revision{}, now, PlanOptions{})
						if err != nil || o.Failed() || o.Changes() != 0 {
							b.Fatalf("%v %v %d", err, o.Failed(), o.Changes())
						}
						if o.Accounts[0].ReadInfo.Read == "full" {
							full++
						}
					}
					b.ReportMetric(float64(len(s.Requests())), "requests/hour")
					b.ReportMetric(float64(full), "full-reads/hour")
				}
			})
		}
	}
}
