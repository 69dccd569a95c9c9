package cfroles

import (
	"slices"
	"testing"
)

func TestNames(t *testing.T) {
	names := Names()
	if len(names) != 78 {
		t.Errorf("got %d names, want 78", len(names))
	}
	for _, want := range []string{"Administrator", "Super Administrator - All Privileges", "SSL/TLS, Caching, Performance, Page Rules, and Customization"} {
		if !slices.Contains(names, want) {
			t.Errorf("Names() lacks %q", want)
		}
	}
	for old, now := range Renamed() {
		if slices.Contains(names, old) || !slices.Contains(names, now) {
			t.Errorf("renamed %q -> %q does not match the current list", old, now)
		}
	}
}
