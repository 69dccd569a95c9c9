// Package importer turns a live Cloudflare account into an access
// repository that declares exactly what the account has, so that adopting
// an account starts from a plan with no changes. It is pure: the caller
// reads the account and writes the files.
package importer
