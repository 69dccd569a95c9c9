package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// The chart is rendered by the helm CLI, pinned in a module of its own
// (tools/helm: its Kubernetes libraries need not match ours) and built by
// the go command, about 75 s the first time on 2 cores.
func helmTemplate(t *testing.T, args ...string) []any {
	t.Helper()
	cmd := exec.Command("go", append([]string{"tool", "-modfile=../tools/helm/go.mod", "helm", "template", "rel", "helm/cfaccess",
		"--set", "repo.url=https://github.com/example/access.git"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", args, err, stderr.String())
	}
	var objs []any
	for _, doc := range bytes.Split(out, []byte("\n---\n")) {
		if len(bytes.TrimSpace(doc)) == 0 || bytes.Equal(bytes.TrimSpace(doc), []byte("---")) {
			continue
		}
		var meta struct{ Kind string }
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatal(err)
		}
		if meta.Kind == "" {
			continue // only comments
		}
		obj := objectFor(meta.Kind)
		if obj == nil || meta.Kind == "Namespace" {
			t.Errorf("unexpected kind %q", meta.Kind)
			continue
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Errorf("%s: %v\n%s", meta.Kind, err, doc)
		}
		objs = append(objs, obj)
	}
	return objs
}

func find[T any](objs []any) *T {
	for _, o := range objs {
		if x, ok := o.(*T); ok {
			return x
		}
	}
	return nil
}

// TestHelmChart renders the chart with its defaults and three variants,
// decodes every object strictly into its Kubernetes type, and checks the
// hardening of the kustomization holds in each.
func TestHelmChart(t *testing.T) {
	t.Parallel()
	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte(`image: {digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
cloudflare:
  accounts:
    - {env: CF_TOKEN_PROD, secret: cfaccess-prod}
extraArgs: [--reinvite-after=48h]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		name  string
		args  []string
		kinds []string
		check func(t *testing.T, dep *appsv1.Deployment, objs []any)
	}{
		{"defaults", nil, []string{"Deployment", "NetworkPolicy", "PodDisruptionBudget", "Role", "RoleBinding", "Service", "ServiceAccount"}, func(t *testing.T, dep *appsv1.Deployment, objs []any) {
			spec := dep.Spec.Template.Spec
			c := spec.Containers[0]
			if c.Image != "ghcr.io/cfaccess/reconciler:v0.1.0" || !slices.Contains(c.Args, "--webhook-listen=:8080") || slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--state-file") }) {
				t.Errorf("image %s, args %v", c.Image, c.Args)
			}
			role, binding, pdb, sa := find[rbacv1.Role](objs), find[rbacv1.RoleBinding](objs), find[policyv1.PodDisruptionBudget](objs), find[corev1.ServiceAccount](objs)
			for what, ok := range map[string]bool{
				"two replicas":             dep.Spec.Replicas != nil && *dep.Spec.Replicas == 2,
				"rolling, never below two": dep.Spec.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType && dep.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() == 0,
				"leader election":          slices.Contains(c.Args, "--leader-elect") && slices.Contains(c.Args, "--leader-elect-resource-name=rel-cfaccess") && hasEnvFrom(c, "POD_NAME", "metadata.name") && hasEnvFrom(c, "POD_NAMESPACE", "metadata.namespace"),
				"token for this pod only":  spec.AutomountServiceAccountToken != nil && *spec.AutomountServiceAccountToken && sa.AutomountServiceAccountToken != nil && !*sa.AutomountServiceAccountToken,
				"replicas on other nodes":  spec.Affinity != nil && spec.Affinity.PodAntiAffinity != nil && len(spec.TopologySpreadConstraints) == 1,
				"at most one evicted":      pdb.Spec.MinAvailable.IntValue() == 1,
				"the Lease, and only it":   len(role.Rules) == 2 && slices.Equal(role.Rules[1].ResourceNames, []string{"rel-cfaccess"}) && slices.Equal(role.Rules[1].Verbs, []string{"get", "update"}) && slices.Equal(role.Rules[0].Verbs, []string{"create"}),
				"bound to the account":     binding.RoleRef.Name == role.Name && binding.Subjects[0].Name == sa.Name,
			} {
				if !ok {
					t.Errorf("%s", what)
				}
			}
		}},
		{"one replica: monitoring, persistence, details", []string{"--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true", "--set", "persistence.enabled=true",
			"--set", "statusDetails=true", "--set", "fullReadInterval=1h", "--set", "replicaCount=1", "--set", "leaderElection.enabled=false"},
			[]string{"Deployment", "NetworkPolicy", "PersistentVolumeClaim", "PrometheusRule", "Service", "ServiceAccount", "ServiceMonitor"},
			func(t *testing.T, dep *appsv1.Deployment, objs []any) {
				c := dep.Spec.Template.Spec.Containers[0]
				if *dep.Spec.Replicas != 1 || dep.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || *dep.Spec.Template.Spec.AutomountServiceAccountToken ||
					slices.Contains(c.Args, "--leader-elect") {
					t.Errorf("one replica: %d, %s, args %v", *dep.Spec.Replicas, dep.Spec.Strategy.Type, c.Args)
				}
				for _, a := range []string{"--state-file=/var/lib/cfaccess/state.json", "--status-details", "--full-read-interval=1h"} {
					if !slices.Contains(c.Args, a) {
						t.Errorf("args %v lack %s", c.Args, a)
					}
				}
				rule := find[monitoringv1.PrometheusRule](objs)
				if rule == nil || len(rule.Spec.Groups) == 0 || len(rule.Spec.Groups[0].Rules) < 10 {
					t.Errorf("PrometheusRule %+v", rule)
				}
			}},
		{"no webhook, no network policy, dry run", []string{"--set", "webhook.enabled=false", "--set", "networkPolicy.enabled=false", "--set", "dryRun=true"},
			[]string{"Deployment", "PodDisruptionBudget", "Role", "RoleBinding", "Service", "ServiceAccount"}, func(t *testing.T, dep *appsv1.Deployment, _ []any) {
				c := dep.Spec.Template.Spec.Containers[0]
				if slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--webhook") }) || !slices.Contains(c.Args, "--dry-run") || len(c.Ports) != 1 {
					t.Errorf("args %v, ports %v", c.Args, c.Ports)
				}
			}},
		{"digest, per-account tokens, extra args", []string{"-f", values}, []string{"Deployment", "NetworkPolicy", "PodDisruptionBudget", "Role", "RoleBinding", "Service", "ServiceAccount"},
			func(t *testing.T, dep *appsv1.Deployment, _ []any) {
				c := dep.Spec.Template.Spec.Containers[0]
				if !strings.Contains(c.Image, "@sha256:") || !slices.Contains(c.Args, "--reinvite-after=48h") ||
					!slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
						return e.Name == "CF_TOKEN_PROD" && e.ValueFrom.SecretKeyRef.Name == "cfaccess-prod"
					}) {
					t.Errorf("image %s, args %v, env %v", c.Image, c.Args, c.Env)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if testing.Short() && i >= 2 {
				t.Skip("each rendering runs helm (about a second): -short renders the defaults and the fullest variant")
			}
			objs := helmTemplate(t, tc.args...)
			var kinds []string
			for _, o := range objs {
				kinds = append(kinds, strings.Split(fmtType(o), ".")[1]) // "v1.Deployment"
			}
			slices.Sort(kinds)
			if !slices.Equal(kinds, tc.kinds) {
				t.Errorf("kinds %v, want %v", kinds, tc.kinds)
			}
			dep := find[appsv1.Deployment](objs)
			if dep == nil {
				t.Fatal("no Deployment")
			}
			spec := dep.Spec.Template.Spec
			c := spec.Containers[0]
			for what, ok := range map[string]bool{
				"non-root pod":              spec.SecurityContext.RunAsNonRoot != nil && *spec.SecurityContext.RunAsNonRoot,
				"read-only root filesystem": c.SecurityContext.ReadOnlyRootFilesystem != nil && *c.SecurityContext.ReadOnlyRootFilesystem,
				"no privilege escalation":   c.SecurityContext.AllowPrivilegeEscalation != nil && !*c.SecurityContext.AllowPrivilegeEscalation,
				"all capabilities dropped":  c.SecurityContext.Capabilities != nil && slices.Contains(c.SecurityContext.Capabilities.Drop, "ALL"),
				"token from a Secret file":  slices.Contains(c.Args, "--cloudflare-token-file=/var/run/secrets/cloudflare/token") && hasSecretVolume(spec, "cfaccess-cloudflare-token"),
				"memory limit":              !c.Resources.Limits.Memory().IsZero(),
				"GOMEMLIMIT from the limit": slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "GOMEMLIMIT" }),
				"never latest":              !strings.HasSuffix(c.Image, ":latest"),
			} {
				if !ok {
					t.Errorf("Deployment: %s", what)
				}
			}
			tc.check(t, dep, objs)
		})
	}
	// "latest" is refused; so are two replicas without a Lease, and a state
	// file under leader election.
	for bad, want := range map[string]string{"leaderElection.enabled=false": "leaderElection", "persistence.enabled=true": "leaderElection", "repo.url=": "repo.url: give"} {
		cmd := exec.Command("go", "tool", "-modfile=../tools/helm/go.mod", "helm", "template", "rel", "helm/cfaccess", "--set", "repo.url=https://github.com/example/access.git", "--set", bad)
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), want) {
			t.Errorf("%v rendered: %v\n%s", bad, err, out)
		}
	}
	// "latest" is refused.
	cmd := exec.Command("go", "tool", "-modfile=../tools/helm/go.mod", "helm", "template", "rel", "helm/cfaccess", "--set", "repo.url=https://github.com/example/access.git", "--set", "image.tag=latest")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "never latest") {
		t.Errorf("image.tag=latest rendered: %v\n%s", err, out)
	}
}

// The chart's alerts are the kustomization's (deploy/prometheusrule.yaml).
func TestHelmAlertsMatch(t *testing.T) {
	t.Parallel()
	var rule monitoringv1.PrometheusRule
	data, err := os.ReadFile("prometheusrule.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, &rule); err != nil {
		t.Fatal(err)
	}
	var spec monitoringv1.PrometheusRuleSpec
	data, err = os.ReadFile("helm/cfaccess/files/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, &spec); err != nil {
		t.Fatal(err)
	}
	a, _ := yaml.Marshal(rule.Spec)
	b, _ := yaml.Marshal(spec)
	if !bytes.Equal(a, b) {
		t.Error("helm/cfaccess/files/alerts.yaml differs from prometheusrule.yaml's spec: copy it over")
	}
}

func fmtType(o any) string { return strings.TrimPrefix(reflect.TypeOf(o).String(), "*") }
