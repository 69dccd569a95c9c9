// Package diff compares the desired members of an account with its live
// members and computes the plan that makes them equal: invites, updates
// and removals, in the order they are applied. It is pure: no IO, no
// logging, no clock; the same plan value serves dry runs, renderers and
// apply.
//
// It compares effective access — sets of (Cloudflare role, resource) —
// never the shape of policy lists; emails case-insensitively. It never
// touches protected members or the token's owner, honours prune, and
// refuses a plan that removes more members than allowed.
package diff
