// Package golden compares test output with golden files in testdata/,
// rewriting them when tests run with -update.
package golden
