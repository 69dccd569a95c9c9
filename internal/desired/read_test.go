package desired

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadDir(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "secret.yaml"), "groups: {g: {members: [x@example.com]}}\n")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "access/b.yaml"), "version: 1\n")
	writeFile(t, filepath.Join(dir, "access/a.yml"), "version: 1\n")
	writeFile(t, filepath.Join(dir, "access/sub/c.yaml"), "version: 1\n")
	writeFile(t, filepath.Join(dir, "access/.github/workflows/ci.yaml"), "on: push\n")
	writeFile(t, filepath.Join(dir, "access/.pre-commit-config.yaml"), "repos: []\n")
	writeFile(t, filepath.Join(dir, "access/README.md"), "# hi\n")
	writeFile(t, filepath.Join(dir, "access/policies/p.rego"), "package cfaccess.p\n")
	writeFile(t, filepath.Join(dir, "access/policies/p_test.rego"), "package cfaccess.p_test\n")
	writeFile(t, filepath.Join(dir, "access/roles/q.rego"), "package cfaccess.q\n") // not under policies/
	writeFile(t, filepath.Join(dir, "access/big.yaml"), "# "+strings.Repeat("x", MaxFileSize)+"\n")
	// Outside --path but inside the repository: read.
	writeFile(t, filepath.Join(dir, "outside.yaml"), "version: 1\n")
	for link, target := range map[string]string{
		"access/escape.yaml":   filepath.Join(outside, "secret.yaml"),
		"access/relative.yaml": "../../" + filepath.Base(outside) + "/secret.yaml",
		"access/up.yaml":       "../outside.yaml",
		"access/inside.yaml":   "sub/c.yaml",
		"access/dangling.yaml": "nowhere.yaml",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}

	src, diags, err := ReadDir(dir, "access")
	if err != nil {
		t.Fatal(err)
	}
	var gotYAML, gotRego, gotDiags []string
	for _, f := range src.YAML {
		gotYAML = append(gotYAML, f.Path)
	}
	for _, f := range src.Rego {
		gotRego = append(gotRego, f.Path)
	}
	for _, d := range diags {
		gotDiags = append(gotDiags, d.String())
	}
	if diff := cmp.Diff([]string{"access/a.yml", "access/b.yaml", "access/inside.yaml", "access/sub/c.yaml", "access/up.yaml"}, gotYAML); diff != "" {
		t.Errorf("YAML files (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"access/policies/p.rego", "access/policies/p_test.rego"}, gotRego); diff != "" {
		t.Errorf("Rego files (-want +got):\n%s", diff)
	}
	wantDiags := []string{
		"access/big.yaml: file is larger than 1048576 bytes (1 MiB): split it into several files",
		"access/dangling.yaml: symlink cannot be followed: it leads outside the repository or to nothing",
		"access/escape.yaml: symlink leads outside the repository: it is not read",
		"access/relative.yaml: symlink leads outside the repository: it is not read",
	}
	if diff := cmp.Diff(wantDiags, gotDiags); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s", diff)
	}
}

// TestReadDirUpWithinRoot checks that a symlink leaving --path but staying
// in the repository is read: the repository root is the boundary.
func TestReadDirUpWithinRoot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "shared.yaml"), "version: 1\n")
	if err := os.MkdirAll(filepath.Join(dir, "access"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../shared.yaml", filepath.Join(dir, "access/shared.yaml")); err != nil {
		t.Fatal(err)
	}
	src, diags, err := ReadDir(dir, "access")
	if err != nil || len(diags) != 0 || len(src.YAML) != 1 {
		t.Fatalf("ReadDir = %v, %v, %v; want one file", src, diags, err)
	}
}

func TestReadDirErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "file.yaml"), "version: 1\n")
	for _, tc := range []struct{ name, dir, sub, want string }{
		{"missing repository", filepath.Join(dir, "nope"), "", "open repository: "},
		{"missing path", dir, "nope", `read repository path "nope": `},
		{"path is a file", dir, "file.yaml", `repository path "file.yaml" is not a directory`},
		{"path escapes", dir, "../x", `--path "../x" must be a relative path inside the repository`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ReadDir(tc.dir, tc.sub)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ReadDir(%q, %q) error = %v, want it to contain %q", tc.dir, tc.sub, err, tc.want)
			}
		})
	}
}

func TestLoadLimits(t *testing.T) {
	t.Parallel()
	bomb := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		bomb += n + ": &" + n + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n"
		prev = n
	}
	bomb += "groups: {g: {members: *i}}\n"
	tests := []struct {
		name string
		data string
		want string
	}{
		{"alias bomb", bomb, "bomb.yaml:10: YAML aliases expand to more than 10000 nodes in this file: write the values out, or use groups"},
		{"over 1 MiB", "version: 1\n" + strings.Repeat("#", MaxFileSize), "bomb.yaml: file is larger than 1048576 bytes (1 MiB): split it into several files"},
		{"deep nesting", strings.Repeat("[", 20000), "bomb.yaml: invalid YAML: exceeded max depth of 10000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			repo, diags := Load([]File{{Path: "bomb.yaml", Data: []byte(tc.data)}}, Options{})
			if repo != nil {
				t.Fatal("Load accepted the file")
			}
			last := diags[len(diags)-1].String()
			if last != tc.want {
				t.Errorf("last diagnostic = %q, want %q", last, tc.want)
			}
		})
	}
}

// A submodule inside the declarations is an error naming it: its files
// are not in the checkout, and would be silently missing.
func TestSubmoduleIsAnError(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{
		".gitmodules":      {Data: []byte("[submodule \"shared\"]\n\tpath = shared\n\turl = https://example.com/shared.git\n[submodule \"tools\"]\n\tpath = tools/lint\n")},
		"access/a.yaml":    {Data: []byte("version: 1\n")},
		"shared/.keep":     {Data: nil},
		"tools/lint/.keep": {Data: nil},
	}
	_, diags, err := ReadFS(fsys, ".")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`.gitmodules:2: submodule "shared" is inside the declarations, and submodules are not read: copy its files into the repository, or move it out of --path`,
		`.gitmodules:5: submodule "tools/lint" is inside the declarations, and submodules are not read: copy its files into the repository, or move it out of --path`,
	}
	var got []string
	for _, d := range diags.Errors() {
		got = append(got, d.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q", got)
	}
	if _, diags, _ := ReadFS(fsys, "access"); len(diags) != 0 {
		t.Errorf("--path access (no submodule inside): %v", diags)
	}
}
