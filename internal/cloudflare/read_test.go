package cloudflare

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/cloudflare/cloudflare-go/v7/shared"
	"github.com/google/go-cmp/cmp"

	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
)

const (
	testAcct = "023e105f4ecef8ad9ca31a8372d0c353"
	zoneA    = "0123456789abcdef0123456789abcdef"
	zoneB    = "fedcba9876543210fedcba9876543210"
)

// TestConvertMember reads members in every shape the API is known to send
// (cloudflare-api/README.md), from JSON as the SDK decodes it.
func TestConvertMember(t *testing.T) {
	t.Parallel()
	group := func(key string, objects ...string) string {
		var objs []string
		for _, o := range objects {
			objs = append(objs, fmt.Sprintf(`{"key":%q}`, o))
		}
		return fmt.Sprintf(`{"id":"rg","name":"g","meta":{},"scope":{"key":%q,"objects":[%s]}}`, key, strings.Join(objs, ","))
	}
	policy := func(access, role string, groups ...string) string {
		return fmt.Sprintf(`{"id":"p","access":%q,"permission_groups":[{"id":"pg","name":%q,"meta":{}}],"resource_groups":[%s]}`, access, role, strings.Join(groups, ","))
	}
	member := func(status, userID, email string, policies []string, roles string) string {
		return fmt.Sprintf(`{"id":"9ad9fa82d0ca4f4da16d8869b062892b","status":%q,"user":{"id":%q,"email":%q,"two_factor_authentication_enabled":false},"policies":[%s],"roles":[%s]}`,
			status, userID, email, strings.Join(policies, ","), roles)
	}
	acctKey := "com.cloudflare.api.account." + testAcct
	zk := func(id string) string { return desired.ZoneKeyPrefix + id }
	zone := func(id string) desired.Resource { return desired.Resource{Kind: desired.ZoneKey, Zone: id} }
	whole := desired.Resource{Kind: desired.WholeAccount}
	for _, tc := range []struct {
		name    string
		json    string
		want    Member
		wantErr string
	}{
		{"account group", member("accepted", "u1", "A@Example.com", []string{policy("allow", "Analytics", group(acctKey, "*"))}, ""),
			Member{Email: "a@example.com", Status: "accepted", Access: []desired.Access{{Role: "Analytics", Resource: whole}}}, ""},
		{"domain group of two zones", member("accepted", "u1", "a@example.com", []string{policy("allow", "Domain DNS", group(acctKey, zk(zoneB), zk(zoneA)))}, ""),
			Member{Email: "a@example.com", Status: "accepted", Access: []desired.Access{{Role: "Domain DNS", Resource: zone(zoneA)}, {Role: "Domain DNS", Resource: zone(zoneB)}}}, ""},
		{"ad-hoc group keyed by the zone", member("accepted", "u1", "a@example.com", []string{policy("allow", "Domain DNS", group(zk(zoneA), "*"))}, ""),
			Member{Email: "a@example.com", Status: "accepted", Access: []desired.Access{{Role: "Domain DNS", Resource: zone(zoneA)}}}, ""},
		{"pending: user.email set, user.id empty", member("pending", "", "new@example.com", []string{policy("allow", "Analytics", group(acctKey, "*"))}, ""),
			Member{Email: "new@example.com", Status: "pending", Access: []desired.Access{{Role: "Analytics", Resource: whole}}}, ""},
		{"roles beside policies are ignored", member("accepted", "u1", "a@example.com", []string{policy("allow", "Analytics", group(acctKey, "*"))}, `{"id":"r","name":"Administrator","description":"","permissions":{}}`),
			Member{Email: "a@example.com", Status: "accepted", Access: []desired.Access{{Role: "Analytics", Resource: whole}}}, ""},
		{"roles only", member("accepted", "u1", "a@example.com", nil, `{"id":"r","name":"Administrator","description":"","permissions":{}}`),
			Member{Email: "a@example.com", Status: "accepted", Legacy: true, Access: []desired.Access{{Role: "Administrator", Resource: whole}}}, ""},
		{"deny policy", member("accepted", "u1", "a@example.com", []string{policy("deny", "Billing", group(acctKey, "*"))}, ""),
			Member{Email: "a@example.com", Status: "accepted", Denies: 1}, ""},
		{"another account's group", member("accepted", "u1", "a@example.com", []string{policy("allow", "Analytics", group("com.cloudflare.api.account.ffffffffffffffffffffffffffffffff", "*"))}, ""),
			Member{Email: "a@example.com", Status: "accepted", Unknown: []string{"com.cloudflare.api.account.ffffffffffffffffffffffffffffffff *"}}, ""},
		{"all zones key (no evidence it exists)", member("accepted", "u1", "a@example.com", []string{policy("allow", "Firewall", group(acctKey, zk("*")))}, ""),
			Member{Email: "a@example.com", Status: "accepted", Unknown: []string{acctKey + " " + zk("*")}}, ""},
		{"no email anywhere", member("accepted", "u1", "", nil, ""), Member{}, "has no email"},
		{"an id that is a path", strings.Replace(member("accepted", "u1", "a@example.com", nil, ""), "9ad9fa82d0ca4f4da16d8869b062892b", "../../../zones/x", 1), Member{}, "is not a Cloudflare id"},
		{"no status", member("", "u1", "a@example.com", nil, ""), Member{}, "has no status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m shared.Member
			if err := json.Unmarshal([]byte(tc.json), &m); err != nil {
				t.Fatal(err)
			}
			got, err := convertMember(m, testAcct, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !IsTransient(err) {
					t.Errorf("error %v, want a transient one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.want.ID = "9ad9fa82d0ca4f4da16d8869b062892b"
			if diff := cmp.Diff(tc.want, got.resolve(nil, inherited{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// Resource groups are one unpaged list: 120 hand-made domain groups and
// ad-hoc groups are read in exactly one request, without page parameters.
func TestResourceGroupsInOneRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	for i := range 120 {
		e.fake.AddResourceGroup(fmt.Sprintf("team %d", i), fmt.Sprintf("z%d.example.com", i), fmt.Sprintf("z%d.example.net", i))
	}
	if _, err := e.fake.PutMember(fake.MemberSpec{Email: "a@example.com",
		Access: []desired.Access{{Role: "Domain DNS", Resource: desired.Resource{Kind: desired.ZoneName, Zone: "z1.example.com"}}}}); err != nil {
		t.Fatal(err)
	}
	acct := &Account{ID: e.fake.AccountID()}
	if err := e.client.loadResourceGroups(t.Context(), acct); err != nil {
		t.Fatal(err)
	}
	var reqs []fake.Request
	for _, r := range e.fake.Requests() {
		if strings.HasSuffix(r.Path, "/iam/resource_groups") {
			reqs = append(reqs, r)
		}
	}
	if len(reqs) != 1 || reqs[0].Query != "" {
		t.Errorf("resource group requests %+v, want exactly one without a query", reqs)
	}
	adHoc, domain, whole := 0, 0, 0
	for _, g := range acct.ResourceGroups {
		switch {
		case g.AdHoc:
			adHoc++
		case len(g.Resources) == 2:
			domain++
		case g.Resources[0].Kind == desired.WholeAccount:
			whole++
		}
	}
	if adHoc != 1 || domain != 120 || whole != 1 {
		t.Errorf("read %d ad-hoc, %d domain, %d account groups; want 1, 120, 1", adHoc, domain, whole)
	}
}

// Zone lookups read total_count as an upper bound (the schema: "total
// results available without any search parameters"), which the fake
// answers: a lookup by name in an account of many zones, a name that is
// not there, and a list of every zone all come out right.
func TestZoneCountIsAnUpperBound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	for i := range 120 {
		e.fake.AddZone(fmt.Sprintf("z%03d.example.com", i))
	}
	acct, err := e.client.ReadAccount(t.Context(), e.fake.AccountID(), ReadOptions{Zones: []string{"z007.example.com", "missing.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(acct.ZoneIDs) != 1 || acct.ZoneIDs["z007.example.com"] == "" {
		t.Errorf("zones resolved: %v", acct.ZoneIDs)
	}
	e.fake.ResetRequests()
	acct, err = e.client.ReadAccount(t.Context(), e.fake.AccountID(), ReadOptions{AllZones: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(acct.ZoneIDs) != 120 {
		t.Errorf("%d zones, want 120", len(acct.ZoneIDs))
	}
	zoneReqs := 0
	for _, r := range e.fake.Requests() {
		if r.Path == "/zones" {
			zoneReqs++
		}
	}
	if zoneReqs != 3 {
		t.Errorf("%d zone requests, want 3", zoneReqs)
	}
}
