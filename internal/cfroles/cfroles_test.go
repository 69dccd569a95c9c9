package cfroles

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cfaccess/reconciler/internal/desired"
)

func TestNames(t *testing.T) {
	t.Parallel()
	if got := len(AccountNames()); got != 78 {
		t.Errorf("got %d account-scoped names, want 78", got)
	}
	if got := len(DomainNames()); got != 13 {
		t.Errorf("got %d domain-scoped names, want 13", got)
	}
	names := Names()
	for _, want := range []string{"Administrator", "Super Administrator - All Privileges", "SSL/TLS, Caching, Performance, Page Rules, and Customization", "Domain DNS", "Cache Domain Purge"} {
		if !slices.Contains(names, want) {
			t.Errorf("Names() lacks %q", want)
		}
	}
	if c := slices.Compact(slices.Sorted(slices.Values(names))); len(c) != len(names) {
		t.Errorf("a name is listed twice")
	}
	for old, now := range Renamed() {
		if slices.Contains(names, old) || !slices.Contains(names, now) {
			t.Errorf("renamed %q -> %q does not match the current list", old, now)
		}
		if ScopeOf(old) != ScopeOf(now) {
			t.Errorf("former name %q has scope %v, its current name %v", old, ScopeOf(old), ScopeOf(now))
		}
	}
}

func TestScopes(t *testing.T) {
	t.Parallel()
	for _, n := range AccountNames() {
		if got := ScopeOf(n); got != desired.ScopeAccount {
			t.Errorf("ScopeOf(%q) = %v, want account-scoped", n, got)
		}
	}
	for _, n := range DomainNames() {
		if got := ScopeOf(n); got != desired.ScopeDomain {
			t.Errorf("ScopeOf(%q) = %v, want domain-scoped", n, got)
		}
	}
	if got := ScopeOf("Made Up Role"); got != desired.ScopeUnknown {
		t.Errorf("ScopeOf(unknown) = %v", got)
	}
}

// Every counterpart pairs an account-scoped role with a domain-scoped one,
// both in the catalogue, and the mapping goes both ways.
func TestCounterparts(t *testing.T) {
	t.Parallel()
	for _, p := range counterparts {
		if ScopeOf(p[0]) != desired.ScopeAccount || ScopeOf(p[1]) != desired.ScopeDomain {
			t.Errorf("pair %q/%q: scopes %v/%v, want account/domain", p[0], p[1], ScopeOf(p[0]), ScopeOf(p[1]))
		}
		if Counterpart(p[0]) != p[1] || Counterpart(p[1]) != p[0] {
			t.Errorf("pair %q/%q does not map both ways", p[0], p[1])
		}
	}
	// Every domain-scoped role has an account-scoped counterpart.
	for _, n := range DomainNames() {
		if Counterpart(n) == "" {
			t.Errorf("domain-scoped %q has no counterpart", n)
		}
	}
	for _, want := range [][2]string{{"DNS", "Domain DNS"}, {"Cache Purge", "Cache Domain Purge"}, {"Analytics", ""}} {
		if got := Counterpart(want[0]); got != want[1] {
			t.Errorf("Counterpart(%q) = %q, want %q", want[0], got, want[1])
		}
	}
}

// Every role of the catalogue, loaded from a repository: refused on the
// wrong kind of resource at its inherits entry (naming the counterpart when
// there is one), accepted on the right one.
func TestEveryRoleOnEveryScope(t *testing.T) {
	t.Parallel()
	const providers = "version: 1\nproviders:\n  prod:\n    provider: cloudflare\n    config: {account_id: 023e105f4ecef8ad9ca31a8372d0c353}\n"
	load := func(role, resource string) desired.Diagnostics {
		roles := "roles:\n  r:\n    providers: [prod]\n    inherits:\n      - " + strconv.Quote(role) + "\n    resources: {allow: [" + strconv.Quote(resource) + "]}\n"
		_, diags := desired.Load([]desired.File{{Path: "p.yaml", Data: []byte(providers)}, {Path: "r.yaml", Data: []byte(roles)}}, desired.Options{Roles: Catalogue{}})
		return diags
	}
	cases := []struct {
		names      []string
		wrong, ok  string
		wrongScope string
	}{
		{AccountNames(), "zone:example.com", "account:*", "account-scoped"},
		{DomainNames(), "account:*", "zone:example.com", "domain-scoped"},
	}
	for _, tc := range cases {
		for _, name := range tc.names {
			t.Run(name+" on "+tc.wrong, func(t *testing.T) {
				errs := load(name, tc.wrong).Errors()
				if len(errs) != 1 {
					t.Fatalf("got %d errors, want 1: %v", len(errs), errs)
				}
				e := errs[0]
				if e.Pos.String() != "r.yaml:5" {
					t.Errorf("error at %s, want r.yaml:5 (the inherits entry)", e.Pos)
				}
				if !strings.Contains(e.Message, name+" is "+tc.wrongScope) {
					t.Errorf("message %q does not say %q is %s", e.Message, name, tc.wrongScope)
				}
				if c := Counterpart(name); c != "" && !strings.Contains(e.Message, "use "+c) {
					t.Errorf("message %q does not suggest %q", e.Message, c)
				}
			})
			t.Run(name+" on "+tc.ok, func(t *testing.T) {
				if diags := load(name, tc.ok); len(diags) != 0 {
					t.Errorf("got %v, want nothing", diags)
				}
			})
		}
	}
}
