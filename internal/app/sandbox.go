package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/cfaccess/reconciler/internal/atomicfile"
	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
)

func newSandbox(env *Env) *cobra.Command {
	var (
		listen, state string
		members       int
	)
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Serve two simulated Cloudflare accounts over HTTP, to try every command without an account",
		Long: `Sandbox serves the in-repo model of Cloudflare's API (the same one the tests
and the demo use) on --listen, with the demo's two accounts: drifted from
example-repo, with a protected owner, a pending invitation and a member
nobody declared. It prints the export lines every command needs; then plan,
apply, run, import, review, report, roles list and members list work
against it as against Cloudflare.

POST /_sandbox/dashboard?account=prod&email=E&role=R[&as=WHO] changes a
member as a person would in the dashboard (remove=1 removes it), so that
run has drift to correct and report something to attribute.

Nothing leaves this machine. It keeps its accounts in memory until
stopped; with --state FILE, also in FILE after every change, and starts
from FILE when it exists (--members then adds nothing).`,
		Example: `  reconciler sandbox &
  # copy the export lines it prints into your shell, then:
  reconciler plan --repo example-repo`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSandbox(cmd.Context(), env, listen, members, state)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8787", "address to serve the simulated API on")
	cmd.Flags().StringVar(&state, "state", "", "keep the accounts in this file across restarts (written after every change)")
	cmd.Flags().IntVar(&members, "members", 0, "add this many generated members to the production account (Analytics on the account), to try a large account")
	return cmd
}

// sandboxToken is the token the sandbox's accounts accept.
const sandboxToken = "demo-token"

func runSandbox(ctx context.Context, env *Env, listen string, members int, state string) error {
	if members < 0 {
		return fmt.Errorf("--members %d: give 0 or more", members)
	}
	prod, staging, err := seedDemo()
	if err != nil {
		return err
	}
	restored, err := restoreSandbox(state, prod, staging)
	if err != nil {
		return err
	}
	if restored {
		members = 0 // the state file has them already
	}
	for i := range members {
		if _, err := prod.PutMember(fake.MemberSpec{Email: fmt.Sprintf("user%05d@example.com", i),
			Access: []desired.Access{{Role: "Analytics", Resource: desired.Resource{Kind: desired.WholeAccount}}}}); err != nil {
			return err
		}
	}
	var saving sync.Mutex // one save at a time: a later one snapshots later state
	save := func() {
		saving.Lock()
		defer saving.Unlock()
		if err := saveSandbox(state, prod, staging); err != nil {
			fmt.Fprintf(env.Stderr, "sandbox: %v\n", err)
		}
	}
	save()
	accounts := map[string]*fake.Server{"prod": prod, demoProdID: prod, "staging": staging, demoStagingID: staging}
	mux := http.NewServeMux()
	api := fake.Multi(prod, staging)
	mux.HandleFunc(fake.BasePath+"/", func(w http.ResponseWriter, r *http.Request) {
		api.ServeHTTP(w, r)
		if r.Method != http.MethodGet {
			save()
		}
	})
	mux.HandleFunc("POST /_sandbox/dashboard", func(w http.ResponseWriter, r *http.Request) {
		if err := dashboardChange(accounts, r); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		save()
		fmt.Fprintln(w, "changed, as in the dashboard")
	})
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", listen, err)
	}
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(env.Stdout, `# cfaccess sandbox: two simulated accounts (prod %s, staging %s) on %s
export CLOUDFLARE_API_URL=%s%s
export CLOUDFLARE_API_TOKEN=%s
export CF_TOKEN_PROD=%s
export CF_TOKEN_STAGING=%s
# then: reconciler plan --repo example-repo    (run, apply, import, review, report work too)
# a change "in the dashboard": curl -X POST '%s/_sandbox/dashboard?account=prod&email=mallory@evil.example&role=Administrator&as=admin@example.com'
`, demoProdID, demoStagingID, base, base, fake.BasePath, sandboxToken, sandboxToken, sandboxToken, base)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// restoreSandbox restores the accounts from the state file, when there is
// one; it reports whether it did.
func restoreSandbox(path string, accounts ...*fake.Server) (bool, error) {
	if path == "" {
		return false, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("--state: %w", err)
	}
	var snaps map[string]json.RawMessage
	if err := json.Unmarshal(b, &snaps); err != nil {
		return false, fmt.Errorf("--state %s: not a sandbox's state: %w", path, err)
	}
	for _, a := range accounts {
		snap, ok := snaps[a.AccountID()]
		if !ok {
			return false, fmt.Errorf("--state %s: no account %s in it", path, a.AccountID())
		}
		if err := a.Restore(snap); err != nil {
			return false, fmt.Errorf("--state %s: %w", path, err)
		}
	}
	return true, nil
}

// saveSandbox writes the accounts to the state file (none: nothing),
// whole or not at all.
func saveSandbox(path string, accounts ...*fake.Server) error {
	if path == "" {
		return nil
	}
	snaps := map[string]json.RawMessage{}
	for _, a := range accounts {
		b, err := a.Snapshot()
		if err != nil {
			return err
		}
		snaps[a.AccountID()] = b
	}
	b, err := json.Marshal(snaps)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b)
}

// dashboardChange makes the change a request asks for, as a person in the
// dashboard: a member given a role on the whole account, or removed.
func dashboardChange(accounts map[string]*fake.Server, r *http.Request) error {
	q := r.URL.Query()
	s, ok := accounts[q.Get("account")]
	if !ok {
		return fmt.Errorf("account %q: give prod or staging", q.Get("account"))
	}
	email, err := desired.NormalizeEmail(q.Get("email"))
	if err != nil {
		return fmt.Errorf("email: %w", err)
	}
	who := q.Get("as")
	if who == "" {
		who = fake.DashboardUser
	}
	s.SetDashboardUser(who)
	if q.Get("remove") != "" {
		if !s.RemoveMember(email) {
			return fmt.Errorf("%s is not a member", email)
		}
		return nil
	}
	role := strings.TrimSpace(q.Get("role"))
	if role == "" {
		return errors.New("role: give a Cloudflare role name, such as Administrator")
	}
	_, err = s.PutMember(fake.MemberSpec{Email: email, TwoFactor: true,
		Access: []desired.Access{{Role: role, Resource: desired.Resource{Kind: desired.WholeAccount}}}})
	return err
}
