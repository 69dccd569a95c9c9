// Package server is the daemon's HTTP side: /metrics, /healthz, /readyz and
// /status (masked unless asked) from the loop's Board, and the Git hosts'
// webhooks, with limits on every phase of a request.
package server
