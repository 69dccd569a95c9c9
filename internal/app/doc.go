// Package app is the reconciler program's commands and their flags: it
// turns flags into the options of reconcile, report and server, and
// errors into exit codes. cmd/reconciler only calls Run; tests start the
// program in-process the same way.
package app
