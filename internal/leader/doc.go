// Package leader elects the one replica that writes to Cloudflare (run
// --leader-elect), on a Kubernetes Lease with client-go's leaderelection,
// as cert-manager and Flux do. The leader runs a term of the caller's
// work (the reconcile loop) while it holds the Lease; a standby waits.
//
// Two writers never overlap. A standby takes the Lease only a lease
// duration after it last saw it renewed; the leader sends writes only
// until its last renewal plus the renew deadline (Elector.WritesUntil, the
// fence the Cloudflare client checks before each write), steps down once
// the renew deadline passes, and gives the Lease up — released at once on
// a graceful stop — only after its term's work has returned.
//
// The Lease also carries the revisions the leader applied (an annotation
// only the holder writes), so that the next leader refuses a rewritten
// history as the last one would have.
package leader
