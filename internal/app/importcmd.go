package app

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/importer"
	"github.com/cfaccess/reconciler/internal/report"
)

func newImport(env *Env) *cobra.Command {
	var (
		af         accountFlags
		providerID string
		out        string
	)
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Write an access repository that declares a live account as it is",
		Long: `Import reads a live account and writes an access repository declaring exactly
its members: roles derived from the distinct access patterns, groups where
several members share the same roles, and grants. A plan right after shows no
changes. prune is off in the written provider: review the declarations, then
turn it on. Holders of Super Administrator and the token's owner become
protected members; members whose access cfaccess cannot express (deny
policies, other resource groups) are reported and left undeclared.

Import never writes to Cloudflare, and never overwrites a file.`,
		Example: `  CLOUDFLARE_API_TOKEN=... reconciler import --account-id 023e105f4ecef8ad9ca31a8372d0c353 --provider-id cloudflare-prod --out access/`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if af.accountID == "" {
				return errors.New("--account-id is required")
			}
			client, id, err := af.connect(env)
			if err != nil {
				return err
			}
			acct, err := client.ReadAccount(cmd.Context(), id, cloudflare.ReadOptions{AllZones: true})
			if err != nil {
				return err
			}
			owner, err := client.Owner(cmd.Context())
			if err != nil {
				return err
			}
			res := importer.Build(acct, importer.Options{ProviderID: providerID, Now: env.Now(), Owner: owner})
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			for _, f := range res.Files {
				if _, err := os.Stat(filepath.Join(out, f.Path)); err == nil {
					return fmt.Errorf("%s exists: import never overwrites; choose an empty --out", filepath.Join(out, f.Path))
				} else if !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
			for _, f := range res.Files {
				// O_EXCL: a file that appeared meanwhile is not overwritten.
				fh, err := os.OpenFile(filepath.Join(out, f.Path), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
				if err != nil {
					return err
				}
				_, werr := fh.Write(f.Data)
				if cerr := fh.Close(); werr == nil {
					werr = cerr
				}
				if werr != nil {
					return werr
				}
				fmt.Fprintf(env.Stdout, "wrote %s\n", filepath.Join(out, f.Path))
			}
			for _, p := range res.Protected {
				fmt.Fprintf(env.Stdout, "protected: %s (Super Administrator or the token's owner)\n", report.Field(p))
			}
			for _, s := range res.Skipped {
				fmt.Fprintf(env.Stdout, "not declared: %s\n", report.Field(s))
			}
			fmt.Fprintf(env.Stdout, "imported %d members of account %s (%s); next: reconciler validate --repo %s\n",
				len(acct.Members)-len(res.Skipped)-len(res.Protected), report.Field(acct.Name), acct.ID, out)
			return nil
		},
	}
	af.register(cmd, env)
	cmd.Flags().StringVar(&providerID, "provider-id", "cloudflare", "provider id to declare the account under")
	cmd.Flags().StringVar(&out, "out", ".", "directory to write the repository into (created; existing files are never overwritten)")
	return cmd
}
