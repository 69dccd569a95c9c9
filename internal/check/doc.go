// Package check loads an access repository and runs its guardrails. A
// revision is compiled once (Compile: the declarations loaded, the Rego
// compiled, the repository's policy tests run) and evaluated as often as
// needed (Compiled.At: the guardrails on the repository at an instant).
// Findings flattens what a person must read: diagnostics, failed policy
// tests and violations. It reads no account and writes nothing.
package check
