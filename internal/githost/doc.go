// Package githost talks to the Git host's API (GitHub, through go-github):
// it opens the pull request of an access request, and reads which pull
// request brought a commit to the branch and who approved it, for the
// evidence. It decides nothing: request and report do.
package githost
