package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/daemon"
	"github.com/cfaccess/reconciler/internal/gitsource"
	"github.com/cfaccess/reconciler/internal/leader"
	"github.com/cfaccess/reconciler/internal/metrics"
	"github.com/cfaccess/reconciler/internal/notify"
	"github.com/cfaccess/reconciler/internal/reconcile"
	"github.com/cfaccess/reconciler/internal/report"
	"github.com/cfaccess/reconciler/internal/server"
)

// runFlags are the daemon's flags: plan's, and the loop's.
type runFlags struct {
	planFlags
	interval            time.Duration
	listen              string
	webhookListen       string
	statusDetails       bool
	statusHosts         []string
	webhookSecretFile   string
	dryRun              bool
	logFormat           string
	gitTokenFile        string
	gitSSHKeyFile       string
	gitKnownHosts       string
	verifySignatures    bool
	trustedKeys         string
	allowNonFastForward bool
	debounce            time.Duration
	triggerGap          time.Duration
	reconcileTimeout    time.Duration
	logLevel            string
	auditLog            bool
	fullReadInterval    time.Duration
	auditDelay          time.Duration
	elect               electFlags
	notifyURLs          []string
	notifySlackURL      string
	notifySecretFile    string
	notifyDetails       bool
}

func newRun(env *Env) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Reconcile continuously: drift correction, on-time expiry, metrics",
		Long: `Run keeps the accounts equal to the repository. It reconciles every --interval
(with jitter), when a Git host webhook announces a push, when a watched
directory changes, and at the next not_before or expires instant of any
grant. Triggers coalesce; one reconcile runs at a time; failures back off.

A revision that fails to load, fails its policy tests, is denied by a
guardrail or (with --verify-signatures) is not signed by a trusted key is not
applied: the last good revision stays enforced — drift correction and expiry
go on — and the bad one is reported in logs, metrics and /status. An account
whose plan trips the mass-removal breaker is not applied until a person acts.

HTTP on --listen: /metrics, /healthz, /readyz (after the first successful
reconcile), /status (emails masked unless --status-details), and with
--webhook-secret-file POST /hooks/github (X-Hub-Signature-256) and
POST /hooks/gitlab (X-Gitlab-Token) — on --webhook-listen instead when
given, so that only the webhooks face the Git host.`,
		Example: `  reconciler run --repo https://github.com/example/access.git --ref main \
    --cloudflare-token-file /var/run/secrets/cloudflare/token \
    --webhook-secret-file /var/run/secrets/webhook/secret`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Flags shared with plan that the daemon has no use for: an
			// accepted and ignored flag would mislead.
			for name, why := range map[string]string{
				"now":    "the daemon always evaluates at the current time",
				"format": "the daemon reports in its logs, /status and /metrics",
				"output": "the daemon reports in its logs, /status and /metrics (--output and -o are --format)",
			} {
				if cmd.Flags().Changed(name) {
					return fmt.Errorf("--%s is not used by run: %s", name, why)
				}
			}
			d, err := f.service(env)
			if err != nil {
				return err
			}
			return d.run(cmd.Context())
		},
	}
	f.register(cmd, env)
	return cmd
}

