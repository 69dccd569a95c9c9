// Package deploy holds the container build and the Kubernetes manifests;
// this test renders the kustomization and checks it.
package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// render runs kubectl's built-in kustomize on this directory.
func render(t *testing.T) [][]byte {
	t.Helper()
	out, err := exec.Command("kubectl", "kustomize", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, out)
	}
	var docs [][]byte
	for _, d := range bytes.Split(out, []byte("\n---\n")) {
		if len(bytes.TrimSpace(d)) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

// TestManifests decodes every rendered object strictly into its Kubernetes
// API type (an unknown or misplaced field fails), then checks what a
// security review asks of the Deployment.
func TestManifests(t *testing.T) {
	t.Parallel()
	var kinds []string
	var dep appsv1.Deployment
	var rule monitoringv1.PrometheusRule
	var role rbacv1.Role
	var binding rbacv1.RoleBinding
	var sa corev1.ServiceAccount
	var pdb policyv1.PodDisruptionBudget
	for _, doc := range render(t) {
		var meta struct{ Kind string }
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, meta.Kind)
		obj := objectFor(meta.Kind)
		switch meta.Kind {
		case "Deployment":
			obj = &dep
		case "PrometheusRule":
			obj = &rule
		case "Role":
			obj = &role
		case "RoleBinding":
			obj = &binding
		case "ServiceAccount":
			obj = &sa
		case "PodDisruptionBudget":
			obj = &pdb
		}
		if obj == nil {
			t.Errorf("unexpected kind %q", meta.Kind)
			continue
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Errorf("%s: %v", meta.Kind, err)
		}
	}
	slices.Sort(kinds)
	if want := []string{"Deployment", "Namespace", "NetworkPolicy", "PodDisruptionBudget", "PrometheusRule", "Role", "RoleBinding", "Service", "ServiceAccount", "ServiceMonitor"}; !slices.Equal(kinds, want) {
		t.Errorf("kinds %v, want %v", kinds, want)
	}

	spec := dep.Spec.Template.Spec
	c := spec.Containers[0]
	checks := map[string]bool{
		"two replicas":                dep.Spec.Replicas != nil && *dep.Spec.Replicas == 2,
		"leader election":             slices.Contains(c.Args, "--leader-elect") && hasEnvFrom(c, "POD_NAME", "metadata.name") && hasEnvFrom(c, "POD_NAMESPACE", "metadata.namespace"),
		"rolling, never below two":    dep.Spec.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType && dep.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() == 0,
		"replicas on other nodes":     spec.Affinity != nil && spec.Affinity.PodAntiAffinity != nil && len(spec.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) > 0 && len(spec.TopologySpreadConstraints) > 0,
		"at most one evicted":         pdb.Spec.MinAvailable != nil && pdb.Spec.MinAvailable.IntValue() == 1 && pdb.Spec.Selector != nil,
		"non-root pod":                spec.SecurityContext.RunAsNonRoot != nil && *spec.SecurityContext.RunAsNonRoot,
		"read-only root filesystem":   c.SecurityContext.ReadOnlyRootFilesystem != nil && *c.SecurityContext.ReadOnlyRootFilesystem,
		"no privilege escalation":     c.SecurityContext.AllowPrivilegeEscalation != nil && !*c.SecurityContext.AllowPrivilegeEscalation,
		"all capabilities dropped":    c.SecurityContext.Capabilities != nil && slices.Contains(c.SecurityContext.Capabilities.Drop, "ALL"),
		"liveness on /healthz":        c.LivenessProbe != nil && c.LivenessProbe.HTTPGet.Path == "/healthz",
		"readiness on /readyz":        c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet.Path == "/readyz",
		"memory limit":                !c.Resources.Limits.Memory().IsZero(),
		"resource requests":           !c.Resources.Requests.Cpu().IsZero(),
		"token for this pod only":     spec.AutomountServiceAccountToken != nil && *spec.AutomountServiceAccountToken && sa.AutomountServiceAccountToken != nil && !*sa.AutomountServiceAccountToken,
		"token from a Secret file":    slices.Contains(c.Args, "--cloudflare-token-file=/var/run/secrets/cloudflare/token") && hasSecretVolume(spec, "cfaccess-cloudflare-token"),
		"image from kustomize images": strings.HasPrefix(c.Image, "ghcr.io/cfaccess/reconciler:v"),
		"grace period over 30 s":      spec.TerminationGracePeriodSeconds != nil && *spec.TerminationGracePeriodSeconds > 30,
		"webhooks on their own port":  slices.Contains(c.Args, "--webhook-listen=:8080"),
		"no state file shared":        !slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--state-file") }) && !hasPVC(spec),
	}
	for what, ok := range checks {
		if !ok {
			t.Errorf("Deployment: %s", what)
		}
	}
	var alerts []string
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
		}
	}
	// The Role: the Lease, and only it (create cannot name it).
	var verbs []string
	for _, r := range role.Rules {
		if !slices.Equal(r.APIGroups, []string{"coordination.k8s.io"}) || !slices.Equal(r.Resources, []string{"leases"}) {
			t.Errorf("the Role grants %v on %v", r.Verbs, r.Resources)
		}
		for _, v := range r.Verbs {
			if v != "create" && !slices.Equal(r.ResourceNames, []string{"cfaccess"}) {
				t.Errorf("the Role grants %s on any lease", v)
			}
			verbs = append(verbs, v)
		}
	}
	slices.Sort(verbs)
	if !slices.Equal(verbs, []string{"create", "get", "update"}) {
		t.Errorf("the Role's verbs %v", verbs)
	}
	if binding.RoleRef.Name != role.Name || len(binding.Subjects) != 1 || binding.Subjects[0].Name != sa.Name {
		t.Errorf("the RoleBinding %+v binds %s to %+v", binding.RoleRef, role.Name, binding.Subjects)
	}
	for _, want := range []string{"CfaccessNoLeader", "CfaccessLeaderFlapping", "CfaccessBreakGlassActive", "CfaccessReconcileFailing", "CfaccessNoRecentSuccess", "CfaccessDriftPersisting", "CfaccessRevisionRefused", "CfaccessPendingInviteOld", "CfaccessNeverSucceeded", "CfaccessReconcileStalled", "CfaccessDown", "CfaccessOutOfBandChange", "CfaccessAuditLogUnavailable"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("PrometheusRule lacks %s", want)
		}
	}
}

