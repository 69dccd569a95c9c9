// Command benchdriver measures whole reconciles, end to end: it builds the
// reconciler, serves a simulated account of each size with the in-repo fake
// (in this process, so the reconciler's own memory is measured alone),
// and runs the reconciler as a child process twice — once on an account
// that has drifted (apply), once in the steady state (apply with nothing to
// do: the daemon's common case). It prints a Markdown table.
//
//	go run ./internal/benchdriver                      # 1,000, 10,000 and 50,000 members
//	go run ./internal/benchdriver -sizes 10000 -latency 20ms
package main
