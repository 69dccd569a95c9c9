// Package reconcile is the pipeline and the loop. Check loads a repository
// and runs its guardrails; a Planner reads and plans every account (diff)
// and Apply applies each plan through the Cloudflare adapter — removals,
// then updates, then invites, one failed change not stopping the others.
// Loop runs that again and again (RunOnce, Run): triggers, the interval,
// grant instants, backoff, refused revisions, the state file, and the
// status and metrics of each reconcile. It declares what it needs of its
// sources and accounts (Source, Account); time and jitter are injected.
package reconcile
