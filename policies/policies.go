package policies

import "embed"

// FS holds the built-in modules and their tests.
//
//go:embed *.rego
var FS embed.FS
