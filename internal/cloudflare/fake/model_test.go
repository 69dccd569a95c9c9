package fake

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/cfaccess/reconciler/internal/desired"
)

// TestResourceGroupShape pins a resource group's scope as an object, as
// the recorded member response and the 2026 schema have it.
func TestResourceGroupShape(t *testing.T) {
	t.Parallel()
	g := ResourceGroup{ID: hexID("rg", "acct"), Name: "com.cloudflare.api.account.acct", Meta: Meta{"editable": "false"},
		Scope: Scope{Key: "com.cloudflare.api.account.acct", Objects: []ScopeObject{{Key: "*"}}}}
	b, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Scope json.RawMessage `json:"scope"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if want := `{"key":"com.cloudflare.api.account.acct","objects":[{"key":"*"}]}`; string(got.Scope) != want {
		t.Errorf("scope = %s, want %s", got.Scope, want)
	}
}

func TestHexID(t *testing.T) {
	t.Parallel()
	a, b := hexID("member", "a@example.com"), hexID("member", "b@example.com")
	if len(a) != 32 || a == b || a != hexID("member", "a@example.com") {
		t.Errorf("hexID not a stable 32-character id: %q %q", a, b)
	}
}

// A snapshot restores the account into a new server of the same id, and
// only of that id.
func TestSnapshotRestore(t *testing.T) {
	s := New(Options{Token: "t"})
	if _, err := s.PutMember(MemberSpec{Email: "kept@example.com", Access: []desired.Access{{Role: "Billing", Resource: desired.Resource{Kind: desired.WholeAccount}}}}); err != nil {
		t.Fatal(err)
	}
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	restored := New(Options{Token: "t"})
	if err := restored.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if again, err := restored.Snapshot(); err != nil || string(again) != string(snap) {
		t.Errorf("restored %s (%v)\nwant %s", again, err, snap)
	}
	if got, want := fmt.Sprint(restored.Members()), fmt.Sprint(s.Members()); got != want {
		t.Errorf("restored %s\nwant %s", got, want)
	}
	if err := New(Options{Token: "t", AccountID: "0123456789abcdef0123456789abcdef"}).Restore(snap); err == nil {
		t.Error("a snapshot of another account restored")
	}
}
