package fake

import (
	"encoding/json"
	"testing"
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
