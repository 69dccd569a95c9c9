package app

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cfaccess/reconciler/internal/daemon"
	"github.com/cfaccess/reconciler/internal/gitsource"
	"github.com/cfaccess/reconciler/internal/report"
)

func newStatus(env *Env) *cobra.Command {
	var addr, format string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a running daemon's status: who has access, drift, expiries, recent changes",
		Long: `Status reads a running daemon's /status (with its members) and prints the
view of its status page (GET / on --listen) in the terminal: health, the
revision enforced or refused, and per account who has which access and from
which grant, pending invitations, the next expiries, the drift corrected and
who made it, and the recent changes. Emails show only when the daemon runs
with --status-details.`,
		Example: `  reconciler status --addr http://127.0.0.1:9090
  kubectl -n cfaccess port-forward svc/cfaccess 9090 & reconciler status`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := report.CheckFormat(format, []string{"text", "json"}); err != nil {
				return err
			}
			st, raw, err := fetchStatus(cmd.Context(), env, addr)
			if err != nil {
				return err
			}
			if format == "json" {
				_, err := env.Stdout.Write(raw)
				return err
			}
			return statusText(env.Stdout, st)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", envOr(env, "CFACCESS_STATUS_ADDR", "http://127.0.0.1:9090"), "the daemon's --listen address (env CFACCESS_STATUS_ADDR)")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	return cmd
}

func fetchStatus(ctx context.Context, env *Env, addr string) (daemon.Status, []byte, error) {
	var st daemon.Status
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(addr, "/")+"/status?members=true", nil)
	if err != nil {
		return st, nil, fmt.Errorf("--addr %q: %w", addr, err)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	res, err := client.Do(req)
	if err != nil {
		return st, nil, fmt.Errorf("read the daemon's status at %s: %w (is it running, and is --addr its --listen?)", addr, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 256<<20))
	if err != nil {
		return st, nil, err
	}
	if res.StatusCode != http.StatusOK {
		return st, nil, fmt.Errorf("read the daemon's status at %s: %s", addr, res.Status)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, nil, fmt.Errorf("%s/status is not a cfaccess status: %w", addr, err)
	}
	return st, raw, nil
}

func statusText(w io.Writer, st daemon.Status) error {
	when, v := report.Instant, report.Field
	health := "not ready"
	if st.Ready {
		health = "ready"
	}
	if st.DryRun {
		health += ", dry run"
	}
	fmt.Fprintf(w, "Health: %s; last reconcile %s, next %s\n", health, when(st.LastReconcile), when(st.NextReconcile))
	if r := st.Replica; r != nil {
		if r.Leading {
			fmt.Fprintf(w, "Leader: this replica, %s\n", v(r.Identity))
		} else {
			fmt.Fprintf(w, "Standby (%s): the leader is %s; this replica writes nothing, and what follows is from when it last led\n",
				v(r.Identity), v(cmp.Or(r.Leader, "not known yet")))
		}
	}
	if r := st.Revision; r != nil {
		fmt.Fprintf(w, "Enforcing %s %s\n", v(gitsource.Short(r.SHA)), v(r.Subject))
	} else {
		fmt.Fprintln(w, "Enforcing no revision yet: none has passed its checks and been applied since the daemon started")
	}
	if b := st.BadRevision; b != nil && b.Revision != nil {
		fmt.Fprintf(w, "Refused %s (%s)\n", v(gitsource.Short(b.Revision.SHA)), v(string(b.Result)))
	}
	if len(st.Recent) > 0 {
		fmt.Fprintln(w, "\nRecent changes (applied by this daemon since it started, newest first; reconciler report has everyone's):")
		for _, c := range st.Recent {
			fmt.Fprintf(w, "  %s %s %s %s%s: %s", when(c.At), v(c.Account), v(c.Action), v(c.Email), v(c.Group), v(c.Result))
			if c.DriftActor != "" {
				fmt.Fprintf(w, " (drift by %s, %s)", v(c.DriftActor), v(c.DriftContext))
			}
			fmt.Fprintln(w)
		}
	}
	for _, a := range st.Accounts {
		fmt.Fprintf(w, "\n%s %s (%s): %s", v(a.Account), v(a.Name), v(a.AccountID), v(a.Result))
		if a.Error != "" {
			fmt.Fprintf(w, ": %s", v(a.Error))
		}
		if a.FailingSince != nil {
			fmt.Fprintf(w, "; failing since %s", when(*a.FailingSince))
		}
		if p := a.Plan; p != nil {
			fmt.Fprintf(w, "; drift %d to invite, %d to update, %d to remove", p.Invite, p.Update, p.Remove)
		}
		if r := a.Read; r != nil {
			fmt.Fprintf(w, "; read %s", v(string(r.Read)))
		}
		fmt.Fprintln(w)
		for _, d := range a.Drift {
			fmt.Fprintf(w, "  drift: %s %s%s — %s by %s (%s) at %s\n", v(d.Change), v(d.Email), v(d.Group), v(d.Action), v(d.Actor), v(d.Context), when(d.At))
		}
		if len(a.Members) > 0 {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  MEMBER\tSTATUS\tACCESS\tFROM")
			for _, m := range a.Members {
				status := m.Status
				if m.PendingSince != nil {
					status += " since " + m.PendingSince.Format("2006-01-02")
				}
				from := strings.Join(m.Grants, ", ")
				switch {
				case m.Protected && from == "":
					from = "protected: never changed by cfaccess"
				case m.Protected:
					from += " (protected)"
				case from == "":
					from = "not declared"
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", v(m.Email), v(status), v(strings.Join(m.Access, ", ")), v(from))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if a.MembersOmitted > 0 {
				fmt.Fprintf(w, "  … %d more members\n", a.MembersOmitted)
			}
		}
		for _, x := range a.Expiring {
			fmt.Fprintf(w, "  expires %s: %s %s (%s)\n", when(x.Expires), v(x.Email), v(x.Access), v(x.Source))
		}
		for _, u := range a.CredentialsElsewhere {
			fmt.Fprintf(w, "  ! made with cfaccess's own credentials by someone else: %s %s by %s from %s (%s) at %s\n",
				v(u.Action), v(u.Subject), v(u.Actor), v(u.IP), v(u.UserAgent), when(u.At))
		}
	}
	return nil
}
