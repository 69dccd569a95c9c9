package desired

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// jsonValue converts a YAML node to the value JSON would give, as
// yaml-language-server sees it: scalars typed by their YAML tag.
func jsonValue(t *testing.T, n *yaml.Node) any {
	switch n.Kind {
	case yaml.DocumentNode:
		return jsonValue(t, n.Content[0])
	case yaml.AliasNode:
		return jsonValue(t, n.Alias)
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = jsonValue(t, n.Content[i+1])
		}
		return m
	case yaml.SequenceNode:
		var out []any
		for _, c := range n.Content {
			out = append(out, jsonValue(t, c))
		}
		return out
	}
	switch n.Tag {
	case "!!null":
		return nil
	case "!!bool":
		return n.Value == "true"
	case "!!int":
		v, err := strconv.Atoi(n.Value)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	return n.Value
}

// TestSchemaAcceptsExampleRepo validates every document of example-repo
// against the JSON Schema that `reconciler schema` prints.
func TestSchemaAcceptsExampleRepo(t *testing.T) {
	t.Parallel()
	schema := compileSchema(t)
	n := 0
	err := filepath.WalkDir("../../example-repo", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var doc yaml.Node
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return err
			}
			n++
			if err := schema.Validate(jsonValue(t, &doc)); err != nil {
				t.Errorf("%s: %v", p, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 8 {
		t.Errorf("validated %d documents, want example-repo's (8 or more)", n)
	}
}

// TestSchemaRejects checks that the schema catches the mistakes editors
// should underline.
func TestSchemaRejects(t *testing.T) {
	t.Parallel()
	schema := compileSchema(t)
	for _, doc := range []string{
		"roles: {dns: {providers: [p], inherits: [DNS], resource: {allow: ['*']}}}",
		"providers: {p: {provider: cloudflare, config: {account_id: 023e105f4ecef8ad9ca31a8372d0c353, api_token: x}}}",
		"grants: [{users: [a@example.com], roles: [r], expires: tomorrow}]",
		"grants: [{roles: [r]}]",
		"roles: {r: {providers: [p], inherits: [DNS], resources: {allow: [example.com]}}}",
		"roles: {r: {providers: [p], inherits: [Domain DNS], resources: {allow: ['zone:*']}}}",
		"version: 2",
	} {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(doc), &n); err != nil {
			t.Fatal(err)
		}
		if err := schema.Validate(jsonValue(t, &n)); err == nil {
			t.Errorf("schema accepted %s", doc)
		}
	}
}

// TestSchemaKeysMatchLoader keeps the schema and the loader in step: each
// object of the schema lists exactly the keys the loader accepts.
func TestSchemaKeysMatchLoader(t *testing.T) {
	t.Parallel()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema))
	if err != nil {
		t.Fatal(err)
	}
	root := doc.(map[string]any)
	defs := root["definitions"].(map[string]any)
	props := func(obj any) []string {
		var keys []string
		for k := range obj.(map[string]any)["properties"].(map[string]any) {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return keys
	}
	prop := func(obj any, key string) any {
		return obj.(map[string]any)["properties"].(map[string]any)[key]
	}
	schemaKeys := map[string][]string{
		"document":  props(root),
		"provider":  props(defs["provider"]),
		"config":    props(prop(defs["provider"], "config")),
		"reconcile": props(prop(defs["provider"], "reconcile")),
		"role":      props(defs["role"]),
		"resources": props(prop(defs["role"], "resources")),
		"group":     props(defs["group"]),
		"grant":     props(defs["grant"]),
	}
	loaderKeys := KnownKeys()
	for k, v := range loaderKeys {
		v = slices.Clone(v)
		sort.Strings(v)
		loaderKeys[k] = v
	}
	if diff := cmp.Diff(loaderKeys, schemaKeys); diff != "" {
		t.Errorf("schema keys differ from the loader's (-loader +schema):\n%s", diff)
	}
}
