package suggest

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHint(t *testing.T) {
	t.Parallel()
	roles := []string{"dns-editor", "dns-viewer", "billing", "workers-dev"}
	tests := []struct {
		name, in, want string
	}{
		{"one close", "dns-edit", ` (did you mean "dns-editor"?)`},
		{"two close", "dns", ` (did you mean "dns-editor" or "dns-viewer"?)`},
		{"case only", "Billing", ` (did you mean "billing"?)`},
		{"nothing close", "superuser", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Hint(tc.in, roles); got != tc.want {
				t.Errorf("Hint(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestClosestCloudflareNames(t *testing.T) {
	t.Parallel()
	names := []string{"Administrator", "Administrator Read Only", "Super Administrator - All Privileges", "DNS", "Workers Platform Admin"}
	got := Closest("Workers Admin", names, 2)
	if diff := cmp.Diff([]string{"Workers Platform Admin"}, got); diff != "" {
		t.Errorf("Closest (-want +got):\n%s", diff)
	}
}

func TestDistance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"a", "", 1}, {"kitten", "sitting", 3}, {"dns", "DNS", 3}} {
		if got := Distance(tc.a, tc.b); got != tc.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
