package evidence

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/desired"
)

type log []cloudflare.AuditEntry

func (l log) AuditLog(_ context.Context, _ string, q cloudflare.AuditQuery) (cloudflare.AuditResult, error) {
	var out cloudflare.AuditResult
	for _, e := range l {
		if !e.Time.Before(q.Since) && e.Time.Before(q.Before) {
			out.Entries = append(out.Entries, e)
		}
	}
	return out, nil
}

// ReadCatalogue names two roles and the account's resource group.
func (l log) ReadCatalogue(context.Context, string) (*cloudflare.Account, error) {
	return &cloudflare.Account{
		PermissionGroups: []cloudflare.PermissionGroup{{ID: "pg-analytics", Name: "Analytics"}, {ID: "pg-admin", Name: "Administrator"}},
		ResourceGroups:   []cloudflare.ResourceGroup{{ID: "rg-account", Resources: []desired.Resource{{Kind: desired.WholeAccount}}}},
	}, nil
}

// history knows one commit, granting alice Analytics.
type history struct{}

const trunk = "0123456789abcdef0123456789abcdef01234567"

func (history) Commit(sha string) (string, string, error) {
	if sha != trunk && sha != old {
		return "", "", errors.New("not on the branch")
	}
	return "Ada <ada@example.com>", "grant alice", nil
}

// Descends knows one line of history: trunk descends from old.
func (history) Descends(sha, ancestor string) (bool, error) {
	return sha == ancestor || sha == trunk && ancestor == old, nil
}

const old = "fedcba9876543210fedcba9876543210fedcba98"

func (history) Declarations(context.Context, string) (*desired.Repo, error) {
	repo, diags := desired.Load([]desired.File{{Path: "a.yaml", Data: []byte(`providers:
  prod: {provider: cloudflare, config: {account_id: 023e105f4ecef8ad9ca31a8372d0c353}}
roles:
  ro: {providers: [prod], inherits: [Analytics], resources: {allow: ["account:*"]}}
grants:
  - {users: [alice@example.com], roles: [ro], reason: OPS-1}
`)}}, desired.Options{})
	return repo, diags.Err()
}

