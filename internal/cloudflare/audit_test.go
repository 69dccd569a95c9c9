package cloudflare

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudflare/cloudflare-go/v7/accounts"
	"github.com/google/go-cmp/cmp"

	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
)

// clock is a settable clock for the fake.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestAuditLog(t *testing.T) {
	t.Parallel()
	// 2,500 entries before 10:30, three pages; with -short, 1,200 in two:
	// a cursor is still followed, and the cap still cuts.
	n, pages := 2500, 3
	if testing.Short() {
		n, pages = 1200, 2
	}
	for _, sdkShape := range []bool{false, true} {
		t.Run(fmt.Sprintf("cursors.after=%v", sdkShape), func(t *testing.T) {
			t.Parallel()
			clk := &clock{now: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
			s := fake.New(fake.Options{Token: testToken, Owner: "ops@example.com", Now: clk.Now, AuditCursorsAfter: sdkShape})
			e := newEnvFor(t, s, Config{UserAgent: "cfaccess/v1.0.0 (revision 0123456789abcdef)"})
			ctx := context.Background()
			s.SetDashboardUser("mallory@example.com")
			// n entries before 10:30, then one at 11:00.
			for i := range n {
				if _, err := s.PutMember(fake.MemberSpec{Email: fmt.Sprintf("u%04d@example.com", i), Access: []desired.Access{{Role: "Analytics", Resource: account}}}); err != nil {
					t.Fatal(err)
				}
				if i%100 == 0 {
					clk.Add(time.Minute)
				}
			}
			clk.now = time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC)
			acct, err := e.client.ReadAccount(ctx, s.AccountID(), ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			analytics, _ := acct.PermissionGroup("Analytics")
			rg, _ := acct.ResourceGroup([]desired.Resource{account})
			id, err := e.client.Invite(ctx, s.AccountID(), "carol@example.com", []Policy{{PermissionGroups: []string{analytics.ID}, ResourceGroups: []string{rg.ID}}})
			if err != nil {
				t.Fatal(err)
			}
			clk.Add(time.Minute)
			all, err := e.client.AuditLog(ctx, s.AccountID(), AuditQuery{Since: clk.Now().Add(-24 * time.Hour), Before: clk.Now()})
			if err != nil {
				t.Fatal(err)
			}
			if len(all.Entries) != n+1 || all.Requests != pages || all.Truncated {
				t.Fatalf("entries %d, requests %d, truncated %v; want %d in %d requests", len(all.Entries), all.Requests, all.Truncated, n+1, pages)
			}
			last := all.Entries[n]
			if last.MemberID != id || last.Email != "carol@example.com" || last.Kind != AuditMember || last.Action != "Add Member" ||
				last.TokenID != s.TokenID() || func() bool { sha, mod := last.Revision(); return sha != "0123456789abcdef" || mod }() || last.ActorContext != "api_token" {
				t.Errorf("cfaccess's entry: %+v", last)
			}
			first := all.Entries[0]
			if first.ActorEmail != "mallory@example.com" || first.ActorContext != "dash" || first.TokenID != "" || first.Email != "u0000@example.com" {
				t.Errorf("dashboard entry: %+v", first)
			}
			// The time of day counts: the SDK alone would send dates.
			late, err := e.client.AuditLog(ctx, s.AccountID(), AuditQuery{Since: time.Date(2026, 11, 25, 10, 59, 0, 0, time.UTC), Before: clk.Now()})
			if err != nil || len(late.Entries) != 1 {
				t.Fatalf("since 10:59: %d entries, %v", len(late.Entries), err)
			}
			tok, err := e.client.TokenID(ctx, s.AccountID())
			if err != nil || tok != s.TokenID() {
				t.Fatalf("token id %q, %v; want %q", tok, err, s.TokenID())
			}
			if id, err := e.client.Identity(ctx, s.AccountID()); err != nil || id != (Identity{TokenID: tok}) || !id.Made(last) || id.Made(first) {
				t.Fatalf("identity %+v, %v: made the last entry %v, the first %v", id, err, id.Made(last), id.Made(first))
			}
			capped, err := e.client.AuditLog(ctx, s.AccountID(), AuditQuery{Since: clk.Now().Add(-24 * time.Hour), Before: clk.Now(), MaxPages: pages - 1})
			if err != nil || !capped.Truncated || capped.Requests != pages-1 {
				t.Fatalf("capped: truncated %v after %d requests, %v", capped.Truncated, capped.Requests, err)
			}
			var query url.Values
			for _, r := range s.Requests() {
				if strings.HasSuffix(r.Path, "/logs/audit") {
					query, _ = url.ParseQuery(r.Query)
				}
			}
			if !strings.Contains(query.Get("since"), "T") || query.Get("actor_token_id.not") != "" {
				t.Errorf("last query %v: since must carry the time", query)
			}
		})
	}
}

