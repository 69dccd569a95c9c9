package app

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/spf13/cobra"

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
		// 5 s before the expiry, a's node dies: cut off, then stopped
		// without releasing the Lease.
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
		if lim := 15*time.Second + 2*(2*time.Second*22/10) + time.Second; late > lim {
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
