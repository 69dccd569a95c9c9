// Package testkit holds what the tests of several packages share: the
// end-to-end story (a real Git repository and a fake Cloudflare account),
// an in-memory HTTP transport to a handler, and a log buffer. Tests only.
package testkit
