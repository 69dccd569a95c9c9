package metrics

import (
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics holds every metric of the daemon.
type Metrics struct {
	ReconcileTotal       *prometheus.CounterVec
	ReconcileDuration    *prometheus.HistogramVec
	LastSuccess          *prometheus.GaugeVec
	DriftMembers         *prometheus.GaugeVec
	ChangesApplied       *prometheus.CounterVec
	PolicyViolations     *prometheus.GaugeVec
	SourceRevision       *prometheus.GaugeVec
	SourceFetch          *prometheus.CounterVec
	CloudflareRequests   *prometheus.CounterVec
	CloudflareDuration   *prometheus.HistogramVec
	GrantsExpiring       *prometheus.GaugeVec
	PendingInvites       *prometheus.GaugeVec
	OldestPendingInvite  *prometheus.GaugeVec
	BreakerTripped       *prometheus.GaugeVec
	BuildInfo            *prometheus.GaugeVec
	WebhookDeliveries    *prometheus.CounterVec
	RevisionsRefused     *prometheus.CounterVec
	ReconcileStalls      prometheus.Counter
	RevisionRefused      prometheus.Gauge
	Leader               *prometheus.GaugeVec
	BreakGlassActive     *prometheus.GaugeVec
	NotificationsDropped *prometheus.CounterVec
	LeaderChanges        prometheus.Counter
	FailingSince         *prometheus.GaugeVec
	OutOfBandChanges     *prometheus.CounterVec
	LiveReads            *prometheus.CounterVec
}

// ForgetState drops the gauges that describe the accounts and the
// revision as this replica last saw them: a replica that stops leading
// (run --leader-elect) reports nothing it no longer watches, so that no
// alert fires on a standby's stale view. Counters stay.
func (m *Metrics) ForgetState() {
	for _, g := range []*prometheus.GaugeVec{m.LastSuccess, m.DriftMembers, m.PolicyViolations, m.SourceRevision, m.GrantsExpiring,
		m.PendingInvites, m.OldestPendingInvite, m.BreakerTripped, m.FailingSince, m.BreakGlassActive} {
		g.Reset()
	}
	m.RevisionRefused.Set(0)
}

// New registers the metrics, and the Go and process collectors, on reg.
func New(reg prometheus.Registerer, version string) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		ReconcileTotal: f.NewCounterVec(prometheus.CounterOpts{Name: "cfaccess_reconcile_total",
			Help: "Reconciles per account by result: success, error, denied."}, []string{"account", "result"}),
		ReconcileDuration: f.NewHistogramVec(prometheus.HistogramOpts{Name: "cfaccess_reconcile_duration_seconds",
			Help: "Duration of one account's reconcile.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 12)}, []string{"account"}),
		LastSuccess: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cfaccess_last_success_timestamp_seconds",
			Help: "Unix time of the last successful reconcile of the account."}, []string{"account"}),
		DriftMembers: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cfaccess_drift_members",
			Help: "Members differing from the declarations at the last plan, by kind: invite, update, remove, unmanaged."}, []string{"account", "kind"}),
		ChangesApplied: f.NewCounterVec(prometheus.CounterOpts{Name: "cfaccess_changes_applied_total",
			Help: "Changes applied to Cloudflare by action and result (success, error)."}, []string{"account", "action", "result"}),
		PolicyViolations: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cfaccess_policy_violations",
			Help: "Guardrail findings at the last evaluation by severity (deny, warn); account \"repository\" for repository-wide ones."}, []string{"account", "severity"}),
		SourceRevision: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cfaccess_source_revision_info",
			Help: "1 for the revision being enforced."}, []string{"revision"}),
		SourceFetch: f.NewCounterVec(prometheus.CounterOpts{Name: "cfaccess_source_fetch_total",
			Help: "Fetches of the access repository by result: success, error, invalid, denied, unverified."}, []string{"result"}),
		CloudflareRequests: f.NewCounterVec(prometheus.CounterOpts{Name: "cfaccess_cloudflare_requests_total",
			Help: "Requests to the Cloudflare API, retries included."}, []string{"method", "endpoint", "code"}),
		CloudflareDuration: f.NewHistogramVec(prometheus.HistogramOpts{Name: "cfaccess_cloudflare_request_duration_seconds",
			Help: "Duration of requests to the Cloudflare API.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 12)}, []string{"endpoint"}),
		GrantsExpiring: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cfaccess_grants_expiring",
			Help: "Active grants of the account expiring within 1h, 24h or 7d."}, []string{"account", "within"}),
		PendingInvites: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cfaccess_pending_invites",
			Help: "Members invited and not yet accepted."}, []string{"account"}),
		OldestPendingInvite: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cfaccess_oldest_pending_invite_age_seconds",
			Help: "Age of the oldest pending invitation: from its \"Add Member\" entry in the audit log, else since this process (or --state-file) first saw it."}, []string{"account"}),
		BreakerTripped: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cfaccess_removal_breaker_tripped",
			Help: "1 while the account's plan is refused by the mass-removal breaker: a person must look."}, []string{"account"}),
		BuildInfo: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cfaccess_build_info",
			Help: "1, labelled with the build."}, []string{"version", "goversion"}),
		WebhookDeliveries: f.NewCounterVec(prometheus.CounterOpts{Name: "cfaccess_webhook_deliveries_total",
			Help: "Webhook deliveries by host (github, gitlab) and result (accepted, unauthorized, replayed, too_large, ignored, busy)."}, []string{"host", "result"}),
		RevisionsRefused: f.NewCounterVec(prometheus.CounterOpts{Name: "cfaccess_revisions_refused_total",
			Help: "Revisions not applied, by result: invalid (including guardrails that failed or ran out of time, and plans refused for the repository's sake), denied, unverified, non_fast_forward."}, []string{"result"}),
		BreakGlassActive: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cfaccess_break_glass_active",
			Help: "Break-glass grants active on the account: applied without review, to be reviewed after use."}, []string{"account"}),
		NotificationsDropped: f.NewCounterVec(prometheus.CounterOpts{Name: "cfaccess_notifications_dropped_total",
			Help: "Notifications not delivered: queue (the queue was full), failed (every try failed)."}, []string{"reason"}),
		Leader: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cfaccess_leader",
			Help: "1 while this replica holds the leader lease (run --leader-elect), 0 while it stands by; by the replica's identity."}, []string{"identity"}),
		LeaderChanges: f.NewCounter(prometheus.CounterOpts{Name: "cfaccess_leader_changes_total",
			Help: "Changes of leader this replica has seen (run --leader-elect)."}),
		ReconcileStalls: f.NewCounter(prometheus.CounterOpts{Name: "cfaccess_reconcile_stalls_total",
			Help: "Reconciles cancelled for running longer than --reconcile-timeout."}),
		RevisionRefused: f.NewGauge(prometheus.GaugeOpts{Name: "cfaccess_revision_refused",
			Help: "1 while the newest revision of the repository is refused (the last good one is enforced)."}),
		FailingSince: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cfaccess_account_failing_since_timestamp_seconds",
			Help: "Unix time of the first of the account's reconciles failing in a row; 0 while they succeed."}, []string{"account"}),
		OutOfBandChanges: f.NewCounterVec(prometheus.CounterOpts{Name: "cfaccess_out_of_band_changes_total",
			Help: "Changes to members and user groups made outside cfaccess, from the account's audit log, by the actor's type (user, account, cloudflare_admin, system) and context (dash, api_token, api_key, oauth)."}, []string{"account", "actor_type", "context"}),
		LiveReads: f.NewCounterVec(prometheus.CounterOpts{Name: "cfaccess_live_reads_total",
			Help: "How each reconcile had the account's live state: read full, reused (the audit log showed no change) or partial (the members the log names read again), with the reason of a full read (first, changes, applied, interval, scope, audit_log_unavailable, disabled)."}, []string{"account", "read", "reason"}),
	}
	// Counters born at zero: increase() sees the first event.
	for _, r := range []string{"invalid", "denied", "unverified", "non_fast_forward"} {
		m.RevisionsRefused.WithLabelValues(r)
	}
	for _, r := range []string{"success", "error", "invalid", "denied", "unverified"} {
		m.SourceFetch.WithLabelValues(r)
	}
	m.BuildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveRequest records one Cloudflare request (the adapter's Observe).
func (m *Metrics) ObserveRequest(method, endpoint, code string, d time.Duration) {
	m.CloudflareRequests.WithLabelValues(method, endpoint, code).Inc()
	m.CloudflareDuration.WithLabelValues(endpoint).Observe(d.Seconds())
}

// Bool is 1 or 0.
func Bool(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
