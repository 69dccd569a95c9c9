package examplerepo

import (
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestGitHubWorkflow parses the workflow and checks what it promises:
// validate with SARIF upload, a plan comment with a read-only token on pull
// requests, apply on push only when enabled.
func TestGitHubWorkflow(t *testing.T) {
	t.Parallel()
	var wf struct {
		On   map[string]any `yaml:"on"`
		Jobs map[string]struct {
			If          string            `yaml:"if"`
			Needs       any               `yaml:"needs"`
			Permissions map[string]string `yaml:"permissions"`
			Env         map[string]string `yaml:"env"`
			Steps       []struct {
				Uses string         `yaml:"uses"`
				Run  string         `yaml:"run"`
				With map[string]any `yaml:"with"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	data, err := os.ReadFile(".github/workflows/cfaccess.yml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(false)
	if err := dec.Decode(&wf); err != nil {
		t.Fatal(err)
	}
	if _, ok := wf.On["pull_request"]; !ok {
		t.Error("does not run on pull requests")
	}
	steps := func(job string) string {
		var b strings.Builder
		for _, s := range wf.Jobs[job].Steps {
			b.WriteString(s.Uses + "\n" + s.Run + "\n")
			if script, ok := s.With["script"].(string); ok {
				b.WriteString(script + "\n")
			}
		}
		return b.String()
	}
	for job, wants := range map[string][]string{
		"validate": {"reconciler validate --format sarif", "github/codeql-action/upload-sarif"},
		"plan":     {"reconciler plan --format markdown --detailed-exitcode", "<!-- cfaccess-plan -->", "updateComment"},
		"apply":    {"reconciler apply"},
	} {
		for _, want := range wants {
			if !strings.Contains(steps(job), want) {
				t.Errorf("job %s lacks %q", job, want)
			}
		}
	}
	if wf.Jobs["validate"].Permissions["security-events"] != "write" {
		t.Error("validate cannot upload SARIF")
	}
	if wf.Jobs["plan"].Permissions["pull-requests"] != "write" || !strings.Contains(wf.Jobs["plan"].Env["CF_TOKEN_PROD"], "READONLY") {
		t.Error("plan must comment with a read-only Cloudflare token")
	}
	if !strings.Contains(wf.Jobs["apply"].If, "push") || !strings.Contains(wf.Jobs["apply"].If, "CFACCESS_APPLY_IN_CI") {
		t.Errorf("apply runs when %q", wf.Jobs["apply"].If)
	}
}

func TestGitLabCI(t *testing.T) {
	t.Parallel()
	var ci map[string]any
	data, err := os.ReadFile(".gitlab-ci.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &ci); err != nil {
		t.Fatal(err)
	}
	for _, job := range []string{"validate", "plan", "apply"} {
		j, ok := ci[job].(map[string]any)
		if !ok {
			t.Fatalf("no job %s", job)
		}
		if _, ok := j["script"]; !ok {
			t.Errorf("job %s has no script", job)
		}
	}
	text := string(data)
	for _, want := range []string{"reconciler validate --format sarif", "reconciler plan --format markdown --detailed-exitcode", "<!-- cfaccess-plan -->", "CF_TOKEN_PROD_READONLY", "resource_group: cfaccess-apply"} {
		if !strings.Contains(text, want) {
			t.Errorf(".gitlab-ci.yml lacks %q", want)
		}
	}
}
