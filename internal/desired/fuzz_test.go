package desired

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/tools/txtar"
)

// FuzzLoad feeds arbitrary bytes to the loader: it must not panic or hang,
// must report every problem at the file it was given, and must return a
// repository exactly when there is no error. Seeds: example-repo and the
// golden cases. Run: go test ./internal/desired -fuzz FuzzLoad
func FuzzLoad(f *testing.F) {
	_ = filepath.WalkDir("../../example-repo", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".yaml") {
			if data, err := os.ReadFile(p); err == nil {
				f.Add(data)
			}
		}
		return nil
	})
	cases, _ := filepath.Glob("testdata/load/*.txtar")
	for _, c := range cases {
		if ar, err := txtar.ParseFile(c); err == nil {
			for _, file := range ar.Files {
				f.Add(file.Data)
			}
		}
	}
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		repo, diags := Load([]File{{Path: "f.yaml", Data: data}}, Options{Roles: testRoles})
		for _, d := range diags {
			if d.Pos.File != "f.yaml" {
				t.Fatalf("diagnostic at %q, want f.yaml: %s", d.Pos.File, d)
			}
			if d.Message == "" {
				t.Fatal("empty message")
			}
		}
		hasErr := len(diags.Errors()) > 0
		if (repo == nil) != hasErr {
			t.Fatalf("repo nil = %v with %d errors", repo == nil, len(diags.Errors()))
		}
		if repo != nil {
			repo.State(now)
			repo.NextChange(now)
		}
	})
}

// FuzzParseResource checks the resource spec parser: no panic, and what it
// accepts survives a round trip through its canonical form.
func FuzzParseResource(f *testing.F) {
	for _, s := range []string{"*", "account:*", "zone:*", "zone:Example.COM.", "zone:", "zone:a..b", ZoneKeyPrefix + "0123456789abcdef0123456789abcdef", "com.cloudflare.api.account.zone.", "zone:xn--mnchen-3ya.de"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseResource(s)
		if err != nil {
			return
		}
		again, err := ParseResource(r.String())
		if err != nil || again != r {
			t.Fatalf("%q -> %q -> %v, %v", s, r.String(), again, err)
		}
	})
}
