package app

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/report"
)

func newRoles(env *Env) *cobra.Command {
	cmd := &cobra.Command{Use: "roles", Short: "Inspect the roles of a live account"}
	var (
		af             accountFlags
		filter, format string
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "List the account's roles (permission groups), the names declarations inherit",
		Long: `List prints the role names of the account, as "inherits" must spell them,
and their scope: account-scoped roles apply to the whole account only
("account:*"), domain-scoped roles to zones only ("zone:<name>"; several
zones of one role become one domain group).`,
		Example: `  reconciler roles list --account-id 023e105f4ecef8ad9ca31a8372d0c353 --filter dns
  reconciler roles list --repo . --provider cloudflare-prod`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, id, err := af.connect(env)
			if err != nil {
				return err
			}
			if err := report.CheckFormat(format, []string{"text", "json"}); err != nil {
				return err
			}
			acct, err := client.ReadAccount(cmd.Context(), id, cloudflare.ReadOptions{})
			if err != nil {
				return err
			}
			type roleJSON struct {
				Name    string `json:"name"`
				Scope   string `json:"scope"`    // account, domain or unknown
				GrantOn string `json:"grant_on"` // account:*, zones, or ""
			}
			roles := []roleJSON{}
			w := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ROLE\tSCOPE\tGRANT ON")
			for _, pg := range acct.PermissionGroups {
				if !matches(filter, pg.Name) {
					continue
				}
				where, on := "unknown: Cloudflare did not say", ""
				switch pg.Scope {
				case desired.ScopeAccount:
					where, on = "account:* (all domains)", "account:*"
				case desired.ScopeDomain:
					where, on = "zones (zone:<name>)", "zones"
				}
				scope, _, _ := strings.Cut(pg.Scope.String(), "-")
				roles = append(roles, roleJSON{Name: pg.Name, Scope: cmp.Or(scope, "unknown"), GrantOn: on})
				fmt.Fprintf(w, "%s\t%s\t%s\n", report.Field(pg.Name), scope, where)
			}
			if format == "json" {
				return report.WriteJSON(env.Stdout, roles)
			}
			return w.Flush()
		},
	}
	af.register(list, env)
	list.Flags().StringVar(&filter, "filter", "", "show only names containing this text (case-insensitive)")
	list.Flags().StringVar(&format, "format", "text", "output format: text or json")
	cmd.AddCommand(list)
	return cmd
}

func matches(filter string, s ...string) bool {
	if filter == "" {
		return true
	}
	for _, x := range s {
		if strings.Contains(strings.ToLower(x), strings.ToLower(filter)) {
			return true
		}
	}
	return false
}

// memberJSON is the stable JSON form of a live member.
type memberJSON struct {
	ID        string   `json:"id"`
	Email     string   `json:"email"`
	Status    string   `json:"status"`
	TwoFactor bool     `json:"two_factor"`
	Access    []string `json:"access"`
	Legacy    bool     `json:"legacy_roles,omitempty"`
	Denies    int      `json:"deny_policies,omitempty"`
	Unknown   []string `json:"unknown_scopes,omitempty"`
	// Inherited is the access held through user groups, each "<role> on
	// <resource> (via user group <name>)".
	Inherited []string `json:"inherited,omitempty"`
}

func newMembers(env *Env) *cobra.Command {
	cmd := &cobra.Command{Use: "members", Short: "Inspect the members of a live account"}
	var (
		af             accountFlags
		filter, format string
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "List the account's members with their effective access",
		Long: `List prints every member, invited (pending) or accepted, with its effective
access as (role, resource) pairs: what cfaccess compares with the declarations.
Access held through user groups says which group.`,
		Example: `  reconciler members list --account-id 023e105f4ecef8ad9ca31a8372d0c353
  reconciler members list --repo . --provider cloudflare-prod --filter @partner --format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "text" && format != "json" {
				return fmt.Errorf("--format %q: choose text or json", format)
			}
			acct, err := af.readAccount(cmd.Context(), env)
			if err != nil {
				return err
			}
			out := []memberJSON{}
			for _, m := range acct.Members {
				mj := memberJSON{ID: m.ID, Email: m.Email, Status: m.Status, TwoFactor: m.TwoFactor, Legacy: m.Legacy, Denies: m.Denies, Unknown: m.Unknown, Access: []string{}}
				for _, a := range m.Access {
					mj.Access = append(mj.Access, a.Role+" on "+acct.Display(a.Resource).String())
				}
				for _, g := range acct.GroupsOf(m.ID) {
					for _, a := range g.Access {
						mj.Inherited = append(mj.Inherited, a.Role+" on "+acct.Display(a.Resource).String()+" (via user group "+g.Name+")")
					}
				}
				if matches(filter, slices.Concat([]string{m.Email, m.Status}, mj.Access, mj.Inherited)...) {
					out = append(out, mj)
				}
			}
			if format == "json" {
				return report.WriteJSON(env.Stdout, out)
			}
			w := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "EMAIL\tSTATUS\t2FA\tACCESS")
			for _, m := range out {
				twoFA := "no"
				if m.TwoFactor {
					twoFA = "yes"
				}
				access := strings.Join(slices.Concat(m.Access, m.Inherited), "; ")
				if m.Denies > 0 {
					access += fmt.Sprintf("; %d deny policies", m.Denies)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", report.Field(m.Email), report.Field(m.Status), twoFA, report.Field(access))
			}
			for _, nc := range acct.NotChecked {
				fmt.Fprintf(w, "# %s\n", report.Field(nc.String()))
			}
			for _, m := range acct.OrgAdmins {
				fmt.Fprintf(w, "# %s is a Super Administrator of the organization (not an account member)\n", report.Field(m.Email))
			}
			return w.Flush()
		},
	}
	af.register(list, env)
	list.Flags().StringVar(&filter, "filter", "", "show only members whose email, status or access contains this text")
	list.Flags().StringVar(&format, "format", "text", "output format: text or json")
	cmd.AddCommand(list)
	return cmd
}
