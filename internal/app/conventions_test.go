package app

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/cfaccess/reconciler/internal/desired"
)

// -o is --format everywhere; version and roles list speak JSON.
func TestOutputAliasAndJSON(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	code, out, errOut := e.run("version", "-o", "json")
	var v struct{ Version, Revision, Go string }
	if code != ExitOK || json.Unmarshal([]byte(out), &v) != nil || v.Go == "" {
		t.Errorf("version -o json: exit %d %q %s", code, out, errOut)
	}
	code, out, errOut = e.run("roles", "list", "--account-id", e.Fake.AccountID(), "--output", "json", "--filter", "dns")
	var roles []struct {
		Name, Scope string
		GrantOn     string `json:"grant_on"`
	}
	if code != ExitOK || json.Unmarshal([]byte(out), &roles) != nil || len(roles) == 0 {
		t.Fatalf("roles list --output json: exit %d %q %s", code, out, errOut)
	}
	for _, r := range roles {
		if r.Name == "Domain DNS" && (r.Scope != "domain" || r.GrantOn != "zones") || r.Name == "DNS" && (r.Scope != "account" || r.GrantOn != "account:*") {
			t.Errorf("role %+v", r)
		}
	}
	if code, out, _ := e.run("validate", "--repo", e.Repo, "-o", "json"); code != ExitOK || !strings.HasPrefix(strings.TrimSpace(out), "{") {
		t.Errorf("validate -o json: exit %d %q", code, out)
	}
	if code, _, errOut := e.run("version", "-o", "yaml"); code != ExitError || !strings.Contains(errOut, "yaml") {
		t.Errorf("version -o yaml: exit %d %s", code, errOut)
	}
}

// The schema published at schema/v1 (a stable URL for editors and
// SchemaStore) is the one the binary prints.
func TestPublishedSchema(t *testing.T) {
	t.Parallel()
	published, err := os.ReadFile("../../schema/v1/cfaccess.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(published, desired.Schema) {
		t.Error("schema/v1/cfaccess.schema.json differs from `reconciler schema`: copy internal/desired/schema.json there")
	}
}

// The pre-commit hook runs validate, once per commit, on declaration files.
func TestPreCommitHook(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../.pre-commit-hooks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var hooks []struct {
		ID, Name, Description, Entry, Language, Files string
		PassFilenames                                 *bool `yaml:"pass_filenames"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&hooks); err != nil {
		t.Fatal(err)
	}
	if len(hooks) != 1 || hooks[0].ID != "cfaccess-validate" || hooks[0].Entry != "reconciler validate --repo ." ||
		hooks[0].Language != "golang" || hooks[0].PassFilenames == nil || *hooks[0].PassFilenames {
		t.Errorf("hooks %+v", hooks)
	}
	if re := regexp.MustCompile(hooks[0].Files); !re.MatchString("grants/a.yaml") || !re.MatchString("policies/x.rego") || re.MatchString("README.md") {
		t.Errorf("files %q", hooks[0].Files)
	}
}

// The GitHub Action (action.yml at the root): its inputs, a composite run,
// a release download verified against checksums.txt, and the plan comment
// marked for update. actionlint (in .ci/run) checks its use.
func TestActionMetadata(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../action.yml")
	if err != nil {
		t.Fatal(err)
	}
	var action struct {
		Name, Description, Author string
		Branding                  map[string]string
		Inputs                    map[string]struct {
			Description string
			Required    bool
			Default     string
		}
		Outputs map[string]struct{ Description, Value string }
		Runs    struct {
			Using string
			Steps []map[string]any
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&action); err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"command", "path", "token", "version", "comment", "sarif"} {
		if action.Inputs[in].Description == "" {
			t.Errorf("input %s missing or undocumented", in)
		}
	}
	text := string(data)
	for _, want := range []string{"sha256sum", "-c -", "checksums.txt", "<!-- cfaccess-plan -->", "github/codeql-action/upload-sarif", "continue-on-error: true"} {
		if !strings.Contains(text, want) {
			t.Errorf("action.yml lacks %q", want)
		}
	}
	if action.Runs.Using != "composite" {
		t.Errorf("runs.using %q", action.Runs.Using)
	}
}
