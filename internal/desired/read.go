package desired

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// Source is what an access repository holds: declaration files and
// repo-local guardrails, in lexical path order.
type Source struct {
	// Root is the directory read, relative to the repository root ("." for
	// the root itself).
	Root string
	YAML []File
	// Rego holds the *.rego files under policies/, tests included.
	Rego []File
}

// ReadDir reads the access repository rooted at dir/sub. Paths in the result
// and in diagnostics are relative to dir, so they match the paths a Git host
// shows. Symlinks are followed only within dir; a file over MaxFileSize is
// reported, not read. The error is for a repository that cannot be read at
// all; problems with single files are diagnostics.
func ReadDir(dir, sub string) (*Source, Diagnostics, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("open repository: %w", err)
	}
	defer root.Close()
	return ReadFS(root.FS(), sub)
}

// ReadFS reads an access repository from fsys, starting at sub ("" or "."
// for the root). See ReadDir.
func ReadFS(fsys fs.FS, sub string) (*Source, Diagnostics, error) {
	sub = path.Clean(strings.Trim(sub, "/"))
	if sub == "" {
		sub = "."
	}
	if !fs.ValidPath(sub) {
		return nil, nil, fmt.Errorf("--path %q must be a relative path inside the repository", sub)
	}
	info, err := fs.Stat(fsys, sub)
	if err != nil {
		return nil, nil, fmt.Errorf("read repository path %q: %w", sub, err)
	}
	if !info.IsDir() {
		return nil, nil, fmt.Errorf("repository path %q is not a directory", sub)
	}
	src := &Source{Root: sub}
	diags := submodules(fsys, sub)
	policyDir := path.Join(sub, "policies")
	err = fs.WalkDir(fsys, sub, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if p != sub && strings.HasPrefix(name, ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		isYAML := strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")
		isRego := strings.HasSuffix(name, ".rego") && strings.HasPrefix(p, policyDir+"/")
		if !isYAML && !isRego {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			target, ok := followSymlink(fsys, p, &diags)
			if !ok {
				return nil
			}
			if target.IsDir() {
				return nil
			}
		} else if !d.Type().IsRegular() {
			return nil
		}
		data, ok := readLimited(fsys, p, &diags)
		if !ok {
			return nil
		}
		f := File{Path: p, Data: data}
		if isYAML {
			src.YAML = append(src.YAML, f)
		} else {
			src.Rego = append(src.Rego, f)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read repository: %w", err)
	}
	return src, diags, nil
}

// followSymlink stats a symlink's target, refusing one that leaves the tree.
func followSymlink(fsys fs.FS, p string, diags *Diagnostics) (fs.FileInfo, bool) {
	outside := Diagnostic{Pos: Pos{File: p}, Severity: Error, Message: "symlink leads outside the repository: it is not read"}
	if target, err := fs.ReadLink(fsys, p); err == nil {
		joined := path.Join(path.Dir(p), target)
		if path.IsAbs(target) || joined == ".." || strings.HasPrefix(joined, "../") {
			*diags = append(*diags, outside)
			return nil, false
		}
	}
	info, err := fs.Stat(fsys, p)
	if err != nil {
		outside.Message = "symlink cannot be followed: it leads outside the repository or to nothing"
		*diags = append(*diags, outside)
		return nil, false
	}
	return info, true
}

func readLimited(fsys fs.FS, p string, diags *Diagnostics) ([]byte, bool) {
	tooBig := Diagnostic{Pos: Pos{File: p}, Severity: Error,
		Message: fmt.Sprintf("file is larger than %d bytes (1 MiB): split it into several files", MaxFileSize)}
	f, err := fsys.Open(p)
	if err != nil {
		*diags = append(*diags, Diagnostic{Pos: Pos{File: p}, Severity: Error, Message: "cannot read: " + errText(err)})
		return nil, false
	}
	defer f.Close()
	if info, err := f.Stat(); err == nil && info.Size() > MaxFileSize {
		*diags = append(*diags, tooBig)
		return nil, false
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		*diags = append(*diags, Diagnostic{Pos: Pos{File: p}, Severity: Error, Message: "cannot read: " + errText(err)})
		return nil, false
	}
	if len(data) > MaxFileSize {
		*diags = append(*diags, tooBig)
		return nil, false
	}
	return data, true
}

// errText drops the path from a *fs.PathError, which the diagnostic already
// names.
func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// submodules reports the Git submodules (.gitmodules at the repository
// root) inside the tree read: their files are not in the repository's
// checkout, so declarations there would be silently missing.
func submodules(fsys fs.FS, sub string) Diagnostics {
	data, err := fs.ReadFile(fsys, ".gitmodules")
	if err != nil {
		return nil
	}
	var out Diagnostics
	for i, line := range strings.Split(string(data), "\n") {
		key, value, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || strings.TrimSpace(key) != "path" {
			continue
		}
		p := path.Clean(strings.TrimSpace(value))
		if sub == "." || p == sub || strings.HasPrefix(p, sub+"/") || strings.HasPrefix(sub, p+"/") {
			out = append(out, Diagnostic{Pos: Pos{File: ".gitmodules", Line: i + 1}, Severity: Error,
				Message: fmt.Sprintf("submodule %q is inside the declarations, and submodules are not read: copy its files into the repository, or move it out of --path", p)})
		}
	}
	return out
}
