package app

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
)

// Answers that look fine but are wrong: each must stop apply with no write
// and a clear error. (Issue: a member listed without an email was pruned,
// the protected owner included; `result: null` read as zero members sent
// invites; a member id that was a path made apply delete a zone.)
func TestAdversarialReads(t *testing.T) {
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
				for _, m := range e.fake.Members() {
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
					if _, err := e.fake.PutMember(fake.MemberSpec{Email: fmt.Sprintf("extra%02d@example.com", i),
						Access: []desired.Access{{Role: "Analytics", Resource: wholeAcct}}}); err != nil {
						e.t.Fatal(err)
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
			f := fake.Failure{Method: "GET", Path: "/accounts/" + e.fake.AccountID() + "/members", Pad: tc.pad}
			if tc.mutate != nil {
				f.Mutate = func(b []byte) []byte { return tc.mutate(e, b) }
			}
			e.fake.Fail(f)
			e.fake.ResetRequests()
			code, out, errOut := e.run("apply", "--repo", e.repo)
			if code != ExitError {
				t.Errorf("apply exit %d, want 1\n%s\n%s", code, out, errOut)
			}
			if !strings.Contains(out+errOut, tc.want) || !strings.Contains(out, "nothing was applied") {
				t.Errorf("output lacks %q and \"nothing was applied\":\n%s\n%s", tc.want, out, errOut)
			}
			if w := e.writes(); len(w) != 0 {
				t.Errorf("wrote %v", w)
			}
		})
	}
}

// A protected member stays protected by its id once seen, even when a
// later read shows another email for it.
func TestProtectedByID(t *testing.T) {
	e := newE2E(t)
	// The first reconcile sees owner@example.com (protected) and remembers
	// its id; in the second, the owner's email reads differently.
	var ownerID string
	for _, m := range e.fake.Members() {
		if m.Email == "owner@example.com" {
			ownerID = m.ID
		}
	}
	d := newTestDaemon(t, e)
	d.reconcileOnce(t.Context())
	e.fake.Fail(fake.Failure{Method: "GET", Path: "/accounts/" + e.fake.AccountID() + "/members",
		Mutate: func(b []byte) []byte {
			return bytes.ReplaceAll(b, []byte(`"email":"owner@example.com"`), []byte(`"email":"renamed-owner@example.com"`))
		}})
	e.fake.ResetRequests()
	d.reconcileOnce(t.Context())
	for _, r := range e.fake.Requests() {
		if r.Method != "GET" && strings.Contains(r.Path, ownerID) {
			t.Errorf("the protected owner was written to: %s %s", r.Method, r.Path)
		}
	}
}

// newTestDaemon builds the daemon of the e2e story without starting its
// loop: tests call reconcileOnce themselves.
func newTestDaemon(t *testing.T, e *e2e, extra ...string) *daemon {
	t.Helper()
	envVars := map[string]string{"CLOUDFLARE_API_URL": e.url, "CLOUDFLARE_API_TOKEN": e2eToken}
	env := &Env{Getenv: func(k string) string { return envVars[k] }, Stdout: io.Discard, Stderr: io.Discard, Now: e.clock}
	f := &runFlags{}
	cmd := newRunWith(env, f)
	if err := cmd.ParseFlags(append([]string{"--repo", "file://" + e.repo, "--cloudflare-max-retries", "0"}, extra...)); err != nil {
		t.Fatal(err)
	}
	d, err := newDaemon(f, env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if d.remote != nil {
			_ = os.RemoveAll(d.remote.Work)
		}
	})
	return d
}

// Strings the repository supplies (a reason with a terminal escape that
// would hide the lines after it) are escaped in every output format.
func TestRepositoryStringsEscaped(t *testing.T) {
	e := newE2E(t)
	e.commit("an escape in a reason", map[string]string{
		"sneaky.yaml": "grants:\n  - {users: [sneaky@example.com], roles: [ro], reason: \"OPS-1\\e[8m hidden \\u202e evil\"}\n",
	})
	for _, format := range []string{"text", "markdown", "json", "sarif"} {
		_, out, errOut := e.run("plan", "--repo", e.repo, "--format", format)
		if format != "sarif" && !strings.Contains(out, "sneaky@example.com") {
			t.Fatalf("%s: the change is missing:\n%s%s", format, out, errOut)
		}
		if strings.ContainsAny(out, "\x1b\u202e") {
			t.Errorf("%s output holds a raw escape or direction override:\n%q", format, out)
		}
	}
	// The daemon's audit records carry the reason too.
	de := startDaemon(t, e, time.Hour)
	de.waitReady()
	eventually(t, 3*time.Second, "sneaky's audit record", func() bool { return strings.Contains(de.logs.String(), "sneaky@example.com") })
	if logs := de.logs.String(); strings.ContainsAny(logs, "\x1b\u202e") || !strings.Contains(logs, `\\x1b[8m hidden \\u202e evil`) {
		t.Errorf("logs hold a raw escape, or not the escaped reason:\n%s", logs)
	}
}