// register adds run's flags to cmd.
func (f *runFlags) register(cmd *cobra.Command, env *Env) {
	f.planFlags.register(cmd, env)
	fl := cmd.Flags()
	_ = fl.MarkHidden("now")
	_ = fl.MarkHidden("format")
	fl.DurationVar(&f.interval, "interval", envDuration(env, "CFACCESS_INTERVAL", 5*time.Minute), "time between reconciles, ±10% jitter (env CFACCESS_INTERVAL)")
	fl.StringVar(&f.listen, "listen", envOr(env, "CFACCESS_LISTEN", ":9090"), "address of the HTTP server: metrics, health, status, and webhooks unless --webhook-listen (env CFACCESS_LISTEN)")
	fl.StringVar(&f.webhookListen, "webhook-listen", envOr(env, "CFACCESS_WEBHOOK_LISTEN", ""), "address of a separate server for /hooks/* only, the one port to expose to the Git host; metrics, health and status then stay on --listen (env CFACCESS_WEBHOOK_LISTEN)")
	fl.BoolVar(&f.statusDetails, "status-details", false, "show emails, commit authors and subjects in /status (default: masked, as anyone who can reach --listen can read it)")
	fl.StringSliceVar(&f.statusHosts, "status-host", envList(env, "CFACCESS_STATUS_HOSTS"), "host names the status page and /status answer to, besides IP addresses and localhost (a web page cannot read them through a name it points here); repeat or comma-separate (env CFACCESS_STATUS_HOSTS)")
	fl.StringVar(&f.webhookSecretFile, "webhook-secret-file", envOr(env, "CFACCESS_WEBHOOK_SECRET_FILE", ""), "file holding the webhook secret; enables /hooks/github and /hooks/gitlab (env CFACCESS_WEBHOOK_SECRET_FILE)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "plan and report, never write to Cloudflare")
	fl.StringVar(&f.logFormat, "log-format", envOr(env, "CFACCESS_LOG_FORMAT", "json"), "log format: json or text (env CFACCESS_LOG_FORMAT)")
	fl.StringVar(&f.gitTokenFile, "git-token-file", envOr(env, "CFACCESS_GIT_TOKEN_FILE", ""), "file holding an HTTPS token for --repo, re-read at every fetch (env CFACCESS_GIT_TOKEN_FILE)")
	fl.StringVar(&f.gitSSHKeyFile, "git-ssh-key-file", envOr(env, "CFACCESS_GIT_SSH_KEY_FILE", ""), "SSH private key for ssh:// and git@ URLs (env CFACCESS_GIT_SSH_KEY_FILE)")
	fl.StringVar(&f.gitKnownHosts, "git-known-hosts", envOr(env, "CFACCESS_GIT_KNOWN_HOSTS", ""), "known_hosts file for SSH (default ~/.ssh/known_hosts)")
	fl.BoolVar(&f.verifySignatures, "verify-signatures", false, "apply only commits signed by a key of --trusted-keys")
	fl.BoolVar(&f.allowNonFastForward, "allow-non-fast-forward", false, "accept a head that does not descend from the revision last applied (history rewritten by a force-push); refused by default, as it could bring back revoked access")
	fl.StringVar(&f.trustedKeys, "trusted-keys", envOr(env, "CFACCESS_TRUSTED_KEYS", ""), "armored OpenPGP public keys whose commit signatures are trusted (env CFACCESS_TRUSTED_KEYS)")
	fl.DurationVar(&f.debounce, "watch-debounce", 500*time.Millisecond, "wait this long after a change in a watched directory before reconciling")
	fl.DurationVar(&f.reconcileTimeout, "reconcile-timeout", 15*time.Minute, "cancel a reconcile that runs longer (logged at ERROR, cfaccess_reconcile_stalls_total, /readyz 503 until one succeeds)")
	fl.StringVar(&f.logLevel, "log-level", envOr(env, "CFACCESS_LOG_LEVEL", "info"), "log level: debug, info, warn or error (env CFACCESS_LOG_LEVEL)")
	fl.BoolVar(&f.auditLog, "audit-log", true, "ask each account's audit log what changed since the last read, and reuse that read while nothing did (the token needs Account Settings Read; without it, or with false, every reconcile reads in full)")
	fl.DurationVar(&f.fullReadInterval, "full-read-interval", 0, "read each account in full at least this often, whatever the audit log says (default 10× --interval)")
	fl.DurationVar(&f.auditDelay, "audit-log-delay", 5*time.Minute, "how late an entry may reach the audit log: each query overlaps the previous one by this much")
	f.elect.register(fl, env)
	fl.StringSliceVar(&f.notifyURLs, "notify-url", envList(env, "CFACCESS_NOTIFY_URLS"), "POST each event (drift corrected, revisions, grants, break-glass, the breaker, cfaccess's token used elsewhere) as a CloudEvents 1.0 JSON to this URL; repeat or comma-separate (env CFACCESS_NOTIFY_URLS)")
	fl.StringVar(&f.notifySlackURL, "notify-slack-url", envOr(env, "CFACCESS_NOTIFY_SLACK_URL", ""), "post each event to this Slack incoming webhook (it holds a token: prefer the env CFACCESS_NOTIFY_SLACK_URL from a Secret)")
	fl.StringVar(&f.notifySecretFile, "notify-secret-file", envOr(env, "CFACCESS_NOTIFY_SECRET_FILE", ""), "file holding a secret that signs each --notify-url body (HMAC-SHA256 in X-Cfaccess-Signature-256) (env CFACCESS_NOTIFY_SECRET_FILE)")
	fl.BoolVar(&f.notifyDetails, "notify-details", false, "keep emails in notifications (default: replaced by [email], as on /status)")
	fl.DurationVar(&f.triggerGap, "min-trigger-interval", 2*time.Second, "a webhook or directory change starts a reconcile at most this soon after the previous one started (deliveries meanwhile coalesce): a flood of deliveries cannot spend the Cloudflare API budget")
}

// service is the daemon: the loop, its HTTP servers and what feeds them,
// wired from the flags.
type service struct {
	// newLoop makes the loop of a term of leadership (nil: without
	// leader election); elector is nil without it.
	newLoop func(term *leader.Term) (*daemon.Loop, error)
	elector *leader.Elector
	// current is the loop running, the one webhooks and watches poke;
	// requesting is held while a standby asks the leader.
	current    atomic.Pointer[daemon.Loop]
	requesting sync.Mutex
	triggerGap time.Duration
	source     daemon.Source
	notifier   *notify.Notifier
	now        func() time.Time
	server     *server.Server
	metrics    *metrics.Metrics
	log        *slog.Logger
	// watch is the directory watched for changes ("" for a Git URL);
	// work the followed repository's local copy, removed at the end.
	watch, work string
	debounce    time.Duration
	started     []any
}

// logger returns the daemon's logger. Strings in logs can come from the
// repository (a reason, an author): control, invisible and
// direction-changing characters are written as escapes in either format.
func (f *runFlags) logger(env *Env) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: choose debug, info, warn or error", f.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Value.Kind() == slog.KindString {
			a.Value = slog.StringValue(report.Visible(a.Value.String()))
		}
		return a
	}}
	switch f.logFormat {
	case "json":
		return slog.New(slog.NewJSONHandler(env.Stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(env.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: choose json or text", f.logFormat)
}

// source is the followed repository, or the directory.
func (f *runFlags) source() (daemon.Source, string, error) {
	if !gitsource.IsURL(f.repo) {
		switch {
		case f.verifySignatures:
			return nil, "", errors.New("--verify-signatures needs --repo to be a Git URL: a local directory has no commits to verify")
		case f.ref != "":
			return nil, "", fmt.Errorf("--ref %q needs --repo to be a Git URL; check the revision out in %s instead", f.ref, f.repo)
		}
		return gitsource.Directory{Path: f.repo, Sub: f.path}, "", nil
	}
	work, err := os.MkdirTemp("", "cfaccess-run-")
	if err != nil {
		return nil, "", err
	}
	r := &gitsource.Remote{URL: f.repo, Ref: f.ref, Work: work, Path: f.path, TokenFile: f.gitTokenFile,
		SSHKeyFile: f.gitSSHKeyFile, KnownHosts: f.gitKnownHosts}
	if f.verifySignatures {
		r.TrustedKeys = f.trustedKeys
	}
	return r, work, nil
}

// webhook returns the webhook handlers (nil without a secret).
func (f *runFlags) webhook(trigger func(), m *metrics.Metrics) (*gitsource.Webhook, error) {
	if f.webhookSecretFile == "" {
		return nil, nil
	}
	secret, err := os.ReadFile(f.webhookSecretFile)
	if err != nil {
		return nil, fmt.Errorf("read --webhook-secret-file: %w", err)
	}
	secret = []byte(strings.TrimSpace(string(secret)))
	if len(secret) < 16 {
		return nil, errors.New("--webhook-secret-file: the secret is shorter than 16 characters")
	}
	return &gitsource.Webhook{Secret: secret, Trigger: trigger,
		Observe: func(host, result string) { m.WebhookDeliveries.WithLabelValues(host, result).Inc() }}, nil
}

// service checks the flags and wires the daemon; its servers listen.
func (f *runFlags) service(env *Env) (d *service, err error) {
	switch {
	case f.interval <= 0:
		return nil, fmt.Errorf("--interval %v: give a positive duration", f.interval)
	case f.fullReadInterval < 0:
		return nil, fmt.Errorf("--full-read-interval %v: give a positive duration", f.fullReadInterval)
	case f.reconcileTimeout <= 0:
		return nil, fmt.Errorf("--reconcile-timeout %v: give a positive duration", f.reconcileTimeout)
	case f.verifySignatures && f.trustedKeys == "":
		return nil, errors.New("--verify-signatures needs --trusted-keys")
	}
	log, err := f.logger(env)
	if err != nil {
		return nil, err
	}
	v, _ := version()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, v)
	board := &daemon.Board{}
	d = &service{metrics: m, log: log, triggerGap: f.triggerGap, now: env.Now}
	if f.elect.enabled {
		if f.stateFile != "" {
			return nil, errors.New("--state-file with --leader-elect: each replica would keep its own; the applied revisions are kept on the Lease and invitation ages come from the audit log, so leave it out")
		}
		if d.elector, err = f.elect.elector(env, log, v, board, m, d.poke, d.notifyLeader); err != nil {
			return nil, err
		}
	}
	if _, err := f.newPlanner(env, m, d.elector); err != nil { // the flags checked before anything starts
		return nil, err
	}
	notifier, err := f.notifier(log, m)
	if err != nil {
		return nil, err
	}
	d.notifier = notifier
	src, work, err := f.source()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && work != "" {
			os.RemoveAll(work)
		}
	}()
	d.newLoop = func(term *leader.Term) (*daemon.Loop, error) {
		planner, err := f.newPlanner(env, m, d.elector)
		if err != nil {
			return nil, err
		}
		cfg := daemon.LoopConfig{Source: src, Planner: planner, Checks: daemonChecks(f.checks(false)),
			Plans: daemonPlans(f.options()), DryRun: f.dryRun, Interval: f.interval, TriggerGap: f.triggerGap, Timeout: f.reconcileTimeout,
			AllowNonFastForward: f.allowNonFastForward, StateFile: f.stateFile, Metrics: m, Log: log, Now: env.Now, Board: board}
		if notifier != nil {
			cfg.Notify = notifier.Notify
		}
		if term != nil {
			// The revisions the last leader applied: a history rewritten
			// behind its back is refused here too.
			for source, sha := range term.Applied {
				planner.Accepted(source, sha)
			}
			cfg.Replicate = term.Publish
		}
		return daemon.NewLoop(cfg), nil
	}
	hook, err := f.webhook(d.poke, m)
	if err != nil {
		return nil, err
	}
	scfg := server.Config{Listen: f.listen, WebhookListen: f.webhookListen, Gatherer: reg,
		Board: board, Details: f.statusDetails, Webhook: hook, StatusHosts: f.statusHosts}
	if d.elector != nil {
		scfg.Ready = f.elect.ready(d.elector, board)
	}
	srv, err := server.Listen(scfg)
	if err != nil {
		return nil, err
	}
	d.server, d.work, d.debounce, d.source = srv, work, f.debounce, src
	d.started = []any{"listen", srv.Addr(), "webhook_listen", srv.HookAddr(), "repo", gitsource.Redact(f.repo),
		"dry_run", f.dryRun, "interval", f.interval.String(), "leader_elect", f.elect.enabled}
	if work == "" {
		d.watch = f.repo
	}
	return d, nil
}

// lead runs a loop until ctx ends: for a term of leadership (run
// --leader-elect), or for the whole run (term nil). A new term's loop
// starts with a full read and the grants' next instants computed anew.
func (d *service) lead(ctx context.Context, term *leader.Term) error {
	loop, err := d.newLoop(term)
	if err != nil {
		return err
	}
	d.current.Store(loop)
	defer d.current.Store(nil)
	if term != nil {
		defer d.metrics.ForgetState() // a standby reports no account
	}
	return loop.Run(ctx)
}

// reconcile runs the loop until ctx ends: in each term of leadership
// under leader election, for the whole run otherwise.
func (d *service) reconcile(ctx context.Context) error {
	if d.elector == nil {
		return d.lead(ctx, nil)
	}
	// A standby clones before it campaigns, so that taking over costs a
	// fetch; a failure here is the first term's to report.
	if _, err := d.source.Fetch(ctx); err != nil {
		d.log.Warn("the repository could not be fetched ahead of leading", "error", err)
	}
	return d.elector.Run(ctx, func(ctx context.Context, t leader.Term) error { return d.lead(ctx, &t) })
}

// notifyLeader tells of a change of leader this replica saw.
func (d *service) notifyLeader(identity, leader string) {
	d.notifier.Notify(notify.Event{Type: notify.LeaderChanged, Subject: leader, Time: d.now().UTC(),
		Summary: "the cfaccess leader is now " + leader + " (seen by " + identity + ")", Data: map[string]any{"leader": leader, "seen_by": identity}})
}

// poke asks for a reconcile: of the running loop, or, on a standby, of
// the leader through the Lease (at most one such request in flight, and
// one per --min-trigger-interval: a flood of webhooks costs the Kubernetes
// API little).
func (d *service) poke() {
	if l := d.current.Load(); l != nil {
		l.Poke()
		return
	}
	if d.elector == nil || !d.requesting.TryLock() {
		return
	}
	go func() {
		defer d.requesting.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d.elector.Request(ctx)
		time.Sleep(d.triggerGap)
	}()
}

// newPlanner is a planner for a loop: its own state (a new term's starts
// empty), change detection when asked, and writes fenced by the lease
// under leader election.
func (f *runFlags) newPlanner(env *Env, m *metrics.Metrics, el *leader.Elector) (*reconcile.Planner, error) {
	if el != nil {
		f.writesUntil = el.WritesUntil
	}
	planner, err := f.planner(env, m.ObserveRequest)
	if err != nil {
		return nil, err
	}
	if f.auditLog {
		planner.Detect = &reconcile.Detection{FullReadInterval: cmp.Or(f.fullReadInterval, 10*f.interval), Margin: max(f.auditDelay, 0)}
	}
	return planner, nil
}

// daemonPlans are the daemon's plan options: grants kept for the status
// page.
func daemonPlans(o reconcile.PlanOptions) reconcile.PlanOptions {
	o.Grants = true
	return o
}

// run serves HTTP and reconciles until ctx ends, then stops within 30 s:
// the change in flight is finished, the rest is left for the next start.
func (d *service) run(ctx context.Context) error {
	if d.work != "" {
		defer os.RemoveAll(d.work)
	}
	d.log.Info("started", d.started...)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.server.Serve(gctx) })
	if d.watch != "" {
		g.Go(func() error { return gitsource.Watch(gctx, d.watch, d.debounce, d.poke) })
	}
	g.Go(func() error { return d.reconcile(gctx) })
	if d.notifier != nil {
		g.Go(func() error { d.notifier.Run(gctx); return nil })
	}
	err := g.Wait()
	d.log.Info("stopped")
	return err
}