// A change counts as approved through Git only when Cloudflare says
// cfaccess's token made it, its revision is on the followed branch, and
// the repository at that revision explains it: cfaccess's User-Agent
// alone is a claim anyone can send.
func TestApprovalIsVerified(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 10, 5, 10, 0, 0, 0, time.UTC)
	written := func(pg string) *cloudflare.Written {
		return &cloudflare.Written{Policies: []cloudflare.WrittenPolicy{{PermissionGroups: []string{pg}, ResourceGroups: []string{"rg-account"}}}}
	}
	change := func(typ, email, ua, token string, w *cloudflare.Written) cloudflare.AuditEntry {
		at = at.Add(time.Hour)
		return cloudflare.AuditEntry{ID: email + ua + at.String(), Time: at, Kind: cloudflare.AuditMember, ActionType: typ, Action: typ + " Member",
			Email: email, UserAgent: ua, TokenID: token, ActorContext: "api_token", Written: w}
	}
	ua := "cfaccess/v1 (revision " + trunk + ")"
	entries := log{
		change("create", "alice@example.com", ua, "tok", written("pg-analytics")),
		change("create", "evil@example.com", "cfaccess/v9 (anything)", "tok", written("pg-analytics")),
		change("create", "evil2@example.com", ua, "tok", written("pg-analytics")),
		change("create", "evil3@example.com", "cfaccess/v1 (revision 89abcdef89abcdef89abcdef89abcdef89abcdef)", "tok", written("pg-analytics")),
		change("update", "alice@example.com", "cfaccess/v1 (revision "+trunk+", modified)", "tok", written("pg-analytics")),
		change("update", "alice@example.com", ua, "other", written("pg-analytics")),
		change("update", "alice@example.com", ua, "tok", written("pg-admin")),
		change("update", "alice@example.com", ua, "tok", nil),
		change("delete", "bob@example.com", ua, "tok", nil),
		change("delete", "alice@example.com", ua, "tok", nil),
		change("create", "zed@example.com", "Mozilla/5.0", "", written("pg-admin")),
		// A revision older than one cfaccess applied already: the account
		// taken back (a second writer on an old checkout).
		change("update", "alice@example.com", "cfaccess/v1 (revision "+old+")", "tok", written("pg-analytics")),
	}
	opts := Options{Since: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		Identities: []cloudflare.Identity{{TokenID: "tok"}}}
	want := []struct {
		approval Approval
		why      string
	}{
		{Approved, ""},
		{Unverified, "names no revision"},
		{Unverified, "grants evil2@example.com nothing, not what was written: Analytics on account:*"},
		{Unverified, "not on the followed branch"},
		{Unverified, "uncommitted changes"},
		{OutOfBand, "Cloudflare says another token made it"},
		{Unverified, "grants alice@example.com Analytics on account:*, not what was written: Administrator on account:*"},
		{Unverified, "does not show what was written"},
		{Approved, ""}, // bob has no grant: his removal is explained
		{Unverified, "grants alice@example.com access: the removal is not explained"},
		{OutOfBand, ""},
		{Unverified, "names revision fedcba987654, older than 0123456789ab, which cfaccess applied at 2026-10-05 11:00 UTC"},
	}
	check := func(a Account, want func(i int) (Approval, string)) {
		t.Helper()
		if len(a.Changes) != len(entries) {
			t.Fatalf("%d changes, want %d", len(a.Changes), len(entries))
		}
		for i, c := range a.Changes {
			approval, why := want(i)
			if c.Approval != approval || !strings.Contains(c.Why, why) || why == "" && c.Why != "" {
				t.Errorf("change %d (%s %s): %s, %q; want %s, %q", i, c.Type, c.Subject, c.Approval, c.Why, approval, why)
			}
		}
	}
	a := Build(context.Background(), entries, history{}, "prod", "023e105f4ecef8ad9ca31a8372d0c353", opts)
	check(a, func(i int) (Approval, string) { return want[i].approval, want[i].why })
	if a.Changes[0].Revision != trunk || len(a.Changes[0].Grants) != 1 || a.Changes[0].Grants[0] != "a.yaml:6 OPS-1" {
		t.Errorf("the approved change is not tied to its commit and grant: %+v", a.Changes[0])
	}

	// Without cfaccess's token id, nothing is approved, and it says why.
	opts.Identities, opts.NoIdentity = nil, "verify failed"
	a = Build(context.Background(), entries, history{}, "prod", "023e105f4ecef8ad9ca31a8372d0c353", opts)
	if a.NoApproval != "verify failed" || a.Summary.Approved != 0 {
		t.Errorf("no token id: %q, %d approved", a.NoApproval, a.Summary.Approved)
	}
	check(a, func(i int) (Approval, string) {
		if i == len(entries)-2 {
			return OutOfBand, ""
		}
		return Unverified, "cfaccess's token is not known to check it"
	})

	// Without Git history, nothing is approved either.
	opts.Identities = []cloudflare.Identity{{TokenID: "tok"}}
	if a = Build(context.Background(), entries, nil, "prod", "023e105f4ecef8ad9ca31a8372d0c353", opts); a.Changes[0].Approval == Approved {
		t.Error("approved with no history to check against")
	}
}

// groupHistory's one commit mirrors "On-call" (alice), granted Analytics.
type groupHistory struct{ history }

func (groupHistory) Declarations(context.Context, string) (*desired.Repo, error) {
	repo, diags := desired.Load([]desired.File{{Path: "a.yaml", Data: []byte(`providers:
  prod: {provider: cloudflare, config: {account_id: 023e105f4ecef8ad9ca31a8372d0c353}}
roles:
  ro: {providers: [prod], inherits: [Analytics], resources: {allow: ["account:*"]}}
groups:
  oncall: {name: On-call, cloudflare_user_group: true, members: [alice@example.com]}
grants:
  - {groups: [oncall], roles: [ro], reason: OPS-7}
`)}}, desired.Options{})
	return repo, diags.Err()
}

