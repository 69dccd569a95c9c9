// Package review builds the access review of `reconciler review`: per
// account, who has what, from which grant, since when and until when,
// with or without 2FA, and when they last did something. New assembles it
// from what the command read — the checked repository, each account's
// live state and audit log, the grants' Git history — into one Doc, the
// stable JSON form every format shows the same facts of. It reads nothing
// and writes nothing itself; report renders.
package review
