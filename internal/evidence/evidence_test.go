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

// history knows one commit, granting alice.
type history struct{}

const trunk = "0123456789abcdef0123456789abcdef01234567"

func (history) Commit(sha string) (string, string, error) {
	if sha != trunk {
		return "", "", errors.New("not on the branch")
	}
	return "Ada <ada@example.com>", "grant alice", nil
}

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

// A change counts as approved through Git only when its claim checks out:
// cfaccess's User-Agent alone is a claim anyone can send.
func TestApprovalIsVerified(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 10, 5, 10, 0, 0, 0, time.UTC)
	add := func(email, ua, token string) cloudflare.AuditEntry {
		at = at.Add(time.Minute)
		return cloudflare.AuditEntry{ID: email + ua, Time: at, Kind: cloudflare.AuditMember, ActionType: "create", Action: "Add Member",
			Email: email, UserAgent: ua, TokenID: token, ActorContext: "api_token"}
	}
	entries := log{
		add("alice@example.com", "cfaccess/v1 (revision "+trunk+")", "tok"),
		add("evil@example.com", "cfaccess/v9 (anything)", "tok"),
		add("evil2@example.com", "cfaccess/v1 (revision "+trunk+")", "tok"),
		add("evil3@example.com", "cfaccess/v1 (revision 89abcdef89abcdef89abcdef89abcdef89abcdef)", "tok"),
		add("alice@example.com", "cfaccess/v1 (revision "+trunk+", modified)", "tok"),
		add("alice@example.com", "cfaccess/v1 (revision "+trunk+")", "other"),
	}
	opts := Options{Since: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	a := Build(context.Background(), entries, history{}, "prod", "023e105f4ecef8ad9ca31a8372d0c353", opts)
	want := []string{"", "names no revision", "grants evil2@example.com nothing", "not in the repository's history", "uncommitted changes", ""}
	for i, c := range a.Changes {
		if c.ByCfaccess != (want[i] == "") || !strings.Contains(c.Unapproved, want[i]) {
			t.Errorf("change %d (%s): approved %v, %q; want %q", i, c.Subject, c.ByCfaccess, c.Unapproved, want[i])
		}
	}
	opts.TokenIDs = []string{"tok"}
	a = Build(context.Background(), entries, history{}, "prod", "023e105f4ecef8ad9ca31a8372d0c353", opts)
	if c := a.Changes[5]; c.ByCfaccess || !strings.Contains(c.Unapproved, "--cfaccess-token-id") {
		t.Errorf("with --cfaccess-token-id, another token's change: %+v", c)
	}
	if a = Build(context.Background(), entries, nil, "prod", "023e105f4ecef8ad9ca31a8372d0c353", opts); a.Changes[0].ByCfaccess {
		t.Error("approved with no history to check against")
	}
}
