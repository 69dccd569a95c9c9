package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/doctor"
	"github.com/cfaccess/reconciler/internal/gitsource"
	"github.com/cfaccess/reconciler/internal/report"
)

func newDoctor(env *Env) *cobra.Command {
	var (
		rf        repoFlags
		cf        cloudflareFlags
		provider  string
		accountID string
		record    string
		format    string
	)
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check, reading only, that each declared account fits cfaccess before the first apply",
		Long: `Doctor checks the repository and each account it declares, and reports
each check as ✓ (fine), ! (worth knowing) or ✗ (in the way), with the fix:

  credentials         the token verifies, is active, and when it expires
  account             the account answers, and under which name
  members             every member readable, with the shape cfaccess expects
  permission groups   each with its scope (meta.scopes)
  role catalogue      the account's roles against this release's: roles it
                      does not know, roles the account lacks, scopes that differ
  declarations        the roles and zones declared exist on the account
  resource groups, user groups, organization members, audit log
  rate limit          the budget left in Cloudflare's window
  clock               this machine's clock against Cloudflare's Date

It sends GET requests only (its transport refuses anything else before it
leaves the process), so it is safe against production: run it before the
first apply. Whether the token may write members is the one thing no read
can tell; the first apply reads back every write.

--record DIR (empty or new) writes every exchange as a sanitized fixture:
every email (in any spelling) and IP address, and every name but roles',
zones' and resource groups' (people, tokens, organizations, the account,
user groups), replaced by placeholders, the same one for the same value;
ids kept; no header of a request and no token. Attach it to a bug report
when doctor finds a mismatch.

Exit codes: 0 when no check is ✗, 1 otherwise.`,
		Example: `  reconciler doctor --repo ./access
  reconciler doctor --repo ./access --provider cloudflare-prod --record ./doctor-recording
  reconciler doctor -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := report.CheckFormat(format, []string{"text", "json"}); err != nil {
				return err
			}
			if rf.now != "" {
				return errors.New("--now is not used by doctor: it checks the accounts, the token and the clock as they are")
			}
			if accountID != "" && provider != "" {
				return errors.New("give --account-id, or --repo with --provider, not both")
			}
			res, err := runDoctor(cmd.Context(), env, &rf, &cf, doctorScope{provider: provider, accountID: accountID}, record)
			if err != nil {
				return err
			}
			if format == "json" {
				err = report.WriteJSON(env.Stdout, res)
			} else {
				err = doctorText(env.Stdout, res)
			}
			if err != nil {
				return err
			}
			if doctor.Failed(res.Checks) {
				return exitCode(ExitError)
			}
			return nil
		},
	}
	rf.register(cmd, env)
	cf.register(cmd, env)
	cmd.Flags().StringVar(&provider, "provider", "", "check this provider's account only")
	cmd.Flags().StringVar(&accountID, "account-id", "", "check this account, with CLOUDFLARE_API_TOKEN, without a repository (before import)")
	cmd.Flags().StringVar(&record, "record", "", "write every exchange with Cloudflare, sanitized, into this folder")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	return cmd
}

// doctorResult is what doctor found.
type doctorResult struct {
	Checks []doctor.Finding `json:"checks"`
	// Requests counts the requests sent, Methods their methods: GET only.
	Requests int      `json:"requests"`
	Methods  []string `json:"methods"`
	// Recording is the folder the exchanges were written to ("" for none).
	Recording string `json:"recording,omitempty"`
}

// doctorScope is what doctor checks: the accounts of the repository (or
// of one provider of it), or one account by id without a repository.
type doctorScope struct{ provider, accountID string }

func runDoctor(ctx context.Context, env *Env, rf *repoFlags, cf *cloudflareFlags, scope doctorScope, record string) (doctorResult, error) {
	res := doctorResult{Checks: []doctor.Finding{}, Methods: []string{}}
	now, err := rf.instant(env)
	if err != nil {
		return res, err
	}
	repo := &desired.Repo{Providers: map[string]*desired.Provider{scope.accountID: {ID: scope.accountID, Enabled: true, AccountID: scope.accountID}}}
	ids := []string{scope.accountID}
	if scope.accountID == "" {
		var finding doctor.Finding
		if repo, finding, err = doctorRepo(ctx, rf, now); err != nil {
			return res, err
		}
		res.Checks = append(res.Checks, finding)
		if repo == nil {
			return res, nil
		}
		if ids, err = repo.EnabledProviders(scope.provider); err != nil {
			return res, err
		}
	}
	base, err := url.Parse(cf.apiURL)
	if err != nil {
		return res, fmt.Errorf("--cloudflare-api-url %q: %w", cf.apiURL, err)
	}
	probe := &doctor.Probe{Next: env.Transport, Base: base.Path, Now: env.Now}
	clients, err := cf.clients(env)
	if err != nil {
		return res, err
	}
	clients.Transport = probe
	declared := repo // whose roles and zones must exist
	if scope.accountID != "" {
		declared = nil
	}
	var secrets []string
	for _, id := range ids {
		pv := repo.Providers[id]
		client, creds, err := clients.For(pv.APITokenEnv, "", nil)
		secrets = append(secrets, creds.Token, creds.APIKey)
		res.Checks = append(res.Checks, doctor.CheckAccount(ctx, doctor.Target{Provider: id, AccountID: pv.AccountID, Name: pv.Name,
			OrganizationID: pv.OrganizationID, Client: client, ClientErr: err, Repo: declared}, now)...)
	}
	xs := probe.Exchanges()
	res.Checks = append(res.Checks, doctor.CheckTraffic(xs)...)
	if refused := probe.Refused(); len(refused) > 0 {
		res.Checks = append(res.Checks, doctor.Finding{Check: "read only", Mark: doctor.Fail,
			Detail: "doctor tried to send " + strings.Join(refused, ", ") + " (refused, unsent)", Fix: "a bug in cfaccess: please report it"})
	}
	res.Requests = len(xs)
	seen := map[string]bool{}
	for _, x := range xs {
		if !seen[x.Method] {
			seen[x.Method] = true
			res.Methods = append(res.Methods, x.Method)
		}
	}
	if record != "" {
		if err := doctor.Record(record, xs, secrets...); err != nil {
			return res, err
		}
		res.Recording = record
	}
	return res, nil
}

// doctorRepo checks the repository as validate does, and returns its
// declarations (nil when they cannot even be read for their accounts).
func doctorRepo(ctx context.Context, rf *repoFlags, now time.Time) (*desired.Repo, doctor.Finding, error) {
	src, diags, rev, cleanup, err := rf.read(ctx)
	defer cleanup()
	if err != nil {
		return nil, doctor.Finding{}, err
	}
	at := "the working tree"
	if rev.SHA != "" {
		at = gitsource.Short(rev.SHA)
	}
	c, err := check.Check(ctx, src, diags, now, rf.checks(true))
	if err != nil {
		return nil, doctor.Finding{}, err
	}
	f := doctor.Finding{Check: "declarations", Mark: doctor.OK}
	switch errs, _, denies := check.Count(c.Findings()); {
	case errs > 0 || denies > 0:
		var msgs []string
		for _, x := range c.Findings() {
			if x.Severity == "error" || x.Severity == "deny" {
				msgs = append(msgs, strings.TrimPrefix(x.Source+": ", ": ")+x.Message)
			}
		}
		f.Mark, f.Fix = doctor.Fail, "run reconciler validate, and correct what it reports"
		f.Detail = fmt.Sprintf("%d errors and %d denials at %s, first: %s", errs, denies, at, msgs[0])
	default:
		f.Detail = fmt.Sprintf("valid at %s: %d files, %d providers, %d grants", at, c.Files, len(c.Repo.Providers), len(c.Repo.Grants))
	}
	if c.Repo != nil {
		return c.Repo, f, nil
	}
	repo, err := lookupRepo(src, diags, "")
	if err != nil {
		return nil, f, nil // the accounts cannot be known: the finding says why
	}
	return repo, f, nil
}

func doctorText(w io.Writer, res doctorResult) error {
	v := report.Field
	group := ""
	fails, warns := 0, 0
	for _, f := range res.Checks {
		head := v(f.Account)
		switch {
		case head != "":
		case f.Check == "declarations":
			head = "Repository"
		default:
			head = "Traffic"
		}
		if head != group {
			group = head
			fmt.Fprintln(w, head)
		}
		fmt.Fprintf(w, "  %s %-20s %s\n", f.Mark.Symbol(), f.Check, v(f.Detail))
		if f.Fix != "" {
			fmt.Fprintf(w, "      fix: %s\n", v(f.Fix))
		}
		switch f.Mark {
		case doctor.Fail:
			fails++
		case doctor.Warn:
			warns++
		}
	}
	fmt.Fprintf(w, "\n%d ✗, %d !; %d requests to Cloudflare", fails, warns, res.Requests)
	if len(res.Methods) > 0 {
		fmt.Fprintf(w, ", all %s", strings.Join(res.Methods, ", "))
	}
	fmt.Fprintln(w, ".")
	if res.Recording != "" {
		fmt.Fprintf(w, "Recorded, sanitized, in %s: attach it to a bug report.\n", v(res.Recording))
	}
	return nil
}