// notifier is the notifications' sender (nil without a receiver).
func (f *runFlags) notifier(log *slog.Logger, m *metrics.Metrics) (*notify.Notifier, error) {
	if len(f.notifyURLs) == 0 && f.notifySlackURL == "" {
		if f.notifySecretFile != "" || f.notifyDetails {
			return nil, errors.New("--notify-secret-file and --notify-details need --notify-url or --notify-slack-url")
		}
		return nil, nil
	}
	for _, u := range append(slices.Clone(f.notifyURLs), f.notifySlackURL) {
		if u == "" {
			continue
		}
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
			return nil, fmt.Errorf("--notify-url/--notify-slack-url: %s is not an http(s) URL", gitsource.Redact(u))
		}
	}
	var secret []byte
	if f.notifySecretFile != "" {
		b, err := os.ReadFile(f.notifySecretFile)
		if err != nil {
			return nil, fmt.Errorf("read --notify-secret-file: %w", err)
		}
		if secret = []byte(strings.TrimSpace(string(b))); len(secret) < 16 {
			return nil, errors.New("--notify-secret-file: the secret is shorter than 16 characters")
		}
	}
	for _, reason := range []string{"queue", "failed"} {
		m.NotificationsDropped.WithLabelValues(reason) // born at zero
	}
	return notify.New(notify.Config{URLs: f.notifyURLs, SlackURL: f.notifySlackURL, Secret: secret, Details: f.notifyDetails, Log: log,
		Dropped: func(reason string) { m.NotificationsDropped.WithLabelValues(reason).Inc() }}), nil
}

// daemonChecks are the daemon's check options: a revision is evaluated
// again at every reconcile, its guardrail input kept between them.
func daemonChecks(o check.Options) check.Options {
	o.Reuse = true
	return o
}
