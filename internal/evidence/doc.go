// Package evidence builds the compliance evidence of `reconciler report`:
// every change to an account's members and user groups in a period, from
// the account's audit log. A change is approved through Git only on
// evidence: Cloudflare says cfaccess's token made it, the revision it
// names is on the followed branch, and the repository at that revision
// explains it (explain.go); it is then tied to its commit and the grants
// behind it. A change made with cfaccess's token that fails a check is
// unverified, saying which; any other is out of band (who, how, and how
// long until cfaccess reverted it), whatever its User-Agent claims. It
// reads; report renders.
package evidence
