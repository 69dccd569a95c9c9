package app

import (
	"github.com/spf13/cobra"

	"github.com/cfaccess/reconciler/internal/desired"
)

func newSchema(env *Env) *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of the declaration format, for editors",
		Long: `Schema prints a JSON Schema (draft-07) of the access repository's YAML
declarations. Editors with yaml-language-server use it for completion and
checks: save it and add to the top of each file

  # yaml-language-server: $schema=./cfaccess.schema.json

The schema checks shape only; reconciler validate checks everything.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := env.Stdout.Write(desired.Schema)
			return err
		},
	}
}