// objectFor is the API type a rendered object of kind decodes into (nil
// for a kind the manifests should not have).
func objectFor(kind string) any {
	switch kind {
	case "Namespace":
		return &corev1.Namespace{}
	case "ServiceAccount":
		return &corev1.ServiceAccount{}
	case "Service":
		return &corev1.Service{}
	case "PersistentVolumeClaim": // the chart's, with one replica
		return &corev1.PersistentVolumeClaim{}
	case "PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "Role":
		return &rbacv1.Role{}
	case "RoleBinding":
		return &rbacv1.RoleBinding{}
	case "Deployment":
		return &appsv1.Deployment{}
	case "NetworkPolicy":
		return &networkingv1.NetworkPolicy{}
	case "ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}
	case "PrometheusRule":
		return &monitoringv1.PrometheusRule{}
	}
	return nil
}

func hasPVC(spec corev1.PodSpec) bool {
	for _, v := range spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			return true
		}
	}
	return false
}

// hasEnvFrom reports whether c sets name from the pod's field.
func hasEnvFrom(c corev1.Container, name, field string) bool {
	return slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == name && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == field
	})
}

func hasSecretVolume(spec corev1.PodSpec, name string) bool {
	for _, v := range spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == name {
			return true
		}
	}
	return false
}

// TestNetworkPolicyEgress: HTTPS, the Kubernetes API and DNS only.
func TestNetworkPolicyEgress(t *testing.T) {
	t.Parallel()
	for _, doc := range render(t) {
		if !bytes.Contains(doc, []byte("kind: NetworkPolicy")) {
			continue
		}
		var np networkingv1.NetworkPolicy
		if err := yaml.UnmarshalStrict(doc, &np); err != nil {
			t.Fatal(err)
		}
		var ports []string
		for _, e := range np.Spec.Egress {
			for _, p := range e.Ports {
				ports = append(ports, string(*p.Protocol)+"/"+p.Port.String())
			}
		}
		slices.Sort(ports)
		if want := []string{"TCP/443", "TCP/53", "TCP/6443", "UDP/53"}; !slices.Equal(ports, want) {
			t.Errorf("egress ports %v, want %v", ports, want)
		}
		if len(np.Spec.PodSelector.MatchLabels) == 0 {
			t.Error("the policy selects every pod of the namespace")
		}
		// The metrics port (with /status) is open to the monitoring
		// namespace only; the webhook port to anyone.
		for _, in := range np.Spec.Ingress {
			for _, p := range in.Ports {
				switch p.Port.IntValue() {
				case 9090:
					if len(in.From) == 0 {
						t.Error("port 9090 (metrics, /status) is open to everyone")
					}
				case 8080:
				default:
					t.Errorf("unexpected ingress port %s", p.Port.String())
				}
			}
		}
	}
}

// TestDockerfile: multi-stage, static, distroless (CA certificates, no
// shell), non-root. No Docker engine runs here to build it.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	for _, want := range []string{"FROM golang:1.26 AS build", "CGO_ENABLED=0", "FROM gcr.io/distroless/static-debian12:nonroot", "USER 65532:65532", `ENTRYPOINT ["/reconciler"]`} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

// TestAlertRules runs promtool test rules on the PrometheusRule's groups
// (deploy/alerts_test.yaml): every alert fires when docs/operating.md says,
// and not before. promtool comes from Debian's prometheus package; .ci/run
// installs it and sets CFACCESS_REQUIRE_PROMTOOL so that it is never
// skipped there.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CFACCESS_REQUIRE_PROMTOOL") != "" {
			t.Fatal("promtool not found (apt-get install prometheus)")
		}
		t.Skip("promtool not found; .ci/run installs it")
	}
	data, err := os.ReadFile("prometheusrule.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rule monitoringv1.PrometheusRule
	if err := yaml.UnmarshalStrict(data, &rule); err != nil {
		t.Fatal(err)
	}
	rules, err := yaml.Marshal(map[string]any{"groups": rule.Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tests, err := os.ReadFile("alerts_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{"rules.yaml": rules, "alerts_test.yaml": tests} {
		if err := os.WriteFile(dir+"/"+name, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(promtool, "check", "rules", "rules.yaml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	cmd = exec.Command(promtool, "test", "rules", "alerts_test.yaml")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	// Every alert has a test.
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			if !bytes.Contains(tests, []byte("alertname: "+r.Alert+"\n")) {
				t.Errorf("alert %s has no promtool test", r.Alert)
			}
		}
	}
}
