// Package app is the reconciler program: its commands, flags, output and
// exit codes. cmd/reconciler only calls Run; tests start the program
// in-process the same way.
package app
