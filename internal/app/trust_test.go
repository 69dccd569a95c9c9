package app

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/daemon"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/testkit"
)

// Issue 19's findings, tried as an insider would, each over the fake.

// The breaker counts every loss of access: a revision that cuts 24 members
// down to Minimal Account Access — 12 by their own policies, 12 through
// their user group's — is refused with max_removals 2, and nothing is
// written (it used to apply: only deleted members were counted).
func TestBreakerCountsEveryLossOfAccess(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	var direct, staff []string
	for i := range 24 {
		email := fmt.Sprintf("m%02d@example.com", i)
		if i < 12 {
			e.Put(email, false, desired.Access{Role: "Analytics", Resource: testkit.WholeAccount})
			direct = append(direct, email)
			continue
		}
		e.Put(email, false, desired.Access{Role: "Minimal Account Access", Resource: testkit.WholeAccount})
		staff = append(staff, email)
	}
	if _, err := e.Fake.PutUserGroup(fake.UserGroupSpec{Name: "Staff", Members: staff,
		Access: []desired.Access{{Role: "Administrator", Resource: testkit.WholeAccount}}}); err != nil {
		t.Fatal(err)
	}
	e.Commit("everyone down to minimal", map[string]string{
		"providers.yaml": strings.Replace(e.ReadFile("providers.yaml"), "max_removals: 3}", "max_removals: 2}", 1),
		"staff.yaml": `roles:
  minimal: {providers: [prod], inherits: [Minimal Account Access], resources: {allow: ["account:*"]}}
groups:
  staff:
    name: Staff
    cloudflare_user_group: true
    members: [` + strings.Join(staff, ", ") + `]
grants:
  - {groups: [staff], roles: [minimal], reason: SEC-9 least privilege}
  - {users: [` + strings.Join(direct, ", ") + `], roles: [minimal], reason: SEC-9 least privilege}
`})
	e.Fake.ResetRequests()
	code, out, _ := e.run("apply", "--repo", e.Repo)
	const breaker = "the plan takes access away from 26 people (1 removed from the account, 13 with their own policies cut, 12 losing access through a user group's policies), more than max_removals (2)"
	if code != ExitError || !strings.Contains(out, breaker) || !strings.Contains(out, "26 people lose access") {
		t.Errorf("apply: exit %d, want the breaker:\n%s", code, out)
	}
	if w := e.Writes(); len(w) != 0 {
		t.Errorf("wrote %v", w)
	}
	// The count is in every format.
	_, js, _ := e.run("plan", "--repo", e.Repo, "--format", "json")
	if p := planJSONOf(t, js); p.Summary.LosingAccess != 26 || p.Accounts[0].LosingAccess != 26 || len(p.Accounts[0].Losing) != 26 {
		t.Errorf("JSON: losing_access %d, account %d, losing %d", p.Summary.LosingAccess, p.Accounts[0].LosingAccess, len(p.Accounts[0].Losing))
	}
	if _, md, _ := e.run("plan", "--repo", e.Repo, "--format", "markdown"); !strings.Contains(md, "(the plans refused would take access from **26 people**)") {
		t.Errorf("markdown:\n%s", md)
	}
}