// User-group changes are explained too: the policies written, the members
// put in or taken out.
func TestGroupChangesExplained(t *testing.T) {
	t.Parallel()
	const gid, alice, bob = "0000000000000000000000000000000a", "000000000000000000000000000000a1", "000000000000000000000000000000b1"
	ua := "cfaccess/v1 (revision " + trunk + ")"
	at := time.Date(2026, 10, 5, 10, 0, 0, 0, time.UTC)
	entry := func(e cloudflare.AuditEntry) cloudflare.AuditEntry {
		at = at.Add(time.Hour)
		e.ID, e.Time, e.TokenID, e.UserAgent, e.ActorContext = at.String(), at, "tok", ua, "api_token"
		return e
	}
	policies := func(pg string) *cloudflare.Written {
		return &cloudflare.Written{Policies: []cloudflare.WrittenPolicy{{PermissionGroups: []string{pg}, ResourceGroups: []string{"rg-account"}}}}
	}
	group := cloudflare.AuditEntry{Kind: cloudflare.AuditUserGroup, GroupID: gid, GroupName: "On-call"}
	with := func(e cloudflare.AuditEntry, f func(*cloudflare.AuditEntry)) cloudflare.AuditEntry { f(&e); return e }
	entries := log{
		// Who the member ids are, from their invitations (before the period).
		{ID: "a", Time: at.Add(-24 * time.Hour), Kind: cloudflare.AuditMember, ActionType: "create", MemberID: alice, Email: "alice@example.com"},
		{ID: "b", Time: at.Add(-24 * time.Hour), Kind: cloudflare.AuditMember, ActionType: "create", MemberID: bob, Email: "bob@example.com"},
		entry(with(group, func(e *cloudflare.AuditEntry) { e.ActionType, e.Written = "update", policies("pg-analytics") })),
		entry(with(group, func(e *cloudflare.AuditEntry) { e.ActionType, e.Written = "update", policies("pg-admin") })),
		entry(with(group, func(e *cloudflare.AuditEntry) {
			e.ActionType, e.GroupMembers, e.Written = "create", true, &cloudflare.Written{Members: []string{alice}}
		})),
		entry(with(group, func(e *cloudflare.AuditEntry) {
			e.ActionType, e.GroupMembers, e.Written = "create", true, &cloudflare.Written{Members: []string{bob}}
		})),
		entry(with(group, func(e *cloudflare.AuditEntry) { e.ActionType, e.GroupMembers, e.MemberID = "delete", true, alice })),
		entry(with(group, func(e *cloudflare.AuditEntry) { e.ActionType, e.GroupMembers, e.MemberID = "delete", true, bob })),
		entry(with(group, func(e *cloudflare.AuditEntry) { e.ActionType = "delete" })),
	}
	opts := Options{Since: time.Date(2026, 10, 5, 0, 0, 0, 0, time.UTC), Until: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		Identities: []cloudflare.Identity{{TokenID: "tok"}}}
	a := Build(context.Background(), entries, groupHistory{}, "prod", "023e105f4ecef8ad9ca31a8372d0c353", opts)
	want := []string{
		"",
		`grants user group "On-call" Analytics on account:*, not what was written: Administrator on account:*`,
		"",
		`does not declare bob@example.com in user group "On-call"`,
		`declares alice@example.com in user group "On-call": taking them out is not explained`,
		"",
		"cfaccess never deletes a user group",
	}
	var got []Change
	for _, c := range a.Changes {
		if c.Kind == string(cloudflare.AuditUserGroup) {
			got = append(got, c)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d group changes, want %d", len(got), len(want))
	}
	for i, c := range got {
		if (c.Approval == Approved) != (want[i] == "") || !strings.Contains(c.Why, want[i]) {
			t.Errorf("change %d (%s): %s %q, want %q", i, c.Type, c.Approval, c.Why, want[i])
		}
	}
}
