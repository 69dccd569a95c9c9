package examplerepo

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestGitHubWorkflow parses the workflow and checks what it promises:
// validate with SARIF, a plan comment with a read-only token on pull
// requests (not waiting for validate: a refused pull request still gets
// its plan), apply on push only when enabled — each a step of the action.
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
				Uses string            `yaml:"uses"`
				With map[string]string `yaml:"with"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	data, err := os.ReadFile(".github/workflows/cfaccess.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &wf); err != nil {
		t.Fatal(err)
	}
	if _, ok := wf.On["pull_request"]; !ok {
		t.Error("does not run on pull requests")
	}
	action := func(job string) map[string]string {
		for _, s := range wf.Jobs[job].Steps {
			if strings.HasPrefix(s.Uses, "cfaccess/reconciler@") {
				return s.With
			}
		}
		t.Errorf("job %s does not use the cfaccess action", job)
		return nil
	}
	if w := action("validate"); w["command"] != "validate" || w["sarif"] != "true" {
		t.Errorf("validate: %v", w)
	}
	if w := action("plan"); w["command"] != "plan" || w["comment"] != "true" {
		t.Errorf("plan: %v", w)
	}
	if w := action("apply"); w["command"] != "apply" {
		t.Errorf("apply: %v", w)
	}
	if wf.Jobs["plan"].Needs != nil {
		t.Error("plan waits for validate: a refused pull request would get no plan")
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

// TestGitLabCI: the example includes cfaccess's template, whose jobs
// validate into the Code Quality widget, plan without waiting for
// validate, and apply once at a time.
func TestGitLabCI(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(".gitlab-ci.yml")
	if err != nil {
		t.Fatal(err)
	}
	var example struct {
		Include []map[string]string `yaml:"include"`
	}
	if err := yaml.Unmarshal(data, &example); err != nil {
		t.Fatal(err)
	}
	if len(example.Include) != 1 || !strings.HasSuffix(example.Include[0]["remote"], "/ci/gitlab/cfaccess.gitlab-ci.yml") {
		t.Errorf("the example does not include the template: %v", example.Include)
	}
	tmpl, err := os.ReadFile("../ci/gitlab/cfaccess.gitlab-ci.yml")
	if err != nil {
		t.Fatal(err)
	}
	var ci map[string]any
	if err := yaml.Unmarshal(tmpl, &ci); err != nil {
		t.Fatal(err)
	}
	for _, job := range []string{"cfaccess-validate", "cfaccess-plan", "cfaccess-apply"} {
		j, ok := ci[job].(map[string]any)
		if !ok {
			t.Fatalf("no job %s", job)
		}
		if _, ok := j["script"]; !ok {
			t.Errorf("job %s has no script", job)
		}
	}
	if needs, ok := ci["cfaccess-plan"].(map[string]any)["needs"].([]any); !ok || len(needs) != 0 {
		t.Error("the plan job waits for validate")
	}
	text := string(tmpl)
	for _, want := range []string{"reconciler validate --repo \"$CFACCESS_PATH\" --format codequality", "codequality: gl-code-quality-report.json",
		"reconciler plan --repo \"$CFACCESS_PATH\" --format markdown --detailed-exitcode", "<!-- cfaccess-plan -->", "CF_TOKEN_PROD_READONLY", "resource_group: cfaccess-apply"} {
		if !strings.Contains(text, want) {
			t.Errorf("the template lacks %q", want)
		}
	}
}

// TestGitLabNoteFoundByAuthor runs the plan job's note script, as GitLab
// would, against a fake GitLab API: the note it updates is the one its
// own token's user wrote with the marker, never someone else's that
// starts with the marker too; with none of its own, it posts a new one.
func TestGitLabNoteFoundByAuthor(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gojq, as the job does")
	}
	t.Parallel()
	tmpl, err := os.ReadFile("../ci/gitlab/cfaccess.gitlab-ci.yml")
	if err != nil {
		t.Fatal(err)
	}
	var ci struct {
		Plan struct {
			Script []string `yaml:"script"`
		} `yaml:"cfaccess-plan"`
	}
	if err := yaml.Unmarshal(tmpl, &ci); err != nil {
		t.Fatal(err)
	}
	script := ""
	for _, s := range ci.Plan.Script {
		if strings.Contains(s, "/notes") {
			script = s
		}
	}
	if script == "" {
		t.Fatal("no note script in cfaccess-plan")
	}
	for _, tc := range []struct {
		name  string
		notes string
		want  string
	}{
		{"ours after a forged one", `[{"id": 10, "author": {"id": 9}, "body": "<!-- cfaccess-plan -->\nforged"},
			{"id": 11, "author": {"id": 7}, "body": "<!-- cfaccess-plan -->\nours"}]`, "PUT /api/v4/projects/1/merge_requests/2/notes/11"},
		{"only a forged one", `[{"id": 10, "author": {"id": 9}, "body": "<!-- cfaccess-plan -->\nforged"}]`, "POST /api/v4/projects/1/merge_requests/2/notes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var writes []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("PRIVATE-TOKEN") != "glpat-test" {
					http.Error(w, "unauthorized", http.StatusUnauthorized)
					return
				}
				switch {
				case r.Method == "GET" && r.URL.Path == "/api/v4/user":
					fmt.Fprint(w, `{"id": 7, "username": "cfaccess-bot"}`)
				case r.Method == "GET" && strings.HasSuffix(r.URL.Path, "/notes"):
					if r.URL.Query().Get("page") == "1" {
						fmt.Fprint(w, tc.notes)
					} else {
						fmt.Fprint(w, "[]")
					}
				default:
					mu.Lock()
					writes = append(writes, r.Method+" "+r.URL.Path)
					mu.Unlock()
					fmt.Fprint(w, `{"id": 12}`)
				}
			}))
			defer srv.Close()
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "plan.md"), []byte("<!-- cfaccess-plan -->\n### cfaccess plan: no changes\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("bash", "-euc", script)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "CI_API_V4_URL="+srv.URL+"/api/v4", "CI_PROJECT_ID=1", "CI_MERGE_REQUEST_IID=2", "GITLAB_API_TOKEN=glpat-test")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("the script: %v\n%s", err, out)
			}
			if len(writes) != 1 || writes[0] != tc.want {
				t.Errorf("writes %v, want %s", writes, tc.want)
			}
		})
	}
}