// The protected owner holds Super Administrator through a user group that
// the repository mirrors under the same name and grants Analytics: setting
// the group's policies would demote the owner. That change is refused at
// the group's declaration, whatever --allow-mass-removal says, and never
// written (it used to apply and exit 0); the rest of the plan is applied
// — an expiry must not wait on it — and apply exits 1.
func TestProtectedOwnerThroughAUserGroup(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.Put("owner@example.com", false, desired.Access{Role: "Minimal Account Access", Resource: testkit.WholeAccount})
	if _, err := e.Fake.PutUserGroup(fake.UserGroupSpec{Name: "Admins", Members: []string{"owner@example.com"},
		Access: []desired.Access{{Role: "Super Administrator - All Privileges", Resource: testkit.WholeAccount}}}); err != nil {
		t.Fatal(err)
	}
	e.Commit("an admins group", map[string]string{"admins.yaml": `roles:
  analytics: {providers: [prod], inherits: [Analytics], resources: {allow: ["account:*"]}}
groups:
  admins:
    name: Admins
    cloudflare_user_group: true
    members: [alice@example.com]
grants:
  - {groups: [admins], roles: [analytics], reason: OPS-5 dashboards}
`})
	const refusal = `admins.yaml:4: user group "Admins" (cloudflare_user_group) would have its policies set so that protected member owner@example.com would lose Super Administrator - All Privileges on account:*: refused`
	if code, out, _ := e.run("plan", "--repo", e.Repo); code != ExitError || !strings.Contains(out, "⛔ "+refusal) {
		t.Errorf("plan: exit %d, want the refusal:\n%s", code, out)
	}
	if _, md, _ := e.run("plan", "--repo", e.Repo, "--format", "markdown"); !strings.Contains(md, "⛔ **1 change refused**") {
		t.Errorf("markdown:\n%s", md)
	}
	e.Fake.ResetRequests()
	for _, args := range [][]string{{"apply", "--repo", e.Repo}, {"apply", "--repo", e.Repo, "--allow-mass-removal"}} {
		code, out, _ := e.run(args...)
		if code != ExitError || !strings.Contains(out, refusal) || !strings.Contains(out, "1 change refused") {
			t.Errorf("%v: exit %d, want the refusal:\n%s", args, code, out)
		}
		for _, w := range e.Writes() {
			if strings.Contains(w, "/iam/user_groups/") && strings.HasPrefix(w, "PUT") {
				t.Errorf("%v: the group's policies were written: %v", args, w)
			}
		}
		if g := e.Fake.UserGroups(); len(g) != 1 || len(g[0].Access) != 1 || g[0].Access[0].Role != "Super Administrator - All Privileges" {
			t.Errorf("%v: the owner's group changed: %+v", args, g)
		}
	}
	if e.HasMember("stranger@example.com") {
		t.Error("the rest of the plan was not applied")
	}
}

// A member's own policy may hold what a policy of her user group holds:
// read back after an update, it is still hers. (Told apart by content, it
// was dropped as inherited: apply said "the change did not take" and exited
// 1, and the next plan was empty.)
func TestOwnPolicyLikeHerGroupsIsHers(t *testing.T) {
	t.Parallel()
	ro := desired.Access{Role: "Administrator Read Only", Resource: testkit.WholeAccount}
	for _, inherited := range []bool{false, true} {
		e := newE2EWith(t, fake.Options{Token: testkit.Token, AccountName: "Production", InheritedPolicies: inherited})
		e.Put("alice@example.com", false, ro, desired.Access{Role: "Firewall", Resource: testkit.WholeAccount})
		if _, err := e.Fake.PutUserGroup(fake.UserGroupSpec{Name: "readers", Members: []string{"alice@example.com"}, Access: []desired.Access{ro}}); err != nil {
			t.Fatal(err)
		}
		e.Commit("alice reads too", map[string]string{"alice.yaml": "grants:\n  - {users: [alice@example.com], roles: [ro], reason: OPS-8}\n"})
		code, out, _ := e.run("apply", "--repo", e.Repo)
		if code != ExitOK || !strings.Contains(out, "~ update alice@example.com") {
			t.Errorf("inherited listed %v: apply exit %d\n%s", inherited, code, out)
		}
		if got := e.Members()["alice@example.com"]; got != "accepted: Domain DNS on zone:example.com, Administrator Read Only on account:*" &&
			got != "accepted: Administrator Read Only on account:*, Domain DNS on zone:example.com" {
			t.Errorf("inherited listed %v: alice %q", inherited, got)
		}
		if code, out, _ := e.run("plan", "--repo", e.Repo, "--detailed-exitcode"); code != ExitOK {
			t.Errorf("inherited listed %v: second plan exit %d\n%s", inherited, code, out)
		}
	}
}

// daemonProcess is `reconciler run` in a process of its own (this test
// binary, as testscript installs it on $PATH).
type daemonProcess struct {
	cmd     *exec.Cmd
	logs    *testkit.Buffer
	base    string
	started time.Time
}

