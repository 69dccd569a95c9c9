package app

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cfaccess/reconciler/internal/testkit"
)

// startSandbox starts `reconciler sandbox args…` and returns the export
// lines it printed, and a stop that returns when it has stopped (also
// called at the end of the test).
func startSandbox(t *testing.T, args ...string) (map[string]string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &testkit.Buffer{}
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, Env{Args: append([]string{"sandbox"}, args...), Stdout: out, Stderr: out})
	}()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	exports := map[string]string{}
	eventually(t, 10*time.Second, "the export lines", func() bool {
		for _, m := range regexp.MustCompile(`(?m)^export (\w+)=(\S+)$`).FindAllStringSubmatch(out.String(), -1) {
			exports[m[1]] = m[2]
		}
		return exports["CF_TOKEN_STAGING"] != ""
	})
	return exports, stop
}

// sandbox --state keeps the accounts across a restart: a change made in
// the dashboard before it is there after.
func TestSandboxState(t *testing.T) {
	t.Parallel()
	state := filepath.Join(t.TempDir(), "sandbox.json")
	exports, stop := startSandbox(t, "--listen", "127.0.0.1:0", "--state", state)
	api := strings.TrimSuffix(exports["CLOUDFLARE_API_URL"], "/client/v4")
	res, err := http.Post(api+"/_sandbox/dashboard?account=staging&email=kept@example.com&role=Billing", "", nil)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("the dashboard change: %v %v", res, err)
	}
	res.Body.Close()
	stop()
	exports, _ = startSandbox(t, "--listen", "127.0.0.1:0", "--state", state)
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), Env{Args: []string{"members", "list", "--account-id", demoStagingID}, Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string { return exports[k] }})
	if code != ExitOK || !strings.Contains(stdout.String(), "kept@example.com") {
		t.Errorf("after a restart: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
}

// The sandbox, end to end: started, its export lines read as a user would
// copy them, then plan, apply, import, review and report against it; a
// change made "in the dashboard" is corrected by run and attributed to who
// made it.
func TestSandbox(t *testing.T) {
	if testing.Short() {
		t.Skip("serves over TCP and runs the daemon in real time")
	}
	t.Parallel()
	exports, _ := startSandbox(t, "--listen", "127.0.0.1:0")
	repo := t.TempDir()
	if err := copyExampleRepo(repo); err != nil {
		t.Fatal(err)
	}
	// A checkout, as example-repo is in a clone: report needs its history.
	git := (&testkit.Story{T: t, Repo: repo}).Git
	git("init", "-q", "-b", "main")
	git("add", ".")
	git("commit", "-q", "-m", "example-repo")
	run := func(args ...string) (int, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := Run(context.Background(), Env{Args: args, Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return exports[k] }})
		return code, stdout.String() + stderr.String()
	}
	if code, out := run("plan", "--repo", repo); code != ExitOK || !strings.Contains(out, "contractor@oldagency.example") {
		t.Fatalf("plan: exit %d\n%s", code, out)
	}
	if code, out := run("apply", "--repo", repo); code != ExitOK {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	if code, out := run("plan", "--repo", repo, "--detailed-exitcode"); code != ExitOK {
		t.Errorf("a second plan is not empty: exit %d\n%s", code, out)
	}
	if code, out := run("import", "--account-id", demoProdID, "--out", filepath.Join(t.TempDir(), "imported")); code != ExitOK || !strings.Contains(out, "imported") {
		t.Errorf("import: exit %d\n%s", code, out)
	}
	if code, out := run("review", "--repo", repo); code != ExitOK || !strings.Contains(out, "bob@example.com") {
		t.Errorf("review: exit %d\n%s", code, out)
	}
	code, out := run("report", "--repo", repo, "--since", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	if code != ExitOK || !strings.Contains(out, "contractor@oldagency.example") {
		t.Errorf("report: exit %d\n%s", code, out)
	}
	// What apply did is approved through Git, not out of band.
	for line := range strings.Lines(out) {
		if strings.Contains(line, "| contractor@oldagency.example | Remove Member |") && !strings.Contains(line, "✅ Git") ||
			strings.Contains(line, "| cfaccess |") && strings.Contains(line, "out of band") {
			t.Errorf("report: a change of cfaccess's not approved through Git: %s", line)
		}
	}

	// The daemon, and a change made in the dashboard by mallory.
	dctx, stop := context.WithCancel(context.Background())
	logs := &testkit.Buffer{}
	ddone := make(chan int, 1)
	go func() {
		ddone <- Run(dctx, Env{Args: []string{"run", "--repo", repo, "--listen", "127.0.0.1:0", "--interval", "1s", "--min-trigger-interval", "200ms"},
			Stdout: logs, Stderr: logs, Getenv: func(k string) string { return exports[k] }})
	}()
	t.Cleanup(func() { stop(); <-ddone })
	eventually(t, 15*time.Second, "the daemon's first reconcile", func() bool { return strings.Contains(logs.String(), `"msg":"reconciled"`) })
	api := strings.TrimSuffix(exports["CLOUDFLARE_API_URL"], "/client/v4")
	res, err := http.Post(api+"/_sandbox/dashboard?account=prod&email=mallory@evil.example&role=Administrator&as=mallory@example.com", "", nil)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("the dashboard change: %v %v", res, err)
	}
	res.Body.Close()
	eventually(t, 20*time.Second, "the change corrected and attributed", func() bool {
		return strings.Contains(logs.String(), `"email":"mallory@evil.example"`) && strings.Contains(logs.String(), `"drift_actor":"mallory@example.com"`)
	})
}
