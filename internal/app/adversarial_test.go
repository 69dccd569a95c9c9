package app

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/testkit"
)

// Answers that look fine but are wrong: each must stop apply with no write
// and a clear error. (Issue: a member listed without an email was pruned,
// the protected owner included; `result: null` read as zero members sent
// invites; a member id that was a path made apply delete a zone.)
func TestAdversarialReads(t *testing.T) {
	t.Parallel()
	totalCount := regexp.MustCompile(`"total_count":(\d+)`)
	for _, tc := range []struct {
		name   string
		setup  func(e *e2e)
		mutate func(e *e2e, body []byte) []byte
		pad    int64
		want   string
	}{
		{name: "a member without an email (the protected owner)",
			mutate: func(e *e2e, b []byte) []byte {
				return bytes.ReplaceAll(b, []byte(`"email":"owner@example.com"`), []byte(`"email":""`))
			},
			want: "has no email"},
		{name: "result null",
			mutate: func(e *e2e, b []byte) []byte {
				return []byte(`{"success":true,"errors":[],"messages":[],"result":null}`)
			},
			want: "the answer holds no list"},
		{name: "a count larger than what was read",
			mutate: func(e *e2e, b []byte) []byte {
				return totalCount.ReplaceAllFunc(b, func(m []byte) []byte {
					n, _ := strconv.Atoi(string(totalCount.FindSubmatch(m)[1]))
					return []byte(fmt.Sprintf(`"total_count":%d`, n+5))
				})
			},
			want: "but the list claims"},
		{name: "a member id that is a path",
			mutate: func(e *e2e, b []byte) []byte {
				for _, m := range e.Fake.Members() {
					if m.Email == "stranger@example.com" {
						return bytes.ReplaceAll(b, []byte(`"id":"`+m.ID+`"`), []byte(`"id":"../../../zones/0123456789abcdef0123456789abcdef"`))
					}
				}
				return b
			},
			want: "is not a Cloudflare id"},
		{name: "one page claimed, no count, more members than a page",
			setup: func(e *e2e) {
				for i := range 60 {
					if _, err := e.Fake.PutMember(fake.MemberSpec{Email: fmt.Sprintf("extra%02d@example.com", i),
						Access: []desired.Access{{Role: "Analytics", Resource: testkit.WholeAccount}}}); err != nil {
						e.T.Fatal(err)
					}
				}
			},
			mutate: func(e *e2e, b []byte) []byte {
				b = regexp.MustCompile(`"total_count":\d+,`).ReplaceAll(b, nil)
				return bytes.ReplaceAll(b, []byte(`"total_pages":2`), []byte(`"total_pages":1`))
			},
			want: "states no total_count"},
		{name: "an answer of 300 MB", pad: 300 << 20, want: "larger than 32 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newE2E(t)
			if tc.setup != nil {
				tc.setup(e)
			}
			f := fake.Failure{Method: "GET", Path: "/accounts/" + e.Fake.AccountID() + "/members", Pad: tc.pad}
			if tc.mutate != nil {
				f.Mutate = func(b []byte) []byte { return tc.mutate(e, b) }
			}
			e.Fake.Fail(f)
			e.Fake.ResetRequests()
			code, out, errOut := e.run("apply", "--repo", e.Repo)
			if code != ExitError {
				t.Errorf("apply exit %d, want 1\n%s\n%s", code, out, errOut)
			}
			if !strings.Contains(out+errOut, tc.want) || !strings.Contains(out, "nothing was applied") {
				t.Errorf("output lacks %q and \"nothing was applied\":\n%s\n%s", tc.want, out, errOut)
			}
			if w := e.Writes(); len(w) != 0 {
				t.Errorf("wrote %v", w)
			}
		})
	}
}

// Strings the repository supplies (a reason with a terminal escape that
// would hide the lines after it) are escaped in every output format.
func TestRepositoryStringsEscaped(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.Commit("an escape in a reason", map[string]string{
		"sneaky.yaml": "grants:\n  - {users: [sneaky@example.com], roles: [ro], reason: \"OPS-1\\e[8m hidden \\u202e evil\"}\n",
	})
	for _, format := range []string{"text", "markdown", "json", "sarif"} {
		_, out, errOut := e.run("plan", "--repo", e.Repo, "--format", format)
		if format != "sarif" && !strings.Contains(out, "sneaky@example.com") {
			t.Fatalf("%s: the change is missing:\n%s%s", format, out, errOut)
		}
		if strings.ContainsAny(out, "\x1b\u202e") {
			t.Errorf("%s output holds a raw escape or direction override:\n%q", format, out)
		}
	}
	// The daemon's audit records carry the reason too.
	// The real daemon over TCP (daemon_test.go): its logs are the point.
	de := startDaemon(t, e)
	de.waitReady()
	eventually(t, 5*time.Second, "sneaky's audit record", func() bool { return strings.Contains(de.logs.String(), "sneaky@example.com") })
	if logs := de.logs.String(); strings.ContainsAny(logs, "\x1b\u202e") || !strings.Contains(logs, `\\x1b[8m hidden \\u202e evil`) {
		t.Errorf("logs hold a raw escape, or not the escaped reason:\n%s", logs)
	}
}
