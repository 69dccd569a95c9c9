// Package reconcile plans and applies. A Planner reads each account of a
// checked repository (or reuses its last read while the audit log shows no
// change: readCache), turns the desired and the live access into diff
// terms, computes each account's plan (diff) with who made the drift it
// corrects, and evaluates the guardrails again with the live accounts.
// The Outcome is a value: apply (Planner.Apply) puts each change's result
// on its account's plan, made in the plan's order through the provider's
// writer (cloudflare.Writer) — a failed change does not stop the others,
// grants are held back while a guardrail on the live state denies, and
// each change is bounded in time. The Planner is the one writer of what
// it keeps between plans (State, the read caches).
package reconcile
