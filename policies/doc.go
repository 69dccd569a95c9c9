// Package policies holds cfaccess's built-in guardrails: Rego modules
// compiled into the binary, each with its _test.rego unit tests (run by
// `opa test policies/` and by `go test ./policies/`).
package policies
