package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/review"
)

// What an account or a repository supplies cannot break a table, forge a
// line, or start a spreadsheet formula.
func TestReviewEscaping(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	repo := &desired.Repo{Providers: map[string]*desired.Provider{}, Roles: map[string]*desired.Role{}, Groups: map[string]*desired.Group{},
		Grants: []*desired.Grant{{Users: []string{"a@example.com"}, Roles: []string{"r"}, Reason: "=HYPERLINK(\"http://x\")|<b>\nforged",
			ReviewAfter: now.Add(-time.Hour), Pos: desired.Pos{File: "g.yaml", Line: 1}}}}
	live := &cloudflare.Account{ID: "a", Name: "Evil | name\n# heading", Members: []cloudflare.Member{
		{ID: "m", Email: "a@example.com", Status: "accepted", Access: []desired.Access{{Role: "+Role\u202e", Resource: desired.Resource{Kind: desired.WholeAccount}}}},
	}}
	doc := review.New(review.Input{Checked: &check.Checked{Repo: repo}, Now: now, Window: time.Hour,
		Accounts: []review.Account{{Provider: "p", AccountID: "a", Live: live}}})
	var md, cs, js bytes.Buffer
	for format, b := range map[string]*bytes.Buffer{"markdown": &md, "csv": &cs, "json": &js} {
		if err := Review(b, format, doc); err != nil {
			t.Fatal(err)
		}
	}
	for line := range strings.Lines(md.String()) {
		if strings.HasPrefix(line, "# heading") || strings.HasPrefix(line, "forged") {
			t.Errorf("markdown line forged: %q", line)
		}
	}
	if strings.Contains(md.String(), "<b>") || strings.Contains(md.String(), "\u202e") {
		t.Errorf("markdown not escaped:\n%s", md.String())
	}
	rows, err := csv.NewReader(&cs).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		for _, cell := range r {
			if cell != "" && strings.ContainsRune("=+-@", rune(cell[0])) {
				t.Errorf("csv cell starts a formula: %q", cell)
			}
			if strings.ContainsAny(cell, "\n\u202e") {
				t.Errorf("csv cell not on one line or not visible: %q", cell)
			}
		}
	}
	if strings.Contains(js.String(), "\u202e") {
		t.Errorf("json not escaped: %s", js.String())
	}
	var back review.Doc
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.OverdueGrants[0].Reason != repo.Grants[0].Reason {
		t.Errorf("json does not read back: %v", err)
	}
}