func TestAuditLogDelayAndGaps(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
	s := fake.New(fake.Options{Token: testToken, Now: clk.Now})
	e := newEnvFor(t, s, Config{})
	ctx := context.Background()
	s.SetAuditDelay(2 * time.Minute)
	s.LoseAuditEntries(1)
	for _, who := range []string{"lost@example.com", "late@example.com"} {
		if _, err := s.PutMember(fake.MemberSpec{Email: who, Access: []desired.Access{{Role: "Analytics", Resource: account}}}); err != nil {
			t.Fatal(err)
		}
	}
	read := func() []AuditEntry {
		t.Helper()
		r, err := e.client.AuditLog(ctx, s.AccountID(), AuditQuery{Since: clk.Now().Add(-time.Hour), Before: clk.Now().Add(time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		return r.Entries
	}
	if got := read(); len(got) != 0 {
		t.Fatalf("before the delay: %v", got)
	}
	clk.Add(2 * time.Minute)
	if got := read(); len(got) != 1 || got[0].Email != "late@example.com" {
		t.Fatalf("after the delay: %+v", got)
	}
	// A loss rate: about that share of entries never appears.
	s.SetAuditDelay(0)
	s.SetAuditLossRate(0.3, 7)
	for i := range 200 {
		if _, err := s.PutMember(fake.MemberSpec{Email: fmt.Sprintf("r%03d@example.com", i), Access: []desired.Access{{Role: "Analytics", Resource: account}}}); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(read()) - 1; got < 110 || got > 170 {
		t.Errorf("%d of 200 entries appear at a loss rate of 0.3", got)
	}
}

// RefreshMembers puts the members read again in place; a removed member
// leaves its user groups too (as Cloudflare does); a member the account
// does not hold, or one the log says was removed that is still there,
// refuses, changing nothing.
func TestRefreshMembers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	ctx := context.Background()
	id := e.fake.AccountID()
	ro := []desired.Access{{Role: "Analytics", Resource: account}}
	alice, _ := e.fake.PutMember(fake.MemberSpec{Email: "alice@example.com", Access: ro})
	bob, _ := e.fake.PutMember(fake.MemberSpec{Email: "bob@example.com", Access: ro})
	if _, err := e.fake.PutUserGroup(fake.UserGroupSpec{Name: "ops", Members: []string{"alice@example.com", "bob@example.com"}}); err != nil {
		t.Fatal(err)
	}
	acct, err := e.client.ReadAccount(ctx, id, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.fake.RemoveMember("alice@example.com")
	if _, err := e.fake.PutMember(fake.MemberSpec{Email: "bob@example.com", Access: []desired.Access{{Role: "Analytics", Resource: account}, {Role: "Billing", Resource: account}}}); err != nil {
		t.Fatal(err)
	}
	before := len(acct.Members)
	if err := e.client.RefreshMembers(ctx, acct, []MemberChange{{ID: bob, Removed: true}}); !errors.Is(err, ErrRefreshUnsafe) || len(acct.Members) != before {
		t.Fatalf("bob said removed but present: %v", err)
	}
	if err := e.client.RefreshMembers(ctx, acct, []MemberChange{{ID: "0123456789abcdef0123456789abcdef"}}); !errors.Is(err, ErrRefreshUnsafe) {
		t.Fatalf("an unknown id: %v", err)
	}
	if err := e.client.RefreshMembers(ctx, acct, []MemberChange{{ID: alice, Removed: true}, {ID: bob}}); err != nil {
		t.Fatal(err)
	}
	full, err := e.client.ReadAccount(ctx, id, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(full.Members, acct.Members); diff != "" {
		t.Errorf("refreshed members differ from a full read (-full +refreshed):\n%s", diff)
	}
	for _, g := range acct.UserGroups {
		for _, m := range g.Members {
			if m.ID == alice {
				t.Errorf("alice, removed, is still in user group %s", g.Name)
			}
		}
	}
}

// padAudit makes every entry of the audit log's answers carry size bytes
// of padding and emails emails in its request body: a log of huge entries.
func padAudit(s *fake.Server, size, emails int) {
	s.Fail(fake.Failure{Method: "GET", Path: "/accounts/" + s.AccountID() + "/logs/audit", Mutate: func(body []byte) []byte {
		var env map[string]any
		if json.Unmarshal(body, &env) != nil {
			return body
		}
		pad := strings.Repeat("x", size)
		for _, r := range env["result"].([]any) {
			res := r.(map[string]any)["resource"].(map[string]any)
			res["request"] = map[string]any{"email": "pad@example.com", "padding": pad,
				"many": strings.Split(strings.Repeat("someone@example.com,", emails), ",")}
		}
		out, _ := json.Marshal(env)
		return out
	}})
}

// A log of huge entries is read to a bound, not to the end of memory:
// past MaxBytes the query is Truncated (a full read then, or report exits
// 1), and an entry keeps only a few of its bodies' emails. Pages of about
// 4 MB against a bound of 6 MiB: the cut after two pages does not depend
// on the size (BenchmarkAuditLogHugeEntries measures pages of 28 MB
// against the real bounds, and the memory kept).
func TestAuditLogBounded(t *testing.T) {
	t.Parallel()
	size, emails, maxBytes := 1_000, 100, int64(6<<20)
	clk := &clock{now: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
	s := fake.New(fake.Options{Token: testToken, Now: clk.Now})
	e := newEnvFor(t, s, Config{})
	for i := range 3000 {
		if _, err := s.PutMember(fake.MemberSpec{Email: fmt.Sprintf("u%04d@example.com", i), Access: []desired.Access{{Role: "Analytics", Resource: account}}}); err != nil {
			t.Fatal(err)
		}
	}
	clk.Add(time.Minute)
	padAudit(s, size, emails)
	res, err := e.client.AuditLog(t.Context(), s.AccountID(), AuditQuery{Since: clk.Now().Add(-time.Hour), Before: clk.Now(), MaxBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Truncated || res.Requests != 2 || res.Bytes < maxBytes {
		t.Errorf("truncated %v after %d requests and %d bytes: want truncated after two pages", res.Truncated, res.Requests, res.Bytes)
	}
	for _, en := range res.Entries {
		if len(en.Mentions) > maxMentions {
			t.Fatalf("an entry keeps %d mentions", len(en.Mentions))
		}
	}
}

// A member change's email is Cloudflare's (the answer), never what the
// request's sender wrote beside another member's id; only an invitation's
// request names its member.
func TestAuditEmailFromCloudflare(t *testing.T) {
	t.Parallel()
	entry := func(typ, request, response string) AuditEntry {
		var r accounts.LogAuditListResponse
		body := `{"id":"e1","action":{"type":"` + typ + `","description":"x","result":"success","time":"2026-12-01T09:00:00Z"},
			"raw":{"method":"PUT","uri":"/accounts/023e105f4ecef8ad9ca31a8372d0c353/members/0123456789abcdef0123456789abcdef"},
			"resource":{"product":"members","request":` + request + `,"response":` + response + `}}`
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		return convertAudit(r)
	}
	forged := `{"status":"accepted","user":{"email":"dave@example.com"},"policies":[]}`
	for _, tc := range []struct {
		typ, request, response, want string
	}{
		{"update", forged, `{"user":{"email":"alice@example.com"}}`, "alice@example.com"},
		{"update", forged, `{}`, ""},
		{"create", `{"email":"new@example.com","policies":[]}`, `{}`, "new@example.com"},
		{"create", `{"email":"new@example.com","policies":[]}`, `{"user":{"email":"New@Example.com"}}`, "new@example.com"},
	} {
		if got := entry(tc.typ, tc.request, tc.response).Email; got != tc.want {
			t.Errorf("%s, answer %s: email %q, want %q", tc.typ, tc.response, got, tc.want)
		}
	}
	// A write too large to be cfaccess's is marked so, not cut silently.
	many := `{"policies":[` + strings.TrimSuffix(strings.Repeat(`{"access":"allow","permission_groups":[{"id":"p"}],"resource_groups":[{"id":"r"}]},`, maxWritten+1), ",") + `]}`
	if w := entry("update", many, `{}`).Written; w == nil || !w.Truncated {
		t.Errorf("a write of %d policies: %+v", maxWritten+1, w)
	}
}
