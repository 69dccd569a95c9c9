// Package suggest finds the closest names to a misspelt one, for
// "did you mean" hints in error messages. It does no IO.
package suggest
