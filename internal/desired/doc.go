// Package desired turns an access repository (YAML declarations of
// providers, roles, groups and grants) into a validated model, and computes
// from it the desired state of each Cloudflare account at a given instant.
//
// Every loaded object and every diagnostic carries the file and line it came
// from. Parsing and state computation are pure; the only IO is in read.go,
// which reads a directory tree with the repository's limits enforced
// (file size, symlinks leaving the tree). The package never logs, never
// touches the network and never reads credentials.
package desired
