package leader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	coordinationclient "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// serviceAccountNamespace is where Kubernetes mounts the pod's namespace
// beside its service-account token.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// RESTConfig finds the Kubernetes API as every controller does: the
// kubeconfig files given (--kubeconfig, or KUBECONFIG's list), else the
// pod's in-cluster configuration.
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		rules := &clientcmd.ClientConfigLoadingRules{Precedence: filepath.SplitList(kubeconfig)}
		cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", kubeconfig, err)
		}
		return cfg, nil
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("--leader-elect needs the Kubernetes API: not in a pod (%w); give --kubeconfig or KUBECONFIG", err)
	}
	return cfg, nil
}

// Leases returns the Lease API's client at cfg, speaking JSON (a Lease is
// small; every API server speaks it) and with the User-Agent given.
func Leases(cfg *rest.Config, userAgent string) (coordinationclient.LeasesGetter, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.ContentType, cfg.AcceptContentTypes = "application/json", "application/json"
	cfg.UserAgent = userAgent
	cfg.WarningHandler = rest.NoWarnings{}
	return coordinationclient.NewForConfig(cfg)
}

// Namespace is the namespace of the Lease: the flag's, else the pod's own
// (POD_NAMESPACE from the downward API, or the service account's
// namespace file).
func Namespace(flag string, getenv func(string) string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if ns := getenv("POD_NAMESPACE"); ns != "" {
		return ns, nil
	}
	b, err := os.ReadFile(serviceAccountNamespace)
	if ns := strings.TrimSpace(string(b)); err == nil && ns != "" {
		return ns, nil
	}
	return "", errors.New("--leader-elect: the Lease's namespace is unknown: give --leader-elect-resource-namespace, or POD_NAMESPACE")
}

// Identity is this replica's name in the Lease: POD_NAME, else the host
// name, with a random suffix (a restarted pod is another holder).
func Identity(getenv func(string) string, suffix string) (string, error) {
	name := getenv("POD_NAME")
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return "", fmt.Errorf("--leader-elect: no POD_NAME and no host name: %w", err)
		}
		name = h
	}
	return name + "_" + suffix, nil
}
