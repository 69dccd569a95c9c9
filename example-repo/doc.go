// Package examplerepo holds the example access repository, compiled into
// the binary for `reconciler demo`. The repository itself is the YAML and
// Rego files beside this one; this file only embeds them.
package examplerepo
