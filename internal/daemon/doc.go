// Package daemon is the reconciler's loop: it runs reconcile again and
// again (RunOnce, Run) on triggers, the interval and grant instants, with
// backoff. Each reconcile selects the revision (fetch, vet a new one:
// signature, load, policy tests, guardrails — compiled once per revision),
// trials the candidate (guardrails at now, a plan), accepts or refuses it
// (the last good revision stays enforced), and enforces the revision kept
// (reconcile.Planner.Apply, or a dry run); then it publishes the result:
// the status board, the metrics, the logs and the state file. It declares
// what it needs of its source (Source); time and jitter are injected.
package daemon
