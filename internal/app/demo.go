package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/cfaccess/reconciler/example-repo"
	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
)

// The example repository's accounts.
const (
	demoProdID    = "023e105f4ecef8ad9ca31a8372d0c353"
	demoStagingID = "9a7806061c88ada191ed06f989cc3dac"
)

func newDemo(env *Env) *cobra.Command {
	var (
		listen            string
		jitAfter, oobWait time.Duration
		exitAfter         time.Duration
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Watch cfaccess work on a simulated account: plan, apply, drift correction, expiry",
		Long: `Demo starts two simulated Cloudflare accounts inside this process, in a state
that has drifted from example-repo (compiled into the binary): a member to
update, people to invite, a pending invitation, a member nobody declared, and
a protected owner. It prints the plan, applies it, then runs the daemon and
shows, live, the correction of a change made "in the dashboard" and the
on-time expiry of a short just-in-time grant, with /metrics and /status up.

Nothing leaves this machine: no credentials are needed or read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("listen") && !portFree(listen) {
				// 9090 is Prometheus's own port: often taken on a laptop.
				fmt.Fprintf(env.Stdout, "%s is taken: the demo's daemon listens on a free port instead (shown below).\n", listen)
				listen = "127.0.0.1:0"
			}
			return runDemo(cmd.Context(), env, listen, jitAfter, oobWait, exitAfter)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:9090", "address of the daemon's HTTP server (metrics, status)")
	cmd.Flags().DurationVar(&jitAfter, "jit-after", 20*time.Second, "when the demo's just-in-time grant expires")
	cmd.Flags().DurationVar(&oobWait, "dashboard-change-after", 5*time.Second, "when the simulated dashboard change happens")
	cmd.Flags().DurationVar(&exitAfter, "exit-after", 0, "stop after this long (0: run until interrupted)")
	_ = cmd.Flags().MarkHidden("exit-after")
	return cmd
}

// portFree reports whether addr can be listened on now.
func portFree(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// seedDemo puts the simulated accounts in a drifted state.
func seedDemo() (prod, staging *fake.Server, err error) {
	prod = fake.New(fake.Options{AccountID: demoProdID, AccountName: "Example Production", Token: "demo-token", Owner: "owner@example.com"})
	staging = fake.New(fake.Options{AccountID: demoStagingID, AccountName: "Example Staging", Token: "demo-token", Owner: "owner@example.com"})
	acct := desired.Resource{Kind: desired.WholeAccount}
	zone := func(name string) desired.Resource { return desired.Resource{Kind: desired.ZoneName, Zone: name} }
	for _, z := range []string{"example.com", "api.example.com", "shop.example.com"} {
		prod.AddZone(z)
	}
	staging.AddZone("staging.example.com")
	put := func(s *fake.Server, spec fake.MemberSpec) {
		if err == nil {
			_, err = s.PutMember(spec)
		}
	}
	superAdmin := []desired.Access{{Role: "Super Administrator - All Privileges", Resource: acct}}
	put(prod, fake.MemberSpec{Email: "owner@example.com", TwoFactor: true, Access: superAdmin})
	put(staging, fake.MemberSpec{Email: "owner@example.com", TwoFactor: true, Access: superAdmin})
	// In sync, through a domain group someone made by hand in the
	// dashboard: cfaccess reuses it rather than making its own.
	web := prod.AddResourceGroup("Production web zones", "example.com", "api.example.com")
	put(prod, fake.MemberSpec{Email: "bob@example.com", TwoFactor: true,
		Access:   []desired.Access{{Role: "Administrator Read Only", Resource: acct}},
		Policies: []fake.PolicySpec{{Roles: []string{"Domain DNS"}, ResourceGroups: []string{web}}}})
	// Drift: someone gave carol Billing by hand.
	put(prod, fake.MemberSpec{Email: "carol@example.com", Access: []desired.Access{
		{Role: "Administrator Read Only", Resource: acct}, {Role: "Billing", Resource: acct}}})
	// A pending invitation, as declared.
	put(prod, fake.MemberSpec{Email: "heidi@example.com", Pending: true,
		Access: []desired.Access{{Role: "Workers Editor", Resource: acct}, {Role: "Cloudflare R2 Read", Resource: acct},
			{Role: "Cache Domain Purge", Resource: zone("shop.example.com")}},
		Policies: []fake.PolicySpec{{Roles: []string{"Domain Administrator Read Only"}, ResourceGroups: []string{web}}}})
	// Nobody declared this one: a contractor whose engagement ended.
	put(prod, fake.MemberSpec{Email: "contractor@oldagency.example", Access: []desired.Access{{Role: "DNS", Resource: acct}}})
	put(staging, fake.MemberSpec{Email: "bob@example.com", Access: []desired.Access{{Role: "Administrator Read Only", Resource: acct}}})
	return prod, staging, err
}

// runDemo runs the demo: it sets up the simulated accounts and a copy of
// the access repository, shows the plan and applies it, then runs the
// daemon until ctx is done (or exitAfter has passed).
func runDemo(ctx context.Context, env *Env, listen string, jitAfter, oobWait, exitAfter time.Duration) error {
	if exitAfter > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, exitAfter)
		defer cancel()
	}
	prod, staging, err := seedDemo()
	if err != nil {
		return err
	}
	api := httptest.NewServer(fake.Multi(prod, staging))
	defer api.Close()
	dir, err := os.MkdirTemp("", "cfaccess-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := copyExampleRepo(dir); err != nil {
		return err
	}
	jitUntil := env.Now().Add(jitAfter).UTC().Truncate(time.Second).Add(time.Second)
	if err := addDemoJIT(dir, jitUntil); err != nil {
		return err
	}
	d := &demo{env: demoEnv(env, api.URL), dir: dir, jitUntil: jitUntil, prod: prod}
	d.introduce()
	if err := d.converge(ctx); err != nil {
		return err
	}
	return d.runDaemon(ctx, listen, oobWait)
}

// copyExampleRepo copies example-repo into dir with the modes of an
// ordinary checkout: 0o755 for directories, 0o644 for files.
func copyExampleRepo(dir string) error {
	if err := os.CopyFS(dir, examplerepo.FS); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			mode := os.FileMode(0o644)
			if d.IsDir() {
				mode = 0o755
			}
			_ = os.Chmod(p, mode)
		}
		return nil
	})
	return nil
}

// addDemoJIT adds to the repository in dir a just-in-time grant for
// oncall@example.com that expires at until.
func addDemoJIT(dir string, until time.Time) error {
	jit := fmt.Sprintf("# Added by the demo: a just-in-time grant that expires in a few seconds.\ngrants:\n  - users: [oncall@example.com]\n    roles: [incident-admin]\n    reason: \"DEMO-1 on-call handover\"\n    expires: %s\n", until.Format(time.RFC3339))
	return os.WriteFile(filepath.Join(dir, "grants", "demo-jit.yaml"), []byte(jit), 0o644)
}

// demoEnv is the environment of the reconciler commands the demo runs: env's
// streams and clock, the demo token for both accounts, and the simulated
// API at apiURL.
func demoEnv(env *Env, apiURL string) Env {
	return Env{Args: nil, Stdin: env.Stdin, Stdout: env.Stdout, Stderr: env.Stderr, Now: env.Now, Getenv: func(k string) string {
		switch k {
		case "CF_TOKEN_PROD", "CF_TOKEN_STAGING":
			return "demo-token"
		case "CLOUDFLARE_API_URL":
			return apiURL + fake.BasePath
		case "NO_COLOR":
			return env.Getenv(k)
		}
		return ""
	}}
}

// demo is one run of the demo once its accounts and repository are set up.
type demo struct {
	env      Env       // for the reconciler commands the demo runs; Args unset
	dir      string    // the copy of the access repository
	jitUntil time.Time // when oncall@example.com's just-in-time grant expires
	prod     *fake.Server
}

// say prints one line of the demo's narration.
func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.env.Stdout, format+"\n", args...)
}

// reconciler shows and runs a reconciler command, and returns its exit code.
func (d *demo) reconciler(ctx context.Context, args ...string) int {
	d.say("\n$ reconciler %s", strings.Join(args, " "))
	e := d.env
	e.Args = args
	return Run(ctx, e)
}

// introduce says what the demo runs and how the accounts have drifted.
func (d *demo) introduce() {
	d.say("cfaccess demo: two simulated Cloudflare accounts run inside this process; nothing leaves this machine.")
	d.say("The access repository is example-repo (compiled in), copied to %s, plus a just-in-time grant for", d.dir)
	d.say("oncall@example.com that expires at %s. The accounts have drifted from it: carol was given", d.jitUntil.Local().Format("15:04:05"))
	d.say("Billing by hand, a contractor nobody declared is still a member, several people were never invited.")
}

// converge shows the plan, applies it, and checks that nothing is left to do.
func (d *demo) converge(ctx context.Context) error {
	if code := d.reconciler(ctx, "plan", "--repo", d.dir); code != ExitOK {
		return fmt.Errorf("the plan failed (exit %d)", code)
	}
	d.say("\nThe plan above changes nothing yet. Applying it:")
	if code := d.reconciler(ctx, "apply", "--repo", d.dir); code != ExitOK {
		return fmt.Errorf("apply failed (exit %d)", code)
	}
	if code := d.reconciler(ctx, "plan", "--repo", d.dir, "--detailed-exitcode"); code != ExitOK {
		return errors.New("the accounts did not converge")
	}
	return nil
}

// runDaemon starts the daemon in the background, shows it correct a
// dashboard change after oobWait and revoke the just-in-time grant on time,
// then keeps it running until ctx is done; it returns once the daemon has
// stopped, whenever ctx ends.
func (d *demo) runDaemon(ctx context.Context, listen string, oobWait time.Duration) error {
	dctx, stop := context.WithCancel(ctx)
	defer stop()
	addr, done, err := d.startDaemon(dctx, listen)
	if err != nil {
		return err
	}
	// However the demo ends, the daemon has stopped before its repository
	// is removed.
	code, stopped := ExitOK, false
	wait := func() int {
		if !stopped {
			stop()
			code, stopped = <-done, true
		}
		return code
	}
	defer wait()
	base := "http://" + addr
	d.say("\n$ reconciler run --repo %s --interval 5s --status-details   (the daemon, in the background)", d.dir)
	d.say("  page     %s/   (open it in a browser: who has which access, drift, expiries)", base)
	d.say("  metrics  %s/metrics", base)
	d.say("  status   %s/status", base)
	d.say("  health   %s/healthz and %s/readyz", base, base)
	d.say("It reconciles every 5 s, when a file of the repository changes, and at each grant's instant.")

	if ok, err := d.dashboardChange(ctx, oobWait); !ok {
		return err
	}
	if !d.jitExpiry(ctx) {
		return nil
	}
	d.say("\nConverged: both accounts equal the repository. The daemon keeps running; look at %s/ (or reconciler status --addr %s).", base, base)
	d.say("Press Ctrl-C to stop.")
	<-ctx.Done()
	if code := wait(); code != ExitOK {
		return fmt.Errorf("the daemon failed (exit %d)", code)
	}
	return nil
}

// startDaemon runs the daemon until ctx is done, and returns, once it
// listens, its address and the channel that receives its exit code.
func (d *demo) startDaemon(ctx context.Context, listen string) (addr string, done <-chan int, err error) {
	// The daemon runs as a user would start it; its logs are read only
	// for the address it listens on (the demo narrates instead).
	started := &startedLog{addr: make(chan string, 1)}
	daemonEnv := d.env
	// (--status-details: the simulated accounts' emails are made up.)
	daemonEnv.Args = []string{"run", "--repo", d.dir, "--listen", listen, "--interval", "5s", "--watch-debounce", "200ms", "--status-details"}
	daemonEnv.Stderr = started
	exit := make(chan int, 1)
	go func() { exit <- Run(ctx, daemonEnv) }()
	select {
	case addr = <-started.addr:
		return addr, exit, nil
	case code := <-exit:
		return "", nil, fmt.Errorf("the daemon stopped (exit %d)", code)
	}
}

// dashboardChange waits for oobWait, adds an administrator to the
// production account behind the daemon's back, and shows how soon the
// daemon removes them. ok is false, with a nil error, if ctx is done first.
func (d *demo) dashboardChange(ctx context.Context, oobWait time.Duration) (ok bool, err error) {
	select {
	case <-ctx.Done():
		return false, nil
	case <-time.After(oobWait):
	}
	d.say("\nSomeone adds mallory@evil.example as Administrator in the Cloudflare dashboard...")
	if _, err := d.prod.PutMember(fake.MemberSpec{Email: "mallory@evil.example", Access: []desired.Access{{Role: "Administrator", Resource: desired.Resource{Kind: desired.WholeAccount}}}}); err != nil {
		return false, err
	}
	took, ok := waitFor(ctx, func() bool { return !hasMember(d.prod, "mallory@evil.example") })
	if !ok {
		return false, nil
	}
	d.say("  -> removed by the daemon %.1f s later: drift corrected (see cfaccess_changes_applied_total).", took.Seconds())
	return true, nil
}

// jitExpiry shows the daemon revoke the just-in-time grant at its instant.
// It reports false if ctx is done first.
func (d *demo) jitExpiry(ctx context.Context) bool {
	d.say("\noncall@example.com holds Administrator until %s (a just-in-time grant)...", d.jitUntil.Local().Format("15:04:05"))
	if _, ok := waitFor(ctx, func() bool { return !hasMember(d.prod, "oncall@example.com") }); !ok {
		return false
	}
	d.say("  -> revoked at %s, %.1f s after its instant, with no commit.", d.env.Now().Local().Format("15:04:05"), d.env.Now().Sub(d.jitUntil).Seconds())
	return true
}

// hasMember reports whether email is a member of the account s simulates.
func hasMember(s *fake.Server, email string) bool {
	for _, m := range s.Members() {
		if m.Email == email {
			return true
		}
	}
	return false
}

// waitFor polls cond until it holds, and returns how long that took; ok is
// false if ctx is done first.
func waitFor(ctx context.Context, cond func() bool) (took time.Duration, ok bool) {
	start := time.Now()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return 0, false
		case <-t.C:
		}
	}
	return time.Since(start), true
}

// startedLog reads the daemon's JSON logs for the address of its "started"
// record, and drops them.
type startedLog struct {
	addr chan string
	once sync.Once
}

func (s *startedLog) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		var rec struct{ Msg, Listen string }
		if json.Unmarshal(line, &rec) == nil && rec.Msg == "started" {
			s.once.Do(func() { s.addr <- rec.Listen })
		}
	}
	return len(p), nil
}
