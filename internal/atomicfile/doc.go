// Package atomicfile writes a file whole or not at all: into a temporary
// file of the same folder, renamed over the path, so that a reader (or a
// restart after a crash) sees the old content or the new, never a part.
package atomicfile
