package app

import (
	"crypto/rand"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"

	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/daemon"
	"github.com/cfaccess/reconciler/internal/leader"
	"github.com/cfaccess/reconciler/internal/metrics"
)

// electFlags are run's leader-election flags, kube-controller-manager's.
type electFlags struct {
	enabled                                   bool
	leaseDuration, renewDeadline, retryPeriod time.Duration
	name, namespace                           string
	kubeconfig                                string
}

func (f *electFlags) register(fl *pflag.FlagSet, env *Env) {
	fl.BoolVar(&f.enabled, "leader-elect", false, "run as one of several replicas: only the holder of a Kubernetes Lease reconciles and writes, the others stand by (see docs/operating.md)")
	fl.DurationVar(&f.leaseDuration, "leader-elect-lease-duration", 15*time.Second, "how long a standby waits, from its last sight of a renewal, before it takes the lease (whole seconds)")
	fl.DurationVar(&f.renewDeadline, "leader-elect-renew-deadline", 10*time.Second, "how long the leader tries to renew before it stops writing and steps down; less than the lease duration")
	fl.DurationVar(&f.retryPeriod, "leader-elect-retry-period", 2*time.Second, "time between tries to take or renew the lease")
	fl.StringVar(&f.name, "leader-elect-resource-name", "cfaccess", "name of the Lease")
	fl.StringVar(&f.namespace, "leader-elect-resource-namespace", "", "namespace of the Lease (default: the pod's own, from POD_NAMESPACE or its service account)")
	fl.StringVar(&f.kubeconfig, "kubeconfig", envOr(env, "KUBECONFIG", ""), "kubeconfig file(s) of the Kubernetes API for --leader-elect (default: the pod's in-cluster configuration) (env KUBECONFIG)")
}

// elector wires the leader election: the Lease API found as controllers
// find it, this replica's identity, what a change of role updates (the
// board, the metrics, the log), and poke for a standby's request.
func (f *electFlags) elector(env *Env, log *slog.Logger, version string, board *daemon.Board, m *metrics.Metrics, poke func(),
	notifyLeader func(identity, leader string)) (*leader.Elector, error) {
	cfg, err := leader.RESTConfig(f.kubeconfig)
	if err != nil {
		return nil, err
	}
	if env.KubeTransport != nil {
		cfg.Transport, cfg.TLSClientConfig = env.KubeTransport, rest.TLSClientConfig{}
	}
	ns, err := leader.Namespace(f.namespace, env.Getenv)
	if err != nil {
		return nil, err
	}
	id, err := leader.Identity(env.Getenv, strings.ToLower(rand.Text()[:6]))
	if err != nil {
		return nil, err
	}
	leases, err := leader.Leases(cfg, cloudflare.UserAgentPrefix+versionOr(version)+" (leader election "+id+")")
	if err != nil {
		return nil, err
	}
	board.SetReplica(daemon.ReplicaStatus{Identity: id})
	m.Leader.WithLabelValues(id).Set(0)
	changes := 0 // Observe is called under the elector's lock
	return leader.New(leader.Config{Leases: leases, Namespace: ns, Name: f.name, ID: id, Log: log, Now: env.Now,
		LeaseDuration: f.leaseDuration, RenewDeadline: f.renewDeadline, RetryPeriod: f.retryPeriod, OnRequest: poke,
		Observe: func(r leader.Role) {
			board.SetReplica(daemon.ReplicaStatus{Identity: id, Leading: r.Leading, Leader: r.Leader})
			v := 0.0
			if r.Leading {
				v = 1
			}
			m.Leader.WithLabelValues(id).Set(v)
			if r.Changed > changes {
				m.LeaderChanges.Add(float64(r.Changed - changes))
				notifyLeader(id, r.Leader)
			}
			changes = r.Changed
		}})
}

// ready is /readyz under leader election: the leader is ready after its
// term's first successful reconcile, a standby while the Lease API
// answers it (it can take over).
func (f *electFlags) ready(el *leader.Elector, board *daemon.Board) func() error {
	return func() error {
		if el.Role().Leading {
			if !board.Ready() {
				return errors.New("leading: no successful reconcile yet in this term")
			}
			return nil
		}
		if !el.InContact() {
			return errors.New("standby: the Kubernetes API has not answered for a lease duration; this replica cannot take over")
		}
		return nil
	}
}

// versionOr is the version for a User-Agent ("dev" when unknown).
func versionOr(v string) string {
	if v == "" {
		return "dev"
	}
	return v
}
