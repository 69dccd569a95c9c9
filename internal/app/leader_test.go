package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/spf13/cobra"

	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/leader"
	"github.com/cfaccess/reconciler/internal/testkit"
)

// electedService is `reconciler run --leader-elect` wired in-process (the
// Lease API and the fake reached through in-memory transports), its HTTP
// server bound but not serving: the loop's terms alone, in a synctest
// bubble.
func electedService(t *testing.T, e *e2e, api *testkit.LeaseAPI, pod string, extra ...string) *service {
	t.Helper()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "http://kubernetes.test"}}]
contexts: [{name: test, context: {cluster: test, user: test}}]
users: [{name: test, user: {}}]
current-context: test
`), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := e.Getenv(testkit.APIURL)
	env := Env{Getenv: func(k string) string {
		switch k {
		case "POD_NAME":
			return pod
		case "POD_NAMESPACE":
			return "cfaccess"
		}
		return getenv(k)
	}, Stdout: io.Discard, Stderr: io.Discard, Now: time.Now, Transport: e.Transport(), KubeTransport: testkit.Transport(api.Handler())}
	f := &runFlags{}
	cmd := &cobra.Command{}
	f.register(cmd, &env)
	args := append([]string{"--repo", "file://" + e.Repo, "--listen", "127.0.0.1:0", "--interval", "1h", "--leader-elect",
		"--kubeconfig", kubeconfig, "--log-format", "text"}, extra...)
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	d, err := f.service(&env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d.work) })
	return d
}

// A just-in-time grant that expires while the leader is gone — cut off
// from the Kubernetes API, then stopped without handing the Lease over,
// as a node that dies — is revoked by the standby once it takes the
// Lease: within the lease duration and two of client-go's tries of the
// expiry, and only one replica ever writes.
func TestExpiryAcrossAFailover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newE2E(t)
		e.Story.Clock = time.Now // the bubble's clock
		expires := time.Now().Add(40 * time.Second).UTC()
		e.Commit("jit access for the incident", map[string]string{"jit.yaml": "grants:\n  - {users: [jit@example.com], roles: [ro], reason: INC-9, expires: " +
			expires.Format(time.RFC3339) + "}\n"})
		api := testkit.NewLeaseAPI()
		a := electedService(t, e, api, "replica-a")
		b := electedService(t, e, api, "replica-b")
		ctxA, stopA := context.WithCancel(t.Context())
		ctxB, stopB := context.WithCancel(t.Context())
		doneA, doneB := make(chan error, 1), make(chan error, 1)
		go func() { doneA <- a.reconcile(ctxA) }()
		testkit.Advance(time.Second)
		go func() { doneB <- b.reconcile(ctxB) }()
		for !e.HasMember("jit@example.com") {
			testkit.Advance(100 * time.Millisecond)
			if time.Until(expires) < 20*time.Second {
				t.Fatal("the grant was never applied")
			}
		}
		if !a.elector.Role().Leading || b.elector.Role().Leading {
			t.Fatalf("a %+v, b %+v", a.elector.Role(), b.elector.Role())
		}
		// A webhook reaching the standby: b asks a through the Lease, and
		// a corrects the drift at its next renewal (its interval is an
		// hour).
		e.Put("mallory@evil.example", false, desired.Access{Role: "Administrator", Resource: testkit.WholeAccount})
		b.poke()
		testkit.Advance(3 * time.Second)
		if e.HasMember("mallory@evil.example") {
			t.Error("the standby's request did not reach the leader")
		}
		// 5 s before the expiry, a's node dies: cut off, then stopped
		// without releasing the Lease.
		if time.Until(expires) < 10*time.Second {
			t.Fatal("the test took too long before the failover")
		}
		testkit.Advance(time.Until(expires) - 5*time.Second)
		api.Down("replica-a", true)
		stopA()
		if err := <-doneA; err != nil {
			t.Fatal(err)
		}
		writesBefore := len(e.Writes())
		for e.HasMember("jit@example.com") {
			testkit.Advance(100 * time.Millisecond)
			if time.Since(expires) > time.Minute {
				t.Fatal("the expired grant was never revoked")
			}
		}
		late := time.Since(expires)
		t.Logf("revoked %v after its expiry (the leader died 5 s before it)", late.Round(100*time.Millisecond))
		if lim := 15*time.Second + 2*time.Second + time.Second; late > lim { // lease duration + retry period + 1 s
			t.Errorf("revoked %v after the expiry; want within %v", late, lim)
		}
		if !b.elector.Role().Leading {
			t.Errorf("b %+v", b.elector.Role())
		}
		if len(e.Writes()) == writesBefore {
			t.Error("no write after the failover")
		}
		if got := b.elector.Role().Changed; got < 1 {
			t.Errorf("b saw %d changes of leader", got)
		}
		stopB()
		if err := <-doneB; err != nil {
			t.Fatal(err)
		}
	})
}

// replicaStatus is a process's part, from its /status.
func (p *daemonProcess) replica(t *testing.T) (leading bool, leader string) {
	t.Helper()
	res, err := http.Get(p.base + "/status")
	if err != nil {
		return false, ""
	}
	defer res.Body.Close()
	var st struct {
		Replica *struct {
			Leading bool
			Leader  string
		}
	}
	if json.NewDecoder(res.Body).Decode(&st) != nil || st.Replica == nil {
		return false, ""
	}
	return st.Replica.Leading, st.Replica.Leader
}

// Three `reconciler run --leader-elect` processes against one Lease API
// (over HTTP, found through KUBECONFIG) and the fake Cloudflare, with a
// 6 s lease: drift is corrected once, not once per replica; the standby
// says so on its page; after kill -9 of the leader the other corrects new
// drift within 20 s; after a graceful stop a third takes over at once.
func TestLeaderElectionProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes")
	}
	t.Parallel()
	e := newE2E(t)
	e.Story.Clock = time.Now // the processes keep real time
	url := e.Serve()
	api := testkit.NewLeaseAPI()
	kube := httptest.NewServer(api.Handler())
	t.Cleanup(kube.Close)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte("apiVersion: v1\nkind: Config\nclusters: [{name: t, cluster: {server: \""+kube.URL+
		"\"}}]\ncontexts: [{name: t, context: {cluster: t, user: t}}]\nusers: [{name: t, user: {}}]\ncurrent-context: t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	start := func(pod string) *daemonProcess {
		env := append(os.Environ(), "CLOUDFLARE_API_URL="+url, "CLOUDFLARE_API_TOKEN="+testkit.Token, "KUBECONFIG="+kubeconfig,
			"POD_NAME="+pod, "POD_NAMESPACE=cfaccess")
		return startProcess(t, env, "run", "--repo", "file://"+e.Repo, "--listen", "127.0.0.1:0", "--interval", "2s",
			"--full-read-interval", "1h", "--cloudflare-max-retries", "1", "--log-format", "json", "--leader-elect",
			"--leader-elect-lease-duration", "6s", "--leader-elect-renew-deadline", "4s", "--leader-elect-retry-period", "1s")
	}
	leaderOf := func(ps ...*daemonProcess) *daemonProcess {
		for _, p := range ps {
			if leading, _ := p.replica(t); leading {
				return p
			}
		}
		return nil
	}
	a, b := start("replica-a"), start("replica-b")
	var lead, standby *daemonProcess
	eventually(t, 30*time.Second, "a leader, and the account converged", func() bool {
		lead = leaderOf(a, b)
		return lead != nil && !e.HasMember("stranger@example.com")
	})
	standby = a
	if lead == a {
		standby = b
	}
	eventually(t, 10*time.Second, "the standby naming the leader, and ready", func() bool {
		_, leader := standby.replica(t)
		res, err := http.Get(standby.base + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return strings.HasPrefix(leader, "replica-") && res.StatusCode == http.StatusOK
	})
	if res, err := http.Get(standby.base + "/"); err != nil {
		t.Error(err)
	} else {
		page, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if !strings.Contains(string(page), "Standby") {
			t.Errorf("the standby's page has no banner:\n%s", page)
		}
	}

	// Drift is corrected once.
	e.Fake.ResetRequests()
	e.Put("mallory@evil.example", false, desired.Access{Role: "Administrator", Resource: testkit.WholeAccount})
	var malloryID string
	for _, m := range e.Fake.Members() {
		if m.Email == "mallory@evil.example" {
			malloryID = m.ID
		}
	}
	eventually(t, 20*time.Second, "the drift corrected", func() bool { return !e.HasMember("mallory@evil.example") })
	time.Sleep(5 * time.Second) // two more intervals: a second writer would have shown
	if deletes := countPrefix(e.Writes(), "DELETE /accounts/"+e.Fake.AccountID()+"/members/"+malloryID); malloryID == "" || deletes != 1 {
		t.Errorf("%d removals of mallory (%s) for one drift: %v", deletes, malloryID, e.Writes())
	}

	// kill -9 of the leader: the standby corrects new drift within 20 s.
	if err := lead.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	e.Put("trudy@evil.example", false, desired.Access{Role: "Administrator", Resource: testkit.WholeAccount})
	eventually(t, 20*time.Second, "the new drift corrected by the standby", func() bool { return !e.HasMember("trudy@evil.example") })
	t.Logf("kill -9: new drift corrected %v after", time.Since(killed).Round(100*time.Millisecond))

	// A third replica; the leader stops gracefully and hands over at once.
	c := start("replica-c")
	eventually(t, 10*time.Second, "the third standing by", func() bool {
		_, leader := c.replica(t)
		return leader != ""
	})
	if err := standby.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	eventually(t, 10*time.Second, "the third leading", func() bool { leading, _ := c.replica(t); return leading })
	t.Logf("graceful stop: the third led %v after", time.Since(stopped).Round(100*time.Millisecond))
	if d := time.Since(stopped); d > 5*time.Second {
		t.Errorf("the third led %v after the graceful stop; want at once (a retry period and its jitter)\n%s", d, standby.logs.String())
	}
	e.Put("oscar@evil.example", false, desired.Access{Role: "Administrator", Resource: testkit.WholeAccount})
	eventually(t, 20*time.Second, "drift corrected by the third", func() bool { return !e.HasMember("oscar@evil.example") })
}

func countPrefix(xs []string, prefix string) int {
	n := 0
	for _, x := range xs {
		if strings.HasPrefix(x, prefix) {
			n++
		}
	}
	return n
}

// The applied revision the Lease carries is believed by the next leader
// only to refuse: someone allowed to update the Lease who records a
// revision Git does not know stops new revisions (refused as a rewritten
// history, nothing written), and gives no one access.
func TestForgedAppliedRevisionFailsClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newE2E(t)
		e.Story.Clock = time.Now
		api := testkit.NewLeaseAPI()
		a := electedService(t, e, api, "replica-a")
		ctxA, stopA := context.WithCancel(t.Context())
		doneA := make(chan error, 1)
		go func() { doneA <- a.reconcile(ctxA) }()
		for !a.elector.Role().Leading || e.HasMember("stranger@example.com") {
			testkit.Advance(100 * time.Millisecond)
		}
		stopA() // a graceful stop: the Lease is released
		if err := <-doneA; err != nil {
			t.Fatal(err)
		}
		var applied map[string]string
		if got := api.Lease("cfaccess", "cfaccess").Annotations[leader.AppliedAnnotation]; json.Unmarshal([]byte(got), &applied) != nil || len(applied) != 1 {
			t.Fatalf("the Lease records %q", got)
		}
		for k := range applied {
			applied[k] = "0123456789abcdef0123456789abcdef01234567" // a revision Git does not know
		}
		forged, _ := json.Marshal(applied)
		api.Annotate("cfaccess", "cfaccess", leader.AppliedAnnotation, string(forged))
		// A new revision that would invite someone: refused by the next
		// leader, which cannot tell it descends from the forged one.
		e.Commit("add zoe", map[string]string{"zoe.yaml": "grants:\n  - {users: [zoe@example.com], roles: [ro], reason: OPS-9}\n"})
		e.Fake.ResetRequests()
		b := electedService(t, e, api, "replica-b")
		ctxB, stopB := context.WithCancel(t.Context())
		doneB := make(chan error, 1)
		go func() { doneB <- b.reconcile(ctxB) }()
		for !b.elector.Role().Leading || b.current.Load() == nil {
			testkit.Advance(100 * time.Millisecond)
		}
		testkit.Advance(5 * time.Second)
		st := b.current.Load().Board.Status()
		if st.BadRevision == nil || st.BadRevision.Result != "non_fast_forward" {
			t.Errorf("the forged revision did not refuse the head: %+v", st.BadRevision)
		}
		if e.HasMember("zoe@example.com") || len(e.Writes()) != 0 {
			t.Errorf("writes under a forged applied revision: %v", e.Writes())
		}
		stopB()
		if err := <-doneB; err != nil {
			t.Fatal(err)
		}
	})
}
