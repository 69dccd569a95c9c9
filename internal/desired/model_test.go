package desired

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDiagnosticsSort(t *testing.T) {
	t.Parallel()
	ds := Diagnostics{
		{Pos: Pos{File: "b.rego", Line: 1}, Message: "b1"},
		{Pos: Pos{File: "a.rego", Line: 10}, Message: "a10"},
		{Pos: Pos{File: "a.rego", Line: 9}, Message: "a9 first"},
		{Pos: Pos{File: "a.rego", Line: 9}, Message: "a9 second"},
	}
	ds.Sort()
	var got []string
	for _, d := range ds {
		got = append(got, d.Message)
	}
	if diff := cmp.Diff([]string{"a9 first", "a9 second", "a10", "b1"}, got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

func TestParsePos(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want Pos
	}{
		{"grants/a.yaml:12", Pos{"grants/a.yaml", 12}},
		{"grants/a.yaml", Pos{"grants/a.yaml", 0}},
		{"c:/x.yaml:x", Pos{"c:/x.yaml:x", 0}},
	} {
		if got := ParsePos(tc.in); got != tc.want {
			t.Errorf("ParsePos(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