func startProcess(t *testing.T, env []string, args ...string) *daemonProcess {
	t.Helper()
	bin, err := exec.LookPath("reconciler")
	if err != nil {
		t.Fatalf("the reconciler command is not on $PATH (TestMain installs it): %v", err)
	}
	p := &daemonProcess{cmd: exec.Command(bin, args...), logs: &testkit.Buffer{}}
	p.cmd.Env, p.cmd.Stderr, p.cmd.Stdout = env, p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			t.Errorf("a daemon did not stop within 30 s\n%s", p.logs.String())
		}
	})
	eventually(t, 60*time.Second, "the started record", func() bool {
		for line := range strings.Lines(p.logs.String()) {
			var rec struct {
				Msg, Listen string
				Time        time.Time
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "started" {
				p.base, p.started = "http://"+rec.Listen, rec.Time
				return true
			}
		}
		return false
	})
	return p
}

// elsewhere is the daemon's count of changes made with its credentials by
// someone else, scraped from /metrics.
func (p *daemonProcess) elsewhere(t *testing.T) float64 {
	t.Helper()
	res, err := http.Get(p.base + "/metrics")
	if err != nil {
		return 0
	}
	defer res.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	n := 0.0
	for _, m := range families["cfaccess_out_of_band_changes_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "actor_type" && l.GetValue() == "cfaccess_token" {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// Two daemons — two processes, following two revisions of the repository,
// one account and one token — each report the other's writes as made with
// their token by someone else, within an interval of the first such write
// (issue 19: they flipped a member between Analytics and Administrator
// every few seconds, and neither saw the other as drift).
func TestTwoDaemonsOneToken(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two processes")
	}
	t.Parallel()
	e := newE2E(t)
	e.Story.Clock = time.Now // the processes keep real time; so does the fake's log
	url := e.Serve()
	e.Git("checkout", "-q", "-b", "other")
	e.Commit("alice administers", map[string]string{"alice.yaml": `roles:
  admin: {providers: [prod], inherits: [Administrator], resources: {allow: ["account:*"]}}
grants:
  - {users: [alice@example.com], roles: [admin], reason: OPS-2}
`})
	e.Git("checkout", "-q", "main")
	env := append(os.Environ(), "CLOUDFLARE_API_URL="+url, "CLOUDFLARE_API_TOKEN="+testkit.Token)
	const interval = 2 * time.Second
	args := func(ref string) []string {
		return []string{"run", "--repo", "file://" + e.Repo, "--ref", ref, "--listen", "127.0.0.1:0", "--interval", interval.String(),
			"--full-read-interval", "1h", "--cloudflare-max-retries", "1", "--log-format", "json"}
	}
	a := startProcess(t, env, args("main")...)
	b := startProcess(t, env, args("other")...)
	e.Git("checkout", "-q", "other")
	revB := e.Head()
	e.Git("checkout", "-q", "main")
	revA := e.Head()
	// When each first reports the other, polled every 50 ms.
	reported := map[*daemonProcess]time.Time{}
	for start := time.Now(); len(reported) < 2; time.Sleep(50 * time.Millisecond) {
		for _, p := range []*daemonProcess{a, b} {
			if _, ok := reported[p]; !ok && p.elsewhere(t) > 0 {
				reported[p] = time.Now()
			}
		}
		if time.Since(start) > 60*time.Second {
			t.Fatalf("not both reported within 60 s:\n%s\n%s", a.logs.String(), b.logs.String())
		}
	}
	for _, tc := range []struct {
		p            *daemonProcess
		other, label string
	}{{a, revB, "the daemon on main"}, {b, revA, "the daemon on other"}} {
		p := tc.p
		if logs := p.logs.String(); !strings.Contains(logs, "a change was made with cfaccess's own credentials that this cfaccess did not make") {
			t.Errorf("%s: no ERROR line:\n%s", tc.label, logs)
		}
		res, err := http.Get(p.base + "/status")
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			Accounts []struct {
				Elsewhere []struct {
					Action, Subject string
					UserAgent       string `json:"user_agent"`
				} `json:"credentials_used_elsewhere"`
			}
		}
		err = json.NewDecoder(res.Body).Decode(&st)
		res.Body.Close()
		if err != nil || len(st.Accounts) != 1 || len(st.Accounts[0].Elsewhere) == 0 || st.Accounts[0].Elsewhere[0].Action != "Edit Member" ||
			!strings.Contains(st.Accounts[0].Elsewhere[0].UserAgent, tc.other) {
			t.Errorf("%s: /status credentials_used_elsewhere: %+v %v", tc.label, st, err)
		}
		page, err := http.Get(p.base + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(page.Body)
		page.Body.Close()
		if !strings.Contains(string(body), "Changes made with cfaccess's own credentials by someone else") {
			t.Errorf("%s: the status page does not say so:\n%s", tc.label, body)
		}
		// The other's first write this one could judge (its journal
		// reaches from JournalSkew after its start): reported within an
		// interval (+10% jitter), and a second for the polls.
		var first time.Time
		for _, en := range e.Fake.AuditLog() {
			if strings.Contains(en.UserAgent, tc.other) && en.Time.After(p.started.Add(cloudflare.JournalSkew)) {
				first = en.Time
				break
			}
		}
		if first.IsZero() {
			t.Fatalf("%s: the other wrote nothing it could judge", tc.label)
		}
		if took := reported[p].Sub(first); took > interval+interval/10+time.Second {
			t.Errorf("%s: reported %v after the other's write, want within an interval (%v)", tc.label, took, interval)
		}
	}
}

// reconciler status prints what a daemon's /status says, from live data:
// a user-group name or an actor cannot forge a line, move the cursor or
// shift a column.
func TestStatusTerminalEscapesLiveData(t *testing.T) {
	t.Parallel()
	const forged = "Recent changes:\n  2026-12-01 09:00 prod remove mallory@example.com: success"
	st := daemon.Status{Ready: true, Accounts: []daemon.AccountStatus{{Account: "prod\x1b[2J", AccountID: "023e105f4ecef8ad9ca31a8372d0c353", Result: "success",
		Members: []daemon.MemberStatus{{Email: "a\tb@example.com", Status: "accepted", Access: []string{"Analytics on account:* (via user group " + forged + ")"}}},
		Drift:   []daemon.DriftStatus{{Change: "remove", Email: "x@example.com", Actor: "eve\r\nHealth: ready", Context: "dash"}}}},
		Recent: []daemon.RecentChange{{Account: "prod", Action: "update_user_group", Group: forged, Result: "success"}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _ = json.NewEncoder(w).Encode(st) }))
	defer srv.Close()
	e := newE2E(t)
	code, out, errOut := e.run("status", "--addr", srv.URL)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for line := range strings.Lines(out) {
		if strings.HasPrefix(strings.TrimSpace(line), "2026-12-01 09:00 prod remove") || strings.HasPrefix(line, "Health: ready\n") && strings.Contains(out, "eve\r") {
			t.Errorf("a forged line: %q\n%s", line, out)
		}
	}
	if strings.ContainsAny(out, "\x1b\r\t") || strings.Count(out, "\nRecent changes (") != 1 || !strings.Contains(out, "⏎") {
		t.Errorf("live data printed raw:\n%q", out)
	}
}

// A plan posted as a pull-request comment notifies nobody and links
// nowhere: an @mention or a bare URL in a reason, a file name or a group
// name is shown, not acted on. An email stays as it is.
func TestMarkdownNotifiesNobody(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.Commit("a loud reason", map[string]string{
		"loud.yaml": "grants:\n  - {users: [loud@example.com], roles: [ro], reason: \"cc @security-team, @org/admins, .@dot, -@dash, +@plus: see https://evil.example/x and www.evil.example\"}\n",
	})
	_, out, _ := e.run("plan", "--repo", e.Repo, "--format", "markdown")
	for _, raw := range []string{"@security-team", "@org/admins", "@dot", "@dash", "@plus", "https://evil.example", "www.evil.example"} {
		if strings.Contains(out, raw) {
			t.Errorf("%q posted as is:\n%s", raw, out)
		}
	}
	if !strings.Contains(out, "@&#8203;security-team") || !strings.Contains(out, "https:&#8203;//evil.example") || !strings.Contains(out, "loud@example.com") {
		t.Errorf("the reason is not shown, neutralised:\n%s", out)
	}
}
