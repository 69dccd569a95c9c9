package app

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/cfaccess/reconciler/internal/cloudflare/fake"
	"github.com/cfaccess/reconciler/internal/desired"
)

// TestMain lets testscript run this test binary as the reconciler command.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"reconciler": func() { // as cmd/reconciler: SIGTERM stops it gracefully
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			code := Run(ctx, Env{
				Args: os.Args[1:], Getenv: os.Getenv,
				Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
			})
			stop()
			os.Exit(code)
		},
	})
}

// TestScripts runs the CLI stories in testdata/script: the real command on
// fixture repositories, checking output and exit codes.
func TestScripts(t *testing.T) {
	t.Parallel()
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			// example-repo, for stories that start from it.
			env.Setenv("EXAMPLE_REPO", mustAbs("../../example-repo"))
			env.Values["fake"] = &fakeHolder{}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"fakecf": cmdFakeCF,
			// exits N cmd args...: run cmd and check its exit code is N.
			"exits": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) < 2 {
					ts.Fatalf("usage: exits N command [args...]")
				}
				err := ts.Exec(args[1], args[2:]...)
				got := 0
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					got = ee.ExitCode()
				} else if err != nil {
					ts.Fatalf("%v", err)
				}
				if strconv.Itoa(got) != args[0] {
					ts.Fatalf("exit code %d, want %s", got, args[0])
				}
			},
		},
		UpdateScripts: os.Getenv("UPDATE_SCRIPTS") == "1",
	})
}

func mustAbs(p string) string {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return wd + "/" + p
}

// fakeHolder keeps a script's fake Cloudflare account.
type fakeHolder struct{ s *fake.Server }

// cmdFakeCF drives an in-process fake Cloudflare account over real HTTP:
//
//	fakecf start                          start it; sets CLOUDFLARE_API_URL,
//	                                      CLOUDFLARE_API_TOKEN and ACCOUNT
//	fakecf member EMAIL [pending] ROLE@RESOURCE...
//	                                      add a member out of band
func cmdFakeCF(ts *testscript.TestScript, neg bool, args []string) {
	h := ts.Value("fake").(*fakeHolder)
	if neg || len(args) == 0 {
		ts.Fatalf("usage: fakecf start | fakecf member EMAIL [pending] ROLE@RESOURCE...")
	}
	switch args[0] {
	case "start":
		h.s = fake.New(fake.Options{Token: "script-token-0123456789", AccountName: "Script account"})
		srv := httptest.NewServer(h.s)
		ts.Defer(srv.Close)
		ts.Setenv("CLOUDFLARE_API_URL", srv.URL+fake.BasePath)
		ts.Setenv("CLOUDFLARE_API_TOKEN", "script-token-0123456789")
		ts.Setenv("ACCOUNT", h.s.AccountID())
	case "member":
		if h.s == nil || len(args) < 2 {
			ts.Fatalf("fakecf member: start first, and name an email")
		}
		spec := fake.MemberSpec{Email: args[1]}
		for _, a := range args[2:] {
			if a == "pending" {
				spec.Pending = true
				continue
			}
			role, res, ok := strings.Cut(a, "@")
			r, err := desired.ParseResource(res)
			if !ok || err != nil {
				ts.Fatalf("fakecf member: %q is not ROLE@RESOURCE", a)
			}
			spec.Access = append(spec.Access, desired.Access{Role: strings.ReplaceAll(role, "_", " "), Resource: r})
		}
		if _, err := h.s.PutMember(spec); err != nil {
			ts.Fatalf("fakecf member: %v", err)
		}
	default:
		ts.Fatalf("fakecf: unknown subcommand %q", args[0])
	}
}
