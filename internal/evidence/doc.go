// Package evidence builds the compliance evidence of `reconciler report`:
// every change to an account's members and user groups in a period, from
// the account's audit log, each tied to the Git revision cfaccess applied
// (its commit, author and the grants behind it) or marked out of band
// (who, how, when, and how long until cfaccess reverted it). It reads;
// report renders.
package evidence
