package importer

import (
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cfaccess/reconciler/internal/cfroles"
	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// randomAccount fills a fake account with members of random access:
// account-scoped roles on the account, domain-scoped roles on zones (ad hoc,
// as the dashboard grants them, or through hand-made domain groups); some
// pending, some described by legacy roles, one Super Administrator.
func randomAccount(t *testing.T, s *fake.Server, rng *rand.Rand) {
	t.Helper()
	accountRoles, domainRoles := cfroles.AccountNames(), cfroles.DomainNames()
	zones := []string{"example.com", "api.example.com", "shop.example.com", "example.net", "example.org"}
	for _, z := range zones {
		s.AddZone(z)
	}
	groups := []string{
		s.AddResourceGroup("web", zones[0], zones[1]),
		s.AddResourceGroup("all of them", zones...),
	}
	n := rng.IntN(40)
	for i := range n {
		spec := fake.MemberSpec{Email: fmt.Sprintf("m%02d@example.com", i), Pending: rng.IntN(4) == 0}
		switch {
		case i == 0:
			spec.Access = []desired.Access{{Role: "Super Administrator - All Privileges", Resource: desired.Resource{Kind: desired.WholeAccount}}}
		case rng.IntN(8) == 0:
			spec.LegacyRoles = []string{accountRoles[rng.IntN(len(accountRoles))]}
		default:
			// Draw from a few patterns so that members share roles.
			pattern := rng.IntN(6)
			r := rand.New(rand.NewPCG(uint64(pattern), 7))
			for range 1 + r.IntN(3) {
				switch r.IntN(3) {
				case 0:
					spec.Access = append(spec.Access, desired.Access{Role: accountRoles[4+r.IntN(20)], Resource: desired.Resource{Kind: desired.WholeAccount}})
				case 1:
					spec.Access = append(spec.Access, desired.Access{Role: domainRoles[r.IntN(len(domainRoles))],
						Resource: desired.Resource{Kind: desired.ZoneName, Zone: zones[r.IntN(len(zones))]}})
				case 2:
					spec.Policies = append(spec.Policies, fake.PolicySpec{Roles: []string{domainRoles[r.IntN(len(domainRoles))]},
						ResourceGroups: []string{groups[r.IntN(len(groups))]}})
				}
			}
		}
		if _, err := s.PutMember(spec); err != nil {
			t.Fatal(err)
		}
	}
}

// TestImportThenPlanIsEmpty is the property: for random accounts, the
// imported repository loads without error and its desired state equals
// the live access of every member it declares; every other member is
// protected or reported.
func TestImportThenPlanIsEmpty(t *testing.T) {
	t.Parallel()
	for seed := range 40 {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(seed), 1))
			s := fake.New(fake.Options{Token: "t"})
			randomAccount(t, s, rng)
			ts := httptest.NewServer(s)
			defer ts.Close()
			c := cloudflare.New(cloudflare.Config{BaseURL: ts.URL + fake.BasePath, Credentials: cloudflare.Credentials{Token: "t", Source: "test"}})
			acct, err := c.ReadAccount(t.Context(), s.AccountID(), cloudflare.ReadOptions{AllZones: true})
			if err != nil {
				t.Fatal(err)
			}
			res := Build(acct, Options{ProviderID: "prod", Now: now})
			repo, diags := desired.Load(res.Files, desired.Options{Roles: cfroles.Catalogue{}})
			if err := diags.Err(); err != nil {
				for _, f := range res.Files {
					t.Logf("%s:\n%s", f.Path, f.Data)
				}
				t.Fatal(err)
			}
			if w := diags.Warnings(); len(w) > 0 {
				t.Errorf("warnings: %v", w)
			}
			state := repo.State(now).Accounts["prod"]
			for _, m := range acct.Members {
				want := make([]desired.Access, 0, len(m.Access))
				for _, a := range m.Access {
					want = append(want, desired.Access{Role: a.Role, Resource: acct.Display(a.Resource)})
				}
				slices.SortFunc(want, desired.Access.Compare)
				dm := state.Members[m.Email]
				switch {
				case slices.Contains(res.Protected, m.Email):
					if dm != nil {
						t.Errorf("%s is protected and declared", m.Email)
					}
				case dm == nil:
					t.Errorf("%s not declared (live access %v)", m.Email, m.Access)
				default:
					if diff := cmp.Diff(want, dm.Access); diff != "" {
						t.Errorf("%s (-live +declared):\n%s", m.Email, diff)
					}
				}
			}
			if len(state.Members)+len(res.Protected) != len(acct.Members) {
				t.Errorf("%d declared + %d protected, %d live", len(state.Members), len(res.Protected), len(acct.Members))
			}
		})
	}
}

func TestImportOutput(t *testing.T) {
	t.Parallel()
	acct := &cloudflare.Account{ID: "023e105f4ecef8ad9ca31a8372d0c353", Name: "Example", ZoneNames: map[string]string{"0123456789abcdef0123456789abcdef": "example.com"}}
	zone := desired.Resource{Kind: desired.ZoneKey, Zone: "0123456789abcdef0123456789abcdef"}
	acctRes := desired.Resource{Kind: desired.WholeAccount}
	for _, e := range []string{"a", "b", "c"} {
		acct.Members = append(acct.Members, cloudflare.Member{Email: e + "@example.com", Access: []desired.Access{{Role: "Domain DNS", Resource: zone}, {Role: "Analytics", Resource: acctRes}}})
	}
	acct.Members = append(acct.Members,
		cloudflare.Member{Email: "d@example.com", Access: []desired.Access{{Role: "Domain DNS", Resource: zone}}},
		cloudflare.Member{Email: "deny@example.com", Denies: 1},
		cloudflare.Member{Email: "owner@example.com", Access: []desired.Access{{Role: "Super Administrator - All Privileges", Resource: acctRes}}},
	)
	res := Build(acct, Options{ProviderID: "prod", Now: now})
	var b strings.Builder
	for _, f := range res.Files {
		fmt.Fprintf(&b, "-- %s --\n%s", f.Path, f.Data)
	}
	want := `-- providers.yaml --
# Imported from Cloudflare account "Example" on 2026-11-23T12:00:00Z.
# prune is off: members nobody declared are reported, not removed. Review the
# declarations, then set prune: true to let cfaccess remove undeclared members.
version: 1
providers:
  prod:
    name: "Example"
    provider: cloudflare
    config:
      account_id: 023e105f4ecef8ad9ca31a8372d0c353
    reconcile:
      prune: false
      protected:
        - "owner@example.com"
-- roles.yaml --
# Roles derived from the account's distinct access patterns.
version: 1
roles:
  analytics-account:
    name: "Analytics on the whole account"
    providers: [prod]
    inherits:
      - "Analytics"
    resources:
      allow:
        - "account:*"
  domain-dns-example-com:
    name: "Domain DNS on example.com"
    providers: [prod]
    inherits:
      - "Domain DNS"
    resources:
      allow:
        - "zone:example.com"
-- groups.yaml --
# Members who share the same roles.
version: 1
groups:
  analytics-account-members:
    members:
      - "a@example.com"
      - "b@example.com"
      - "c@example.com"
-- grants.yaml --
version: 1
grants:
  - roles: [analytics-account, domain-dns-example-com]
    groups: [analytics-account-members]
    reason: "imported from account Example on 2026-11-23"
  - roles: [domain-dns-example-com]
    users:
      - "d@example.com"
    reason: "imported from account Example on 2026-11-23"
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"deny@example.com: has deny policies, which cfaccess does not manage; left undeclared"}, res.Skipped); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}
}
