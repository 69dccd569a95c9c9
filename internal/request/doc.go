// Package request makes an access request the GitOps way (reconciler
// request): one grant added to the access repository in the file and style
// it already uses (Add, no IO), committed with the user's own git on a
// branch of its own — or, for break-glass, on the followed branch — pushed,
// and proposed as a pull request (githost).
// Checking the result is the caller's: the same checks as validate.
package request
