package fake

import (
	"encoding/json"
	"testing"
)

// TestResourceGroupShapes pins the two shapes of a resource group's scope:
// a list in /iam/resource_groups, an object inside member policies (as in
// the recorded real response).
func TestResourceGroupShapes(t *testing.T) {
	g := ResourceGroup{ID: hexID("rg", "acct"), Name: "com.cloudflare.api.account.acct", Meta: Meta{"editable": "false"},
		Scope: Scope{Key: "com.cloudflare.api.account.acct", Objects: []ScopeObject{{Key: "*"}}}}
	for _, tc := range []struct {
		name string
		v    any
		want string
	}{
		{"list", g.listJSON(), `[{"key":"com.cloudflare.api.account.acct","objects":[{"key":"*"}]}]`},
		{"member", g.memberJSON(), `{"key":"com.cloudflare.api.account.acct","objects":[{"key":"*"}]}`},
	} {
		b, err := json.Marshal(tc.v)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Scope json.RawMessage `json:"scope"`
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if string(got.Scope) != tc.want {
			t.Errorf("%s scope = %s, want %s", tc.name, got.Scope, tc.want)
		}
	}
}

func TestHexID(t *testing.T) {
	a, b := hexID("member", "a@example.com"), hexID("member", "b@example.com")
	if len(a) != 32 || a == b || a != hexID("member", "a@example.com") {
		t.Errorf("hexID not a stable 32-character id: %q %q", a, b)
	}
}
