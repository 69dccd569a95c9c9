// Package examplerepo holds the example access repository, compiled into
// the binary for `reconciler demo`. The repository itself is the YAML and
// Rego files beside this one; this file only embeds them.
package examplerepo

import "embed"

// FS is the example repository.
//
//go:embed *.yaml roles grants policies
var FS embed.FS
