package desired

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const stateRepo = `
providers:
  prod: {provider: cloudflare, config: {account_id: 023e105f4ecef8ad9ca31a8372d0c353}}
  staging: {provider: cloudflare, config: {account_id: 9a7806061c88ada191ed06f989cc3dac}}
roles:
  dns: {providers: [prod, staging], inherits: [DNS], resources: {allow: ["zone:example.com"]}}
  admin: {providers: [prod], inherits: [Administrator], resources: {allow: ["*"]}}
groups:
  sre: {members: [bob@example.com]}
grants:
  - {users: [alice@example.com], groups: [sre], roles: [dns], reason: r}
  - {users: [alice@example.com], roles: [admin], reason: jit, not_before: 2026-12-01T08:00:00Z, expires: 2026-12-01T12:00:00Z}
  - {users: [bob@example.com], roles: [dns], reason: dup}
`

func loadString(t *testing.T, s string) *Repo {
	t.Helper()
	repo, diags := Load([]File{{Path: "a.yaml", Data: []byte(s)}}, Options{})
	if err := diags.Err(); err != nil {
		t.Fatal(err)
	}
	return repo
}

func accessOf(st *State, provider, email string) []string {
	m := st.Accounts[provider].Members[email]
	if m == nil {
		return nil
	}
	out := []string{}
	for _, a := range m.Access {
		out = append(out, a.String())
	}
	return out
}

func TestState(t *testing.T) {
	t.Parallel()
	repo := loadString(t, stateRepo)
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	tests := []struct {
		name, now, provider, email string
		want                       []string
	}{
		{"before the window", "2026-12-01T07:59:59Z", "prod", "alice@example.com", []string{"DNS on zone:example.com"}},
		{"at not_before", "2026-12-01T08:00:00Z", "prod", "alice@example.com", []string{"Administrator on account:*", "DNS on zone:example.com"}},
		{"just before expires", "2026-12-01T11:59:59Z", "prod", "alice@example.com", []string{"Administrator on account:*", "DNS on zone:example.com"}},
		{"at expires", "2026-12-01T12:00:00Z", "prod", "alice@example.com", []string{"DNS on zone:example.com"}},
		{"other account", "2026-12-01T09:00:00Z", "staging", "alice@example.com", []string{"DNS on zone:example.com"}},
		{"two grants, one access", "2026-12-01T09:00:00Z", "prod", "bob@example.com", []string{"DNS on zone:example.com"}},
		{"undeclared", "2026-12-01T09:00:00Z", "prod", "eve@example.com", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := accessOf(repo.State(at(tc.now)), tc.provider, tc.email)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("access (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStateDeclaredButInactive(t *testing.T) {
	t.Parallel()
	repo := loadString(t, stateRepo+`
  - {users: [carol@example.com], roles: [dns], reason: over, expires: 2026-01-01}
`)
	st := repo.State(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	m := st.Accounts["prod"].Members["carol@example.com"]
	if m == nil || len(m.Access) != 0 {
		t.Fatalf("carol = %+v, want declared with no access", m)
	}
}

func TestNextChange(t *testing.T) {
	t.Parallel()
	repo := loadString(t, stateRepo)
	for _, tc := range []struct{ now, want string }{
		{"2026-11-23T00:00:00Z", "2026-12-01T08:00:00Z"},
		{"2026-12-01T08:00:00Z", "2026-12-01T12:00:00Z"},
		{"2026-12-01T12:00:00Z", "0001-01-01T00:00:00Z"},
	} {
		now, _ := time.Parse(time.RFC3339, tc.now)
		if got := repo.NextChange(now).Format(time.RFC3339); got != tc.want {
			t.Errorf("NextChange(%s) = %s, want %s", tc.now, got, tc.want)
		}
	}
}

func TestParseResourceRoundTrip(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"account:*", "zone:example.com", ZoneKeyPrefix + "0123456789abcdef0123456789abcdef"} {
		r, err := ParseResource(s)
		if err != nil {
			t.Fatalf("ParseResource(%q): %v", s, err)
		}
		if r.String() != s {
			t.Errorf("ParseResource(%q).String() = %q", s, r.String())
		}
	}
}
