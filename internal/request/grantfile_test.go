package request

import (
	"testing"
	"time"

	"github.com/cfaccess/reconciler/internal/desired"
)

// A grant goes after the last grant of the file holding the most, in its
// style and indentation; what follows that grant stays after it.
func TestAdd(t *testing.T) {
	t.Parallel()
	g := Grant{User: "alice@example.com", Role: "ops", Reason: "INC-1: db #2", NotBefore: time.Date(2026, 12, 5, 22, 0, 0, 0, time.UTC),
		Expires: time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)}
	roles := "providers:\n  prod: {provider: cloudflare, config: {account_id: 023e105f4ecef8ad9ca31a8372d0c353}}\nroles:\n  ops: {providers: [prod], inherits: [Administrator], resources: {allow: [\"account:*\"]}}\n"
	for _, tc := range []struct {
		name, file, want, path string
	}{
		{"block, indented, comments after", "grants:\n    - users: [bob@example.com]\n      roles: [ops]\n      reason: |\n        OPS-1\n        on-call\n# after\n",
			"grants:\n    - users: [bob@example.com]\n      roles: [ops]\n      reason: |\n        OPS-1\n        on-call\n    - users: [alice@example.com]\n      roles: [ops]\n      reason: \"INC-1: db #2\"\n      not_before: 2026-12-05T22:00:00Z\n      expires: 2026-12-06T02:00:00Z\n# after\n", "grants.yaml"},
		{"flow, then another key", "grants:\n- {users: [bob@example.com], roles: [ops], reason: OPS-1}\ngroups:\n  g: {members: [x@example.com]}\n",
			"grants:\n- {users: [bob@example.com], roles: [ops], reason: OPS-1}\n- {users: [alice@example.com], roles: [ops], reason: \"INC-1: db #2\", not_before: 2026-12-05T22:00:00Z, expires: 2026-12-06T02:00:00Z}\ngroups:\n  g: {members: [x@example.com]}\n", "grants.yaml"},
		{"no grants yet", "", "grants:\n  - {users: [alice@example.com], roles: [ops], reason: \"INC-1: db #2\", not_before: 2026-12-05T22:00:00Z, expires: 2026-12-06T02:00:00Z}\n", "grants.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &desired.Source{Root: ".", YAML: []desired.File{{Path: "roles.yaml", Data: []byte(roles)}}}
			if tc.file != "" {
				src.YAML = append(src.YAML, desired.File{Path: "grants.yaml", Data: []byte(tc.file)})
			}
			repo, diags := desired.Load(src.YAML, desired.Options{})
			if len(diags.Errors()) > 0 {
				t.Fatal(diags)
			}
			e, err := Add(src, repo, g)
			if err != nil {
				t.Fatal(err)
			}
			if e.Path != tc.path || string(e.Data) != tc.want {
				t.Errorf("%s:\n%s\nwant:\n%s", e.Path, e.Data, tc.want)
			}
			after, diags := desired.Load([]desired.File{src.YAML[0], {Path: e.Path, Data: e.Data}}, desired.Options{})
			if len(diags.Errors()) > 0 || len(after.Grants) != len(repo.Grants)+1 || after.Grants[len(after.Grants)-1].Reason != g.Reason {
				t.Errorf("the result does not load as one more grant: %v", diags)
			}
		})
	}
}
