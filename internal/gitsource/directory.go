package gitsource

import (
	"context"

	"github.com/cfaccess/reconciler/internal/desired"
)

// Directory is a local directory of declarations, read as it is on disk
// (uncommitted edits included): it has no history to verify, walk back or
// compare, so every Fetch is a new revision. Its revision names the commit
// checked out when the directory is inside a Git repository, for display.
type Directory struct {
	Path string // the directory
	Sub  string // the sub-directory holding the declarations ("" for Path)
}

// Fetch returns the revision checked out, if any.
func (d Directory) Fetch(context.Context) (Revision, error) {
	rev, _ := Head(d.Path)
	return rev, nil
}

// Read reads the declarations as they are now.
func (d Directory) Read(context.Context, Revision) (*desired.Source, desired.Diagnostics, error) {
	return desired.ReadDir(d.Path, d.Sub)
}

// Verify accepts everything: a directory has no signatures.
func (Directory) Verify(string) error { return nil }

// Descends is always true: a directory has no history to rewrite.
func (Directory) Descends(string, string) (bool, error) { return true, nil }

// FirstParents is the revision alone: there is no history to walk back.
func (Directory) FirstParents(sha string, _ int) ([]Revision, error) {
	return []Revision{{SHA: sha}}, nil
}

// Key is "": a directory is not followed history, so nothing about it is
// remembered between runs and it is read again at every reconcile.
func (Directory) Key() string { return "" }
