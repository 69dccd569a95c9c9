package examplerepo

import "embed"

// FS is the example repository.
//
//go:embed *.yaml roles grants policies
var FS embed.FS
