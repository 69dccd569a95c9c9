package desired

import (
	"testing"
	"time"
)

// A grant is due for review from its review_after on, until it expires;
// review_after changes no access.
func TestReviewDue(t *testing.T) {
	t.Parallel()
	yaml := `providers:
  prod: {provider: cloudflare, config: {account_id: 023e105f4ecef8ad9ca31a8372d0c353}}
roles:
  dns: {providers: [prod], inherits: [DNS], resources: {allow: ["account:*"]}}
grants:
  - {users: [a@example.com], roles: [dns], reason: r, review_after: 2026-10-01}
  - {users: [b@example.com], roles: [dns], reason: r, review_after: 2026-10-01, expires: 2026-11-01}
  - {users: [c@example.com], roles: [dns], reason: r}
`
	repo, diags := Load([]File{{Path: "g.yaml", Data: []byte(yaml)}}, Options{Roles: testRoles})
	if repo == nil {
		t.Fatal(diags)
	}
	if got, want := repo.Grants[0].ReviewAfter, time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("review_after %v, want %v", got, want)
	}
	for _, tc := range []struct {
		name  string
		grant int
		now   string
		want  bool
	}{
		{"just before", 0, "2026-09-30T23:59:59Z", false},
		{"at the date", 0, "2026-10-01T00:00:00Z", true},
		{"long after", 0, "2027-06-01T00:00:00Z", true},
		{"due before it expires", 1, "2026-10-15T00:00:00Z", true},
		{"expired: nothing to review", 1, "2026-11-01T00:00:00Z", false},
		{"no review_after", 2, "2027-06-01T00:00:00Z", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now, err := ParseInstant(tc.now)
			if err != nil {
				t.Fatal(err)
			}
			if got := repo.Grants[tc.grant].ReviewDue(now); got != tc.want {
				t.Errorf("ReviewDue(%s) = %v, want %v", tc.now, got, tc.want)
			}
			if !repo.Grants[tc.grant].ActiveAt(now) && tc.grant != 1 {
				t.Errorf("review_after changed the grant's activity")
			}
		})
	}
}
