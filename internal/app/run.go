package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/diff"
	"github.com/cfaccess/reconciler/internal/gitsource"
	"github.com/cfaccess/reconciler/internal/metrics"
	"github.com/cfaccess/reconciler/internal/reconcile"
)

// runFlags are the daemon's flags: plan's, and the loop's.
type runFlags struct {
	planFlags
	interval            time.Duration
	listen              string
	webhookListen       string
	statusDetails       bool
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
}

func newRun(env *Env) *cobra.Command { return newRunWith(env, &runFlags{}) }

// newRunWith binds the run command's flags to f (tests read them back).
func newRunWith(env *Env, f *runFlags) *cobra.Command {
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
			} {
				if cmd.Flags().Changed(name) {
					return &exitError{ExitError, fmt.Errorf("--%s is not used by run: %s", name, why)}
				}
			}
			d, err := newDaemon(f, env)
			if err != nil {
				return &exitError{ExitError, err}
			}
			if err := d.run(cmd.Context()); err != nil {
				return &exitError{ExitError, err}
			}
			return nil
		},
	}
	f.planFlags.register(cmd, env)
	fl := cmd.Flags()
	_ = fl.MarkHidden("now")
	_ = fl.MarkHidden("format")
	fl.DurationVar(&f.interval, "interval", envDuration(env, "CFACCESS_INTERVAL", 5*time.Minute), "time between reconciles, ±10% jitter (env CFACCESS_INTERVAL)")
	fl.StringVar(&f.listen, "listen", envOr(env, "CFACCESS_LISTEN", ":9090"), "address of the HTTP server: metrics, health, status, and webhooks unless --webhook-listen (env CFACCESS_LISTEN)")
	fl.StringVar(&f.webhookListen, "webhook-listen", envOr(env, "CFACCESS_WEBHOOK_LISTEN", ""), "address of a separate server for /hooks/* only, the one port to expose to the Git host; metrics, health and status then stay on --listen (env CFACCESS_WEBHOOK_LISTEN)")
	fl.BoolVar(&f.statusDetails, "status-details", false, "show emails, commit authors and subjects in /status (default: masked, as anyone who can reach --listen can read it)")
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
	fl.DurationVar(&f.triggerGap, "min-trigger-interval", 2*time.Second, "a webhook or directory change starts a reconcile at most this soon after the previous one started (deliveries meanwhile coalesce): a flood of deliveries cannot spend the Cloudflare API budget")
	return cmd
}

func envDuration(env *Env, key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(env.Getenv(key)); err == nil && d > 0 {
		return d
	}
	return def
}

// snapshot is a revision's declarations, kept while it is the last good.
type snapshot struct {
	src *desired.Source
	rev gitsource.Revision
}

// daemon is the reconcile loop and its HTTP side.
type daemon struct {
	f       *runFlags
	env     *Env
	log     *slog.Logger
	reg     *prometheus.Registry
	m       *metrics.Metrics
	remote  *gitsource.Remote
	webhook *gitsource.Webhook
	trigger chan struct{}
	ready   atomic.Bool
	// listening is closed once the HTTP servers listen; addr and hookAddr
	// are their addresses (hookAddr "" without --webhook-listen).
	listening chan struct{}
	addr      string
	hookAddr  string

	good      *snapshot // the last good revision: checked and planned
	candidate *snapshot // a newer revision that passed its checks, to plan
	lastRev   string    // the last revision looked at, good or bad
	// refused are revisions refused (offline or when planned): they are
	// not tried again, by the head check or a walk back.
	refused map[string]bool

	mu     sync.Mutex
	status statusDoc
	// failingSince is when each failing account's failures began.
	failingSince map[string]time.Time
}

func newDaemon(f *runFlags, env *Env) (*daemon, error) {
	if f.format == "" {
		f.format = "json"
	}
	if f.interval <= 0 {
		return nil, fmt.Errorf("--interval %v: give a positive duration", f.interval)
	}
	if err := f.cloudflareFlags.check(); err != nil {
		return nil, err
	}
	if f.verifySignatures && f.trustedKeys == "" {
		return nil, errors.New("--verify-signatures needs --trusted-keys")
	}
	if f.reconcileTimeout <= 0 {
		return nil, fmt.Errorf("--reconcile-timeout %v: give a positive duration", f.reconcileTimeout)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: choose debug, info, warn or error", f.logLevel)
	}
	// Strings in logs can come from the repository (a reason, an author):
	// control, invisible and direction-changing characters are written as
	// escapes in either format.
	hopts := &slog.HandlerOptions{Level: level, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Value.Kind() == slog.KindString {
			a.Value = slog.StringValue(visible(a.Value.String()))
		}
		return a
	}}
	var handler slog.Handler
	switch f.logFormat {
	case "json":
		handler = slog.NewJSONHandler(env.Stderr, hopts)
	case "text":
		handler = slog.NewTextHandler(env.Stderr, hopts)
	default:
		return nil, fmt.Errorf("--log-format %q: choose json or text", f.logFormat)
	}
	v, _ := Version()
	reg := prometheus.NewRegistry()
	d := &daemon{f: f, env: env, log: slog.New(handler), reg: reg, m: metrics.New(reg, v),
		trigger: make(chan struct{}, 1), listening: make(chan struct{})}
	if f.pending == nil {
		// Invitation ages are remembered in memory; --state-file keeps
		// them across restarts.
		p := &pendingState{Version: 1, Pending: map[string]map[string]time.Time{}}
		if f.stateFile != "" {
			var err error
			if p, err = loadPending(f.stateFile); err != nil {
				return nil, err
			}
		}
		f.pending = p
	}
	if gitsource.IsURL(f.repo) {
		work, err := os.MkdirTemp("", "cfaccess-run-")
		if err != nil {
			return nil, err
		}
		d.remote = &gitsource.Remote{URL: f.repo, Ref: f.ref, Work: work, TokenFile: f.gitTokenFile,
			SSHKeyFile: f.gitSSHKeyFile, KnownHosts: f.gitKnownHosts}
		if f.verifySignatures {
			d.remote.TrustedKeys = f.trustedKeys
		}
	} else if f.verifySignatures {
		return nil, errors.New("--verify-signatures needs --repo to be a Git URL: a local directory has no commits to verify")
	}
	if f.webhookSecretFile != "" {
		secret, err := os.ReadFile(f.webhookSecretFile)
		if err != nil {
			return nil, fmt.Errorf("read --webhook-secret-file: %w", err)
		}
		secret = []byte(strings.TrimSpace(string(secret)))
		if len(secret) < 16 {
			return nil, errors.New("--webhook-secret-file: the secret is shorter than 16 characters")
		}
		d.webhook = &gitsource.Webhook{Secret: secret, Trigger: d.poke,
			Observe: func(host, result string) { d.m.WebhookDeliveries.WithLabelValues(host, result).Inc() }}
	}
	return d, nil
}

// poke asks for a reconcile; pokes while one is pending coalesce.
func (d *daemon) poke() {
	select {
	case d.trigger <- struct{}{}:
	default:
	}
}

// run serves HTTP and reconciles until ctx ends, then stops within 30 s:
// the change in flight is finished, the rest is left for the next start.
func (d *daemon) run(ctx context.Context) error {
	if d.remote != nil {
		defer os.RemoveAll(d.remote.Work)
	}
	ln, err := net.Listen("tcp", d.f.listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", d.f.listen, err)
	}
	d.addr = ln.Addr().String()
	servers := []struct {
		ln  net.Listener
		srv *http.Server
	}{{ln, newServer(d.mux(d.f.webhookListen == ""))}}
	if d.f.webhookListen != "" {
		hln, err := net.Listen("tcp", d.f.webhookListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("--webhook-listen %s: %w", d.f.webhookListen, err)
		}
		d.hookAddr = hln.Addr().String()
		servers = append(servers, struct {
			ln  net.Listener
			srv *http.Server
		}{hln, newServer(d.hookMux())})
	}
	close(d.listening)
	d.log.Info("started", "listen", d.addr, "webhook_listen", d.hookAddr, "repo", gitsource.Redact(d.f.repo), "dry_run", d.f.dryRun, "interval", d.f.interval.String())
	g, gctx := errgroup.WithContext(ctx)
	for _, s := range servers {
		g.Go(func() error {
			if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			return s.srv.Shutdown(sctx)
		})
	}
	if d.remote == nil {
		g.Go(func() error { return gitsource.Watch(gctx, d.f.repo, d.f.debounce, d.poke) })
	}
	g.Go(func() error { return d.loop(gctx) })
	err = g.Wait()
	d.log.Info("stopped")
	return err
}

// loop reconciles at start, then on triggers, on the interval, and at the
// next grant change; after a transient failure it backs off exponentially.
func (d *daemon) loop(ctx context.Context) error {
	failures := 0
	for {
		started := time.Now()
		rctx, cancel := context.WithTimeout(ctx, d.f.reconcileTimeout)
		transient := d.reconcileOnce(rctx)
		stalled := rctx.Err() != nil && ctx.Err() == nil
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if stalled {
			d.m.ReconcileStalls.Inc()
			d.ready.Store(false)
			d.mu.Lock()
			d.status.Ready = false
			d.mu.Unlock()
			d.log.Error("reconcile cancelled: it ran longer than --reconcile-timeout", "timeout", d.f.reconcileTimeout.String(), "enforcing", d.goodSHA())
			transient = true
		}
		if transient {
			failures++
		} else {
			failures = 0
		}
		wait := d.nextWait(failures)
		d.mu.Lock()
		d.status.NextReconcile = d.env.Now().Add(wait).UTC()
		d.mu.Unlock()
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-d.trigger:
			timer.Stop()
			// Triggers come from outside: at most one reconcile per
			// --min-trigger-interval for them. (Interval and grant-change
			// wake-ups skip this wait; a grant change that falls due
			// during it is applied by the reconcile that ends it, at
			// most one gap late.)
			if gap := d.f.triggerGap - time.Since(started); gap > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(gap):
				}
				select { // the triggers meanwhile are this reconcile
				case <-d.trigger:
				default:
				}
			}
		case <-timer.C:
		}
	}
}

// nextWait is the interval with ±10% jitter, shortened to the next grant
// change and, after failures, to an exponential backoff (1 s, 2 s, …).
func (d *daemon) nextWait(failures int) time.Duration {
	wait := d.f.interval + time.Duration((rand.Float64()*0.2-0.1)*float64(d.f.interval))
	if failures > 0 {
		backoff := time.Second << min(failures-1, 16)
		wait = min(wait, backoff)
	}
	d.mu.Lock()
	next := d.status.NextGrantChange
	d.mu.Unlock()
	if next != nil {
		// A few milliseconds past the instant, so that the grant has
		// changed when the reconcile looks.
		wait = min(wait, next.Sub(d.env.Now())+5*time.Millisecond)
	}
	return max(wait, 0)
}

// reconcileOnce fetches, checks and reconciles every account once. It
// reports whether it failed in a way worth retrying soon.
//
// A new revision that passed its checks is a candidate until it has been
// planned: a plan that fails because of the repository (a role the
// account lacks, a zone not in it, a role outside its scope) refuses it
// like an invalid one, and the last good revision is enforced instead, in
// the same reconcile.
func (d *daemon) reconcileOnce(ctx context.Context) (transient bool) {
	start := time.Now()
	now := d.env.Now().UTC()
	d.fetch(ctx, now)
	snap, trying := d.good, false
	if d.candidate != nil {
		snap, trying = d.candidate, true
	}
	for snap != nil {
		c, err := check(ctx, snap.src, nil, d.f.checkOptions(now, false))
		if err != nil {
			d.log.Error("check the revision", "revision", snap.rev.SHA, "error", err)
			return true
		}
		var o *outcome
		if c.valid() && !c.denied() {
			if o, err = d.f.planChecked(ctx, d.env, c, snap.rev, now, d.m.ObserveRequest); err != nil {
				d.log.Error("plan", "revision", snap.rev.SHA, "error", err)
				return true
			}
		}
		refusal := c.findings()
		switch {
		case !c.valid() || c.denied():
		case o != nil && len(declarationErrors(o)) > 0 && trying:
			refusal = declarationErrors(o)
		default:
			refusal = nil
		}
		if trying && (len(refusal) > 0 || !c.valid() || c.denied()) {
			result := "invalid"
			if c.valid() && c.denied() {
				result = "denied"
			}
			d.refuse(snap.rev, result, refusal)
			snap, trying = d.good, false
			continue
		}
		if trying {
			d.accept(snap)
		}
		if !c.valid() || c.denied() {
			// Time can make a good revision denied (a rule on input.now),
			// or its guardrails fail (a rule that loops after a date).
			result := "denied"
			if !c.valid() {
				result = "error"
			}
			d.finish(c, nil, now, start, result)
			return false
		}
		o.results = map[string][]reconcile.Result{}
		for _, ap := range o.accounts {
			if ap.Err != nil {
				if cloudflare.IsTransient(ap.Err) {
					transient = true
				}
				continue
			}
			if d.f.dryRun || ctx.Err() != nil {
				continue
			}
			applyStart := time.Now()
			o.results[ap.Provider] = reconcile.Apply(ctx, ap.Client, ap, func(r reconcile.Result) { d.audit(ap, r) })
			ap.Took += time.Since(applyStart)
		}
		o.applied = !d.f.dryRun
		d.finish(c, o, now, start, "")
		return transient
	}
	return true
}

// declarationErrors are the findings of the accounts whose plan failed
// because of the repository.
func declarationErrors(o *outcome) []finding {
	var out []finding
	for _, ap := range o.accounts {
		var de *reconcile.DeclarationError
		if errors.As(ap.Err, &de) {
			for _, d := range de.Diags {
				out = append(out, finding{Severity: "error", Source: d.Pos.String(), Message: ap.Provider + ": " + d.Message})
			}
		}
	}
	return out
}

// refuse reports a revision that is not applied; the last good one stays
// enforced.
func (d *daemon) refuse(rev gitsource.Revision, result string, findings []finding) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.candidate = nil
	d.markRefused(rev.SHA)
	d.status.BadRevision = &badRevision{Revision: revJSONOf(rev), Result: result, Findings: findings}
	d.m.RevisionsRefused.WithLabelValues(result).Inc()
	d.m.RevisionRefused.Set(1)
	attrs := []any{"revision", rev.SHA, "author", rev.Author, "result", result, "findings", len(findings), "enforcing", d.goodSHA()}
	for i, f := range findings {
		if i == 5 {
			attrs = append(attrs, "more", len(findings)-5)
			break
		}
		attrs = append(attrs, fmt.Sprintf("finding_%d", i+1), f.Source+": "+f.Message)
	}
	d.log.Warn("revision not applied", attrs...)
}

// accept makes a planned candidate the last good revision.
func (d *daemon) accept(snap *snapshot) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.good != nil && d.good.rev.SHA != "" && d.good.rev.SHA != snap.rev.SHA {
		d.m.SourceRevision.DeleteLabelValues(d.good.rev.SHA)
	}
	if snap.rev.SHA != "" {
		d.m.SourceRevision.WithLabelValues(snap.rev.SHA).Set(1)
	}
	if d.good == nil || d.good.rev.SHA != snap.rev.SHA {
		d.log.Info("revision accepted", "revision", snap.rev.SHA, "author", snap.rev.Author, "subject", snap.rev.Subject)
	}
	d.good, d.candidate = snap, nil
	if snap.rev.SHA == "" || snap.rev.SHA == d.lastRev {
		// The head itself is enforced: nothing refused any more. (A
		// revision found by walking back leaves the head's refusal.)
		d.status.BadRevision = nil
		d.m.RevisionRefused.Set(0)
	}
	if d.remote != nil && snap.rev.SHA != "" {
		// Remembered (with --state-file) so that after a restart a
		// force-push cannot bring an older revision back.
		if d.f.pending.Applied == nil {
			d.f.pending.Applied = map[string]string{}
		}
		d.f.pending.Applied[d.sourceKey()] = snap.rev.SHA
	}
}

// fetch reads the repository; a revision not seen before is checked, and
// becomes the candidate when valid and allowed.
func (d *daemon) fetch(ctx context.Context, now time.Time) {
	if d.remote != nil {
		d.fetchRemote(ctx, now)
		return
	}
	rev, _ := gitsource.Head(d.f.repo)
	src, diags, err := desired.ReadDir(d.f.repo, d.f.path)
	if err != nil {
		d.sourceError(err)
		return
	}
	d.sourceOK()
	if result, findings := d.checkSource(ctx, src, diags, now); result != "" {
		d.refuse(rev, result, findings)
		return
	}
	d.candidate = &snapshot{src: src, rev: rev}
}

// checkSource checks a revision's declarations and guardrails (with its
// policy tests): "" when it passes, or the result and findings refusing it.
func (d *daemon) checkSource(ctx context.Context, src *desired.Source, diags desired.Diagnostics, now time.Time) (result string, findings []finding) {
	c, err := check(ctx, src, diags, d.f.checkOptions(now, true))
	switch {
	case err != nil:
		return "invalid", []finding{{Severity: "error", Message: err.Error()}}
	case !c.valid():
		return "invalid", c.findings()
	case c.denied():
		return "denied", c.findings()
	}
	return "", nil
}

// sourceOK records a successful fetch.
func (d *daemon) sourceOK() {
	d.mu.Lock()
	d.status.SourceError = ""
	d.mu.Unlock()
	d.m.SourceFetch.WithLabelValues("success").Inc()
}

// walkLimit bounds how far back the daemon looks for a good revision when
// the head is refused and nothing is enforced yet (a restart).
const walkLimit = 50

// fetchRemote follows a Git URL: the head is checked, and refused unless it
// descends from the revision last applied (a force-push, unless
// --allow-non-fast-forward). When nothing is enforced yet (a restart) and
// the head is refused, history is walked back along first parents — never
// below the revision last applied — to the newest revision that passes,
// which is enforced meanwhile.
func (d *daemon) fetchRemote(ctx context.Context, now time.Time) {
	head, err := d.remote.Fetch(ctx)
	if err != nil {
		d.sourceError(err)
		return
	}
	d.sourceOK()
	if head.SHA == d.lastRev && d.good != nil {
		return
	}
	d.lastRev = head.SHA
	last := d.lastApplied()
	if last != "" && !d.f.allowNonFastForward {
		if ok, err := d.remote.Descends(head.SHA, last); err != nil || !ok {
			why := fmt.Sprintf("%s does not descend from %s, the revision last applied: history was rewritten (a force-push?), so it could bring back access already revoked. It is refused; --allow-non-fast-forward accepts it", short(head.SHA), short(last))
			if err != nil {
				why = fmt.Sprintf("cannot tell whether %s descends from %s, the revision last applied: %v", short(head.SHA), short(last), err)
			}
			d.refuse(head, "non_fast_forward", []finding{{Severity: "error", Message: why}})
			return
		}
	}
	revs := []gitsource.Revision{head}
	if d.good == nil {
		if revs, err = d.remote.FirstParents(head.SHA, walkLimit); err != nil || len(revs) == 0 {
			revs = []gitsource.Revision{head}
		}
	}
	for i, rev := range revs {
		if d.refused[rev.SHA] {
			continue
		}
		if i > 0 {
			if last != "" {
				if ok, err := d.remote.Descends(rev.SHA, last); err != nil || !ok {
					break // never below the revision last applied
				}
			}
		}
		result, findings, snap := d.try(ctx, rev, now)
		if snap != nil {
			d.candidate = snap
			if i > 0 {
				d.log.Warn("the head is refused: enforcing the newest good revision before it", "head", head.SHA,
					"revision", rev.SHA, "commits_back", i)
			}
			return
		}
		if i == 0 {
			d.refuse(rev, result, findings)
		} else {
			d.markRefused(rev.SHA)
		}
	}
}

// markRefused remembers a refused revision, not to try it again.
func (d *daemon) markRefused(sha string) {
	if sha == "" {
		return
	}
	if d.refused == nil {
		d.refused = map[string]bool{}
	}
	d.refused[sha] = true
}

// try checks one fetched revision: signature, files, load, policy tests
// and guardrails. It returns the snapshot when the revision passes, or why
// not.
func (d *daemon) try(ctx context.Context, rev gitsource.Revision, now time.Time) (result string, findings []finding, snap *snapshot) {
	if err := d.remote.Verify(rev.SHA); err != nil {
		return "unverified", []finding{{Severity: "error", Message: err.Error()}}, nil
	}
	dir, err := d.remote.Checkout(rev.SHA)
	if err != nil {
		return "invalid", []finding{{Severity: "error", Message: err.Error()}}, nil
	}
	src, diags, err := desired.ReadDir(dir, d.f.path)
	if err != nil {
		return "invalid", []finding{{Severity: "error", Message: err.Error()}}, nil
	}
	if result, findings := d.checkSource(ctx, src, diags, now); result != "" {
		return result, findings, nil
	}
	return "", nil, &snapshot{src: src, rev: rev}
}

// lastApplied is the revision last applied: the one enforced, or after a
// restart the one --state-file remembers for this repository.
func (d *daemon) lastApplied() string {
	if d.good != nil {
		return d.good.rev.SHA
	}
	return d.f.pending.Applied[d.sourceKey()]
}

// sourceKey names the followed repository in --state-file (credentials
// removed).
func (d *daemon) sourceKey() string {
	return gitsource.Redact(d.f.repo) + "#" + d.f.ref
}

// sourceError reports a repository that cannot be fetched.
func (d *daemon) sourceError(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.m.SourceFetch.WithLabelValues("error").Inc()
	d.status.SourceError = err.Error()
	d.log.Warn("fetch the repository", "error", err, "enforcing", d.goodSHA())
}

func (d *daemon) goodSHA() string {
	if d.good == nil {
		return ""
	}
	return d.good.rev.SHA
}

// audit writes one record per applied change.
func (d *daemon) audit(ap *reconcile.AccountPlan, r reconcile.Result) {
	result := "success"
	attrs := []any{"audit", true, "account", ap.Provider, "account_id", ap.AccountID, "action", string(r.Change.Action),
		"email", r.Change.Email, "revision", d.good.rev.SHA, "commit_author", d.good.rev.Author,
		"grant_reason", strings.Join(r.Change.Reasons, "; ")}
	if r.Err != nil {
		result = "error"
		attrs = append(attrs, "error", r.Err.Error())
	}
	if r.Note != "" {
		attrs = append(attrs, "note", r.Note)
	}
	attrs = append(attrs, "result", result)
	d.m.ChangesApplied.WithLabelValues(ap.Provider, string(r.Change.Action), result).Inc()
	if r.Err != nil {
		d.log.Error("change failed", attrs...)
	} else {
		d.log.Info("change applied", attrs...)
	}
}

// finish records metrics and status for a reconcile. forced, when set, is
// the result of every account (denied).
func (d *daemon) finish(c *checked, o *outcome, now, start time.Time, forced string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	elapsed := time.Since(start)
	st := &d.status
	st.LastReconcile = now
	st.DryRun = d.f.dryRun
	st.Revision = revJSONOf(d.good.rev)
	st.Violations = nil
	deny, warn := 0, 0
	for _, f := range c.findings() {
		if f.Policy != "" || f.Severity == "deny" {
			st.Violations = append(st.Violations, f)
		}
		switch f.Severity {
		case "deny":
			deny++
		case "warn", "warning":
			warn++
		}
	}
	d.m.PolicyViolations.WithLabelValues("repository", "deny").Set(float64(deny))
	d.m.PolicyViolations.WithLabelValues("repository", "warn").Set(float64(warn))
	var next time.Time
	if c.repo != nil {
		next = c.repo.NextChange(now)
	}
	st.NextGrantChange = nil
	if !next.IsZero() {
		n := next.UTC()
		st.NextGrantChange = &n
	}
	allOK := true
	var accounts []accountStatus
	if o == nil {
		for id, pv := range c.repoProviders() {
			accounts = append(accounts, accountStatus{Account: id, AccountID: pv.AccountID, LastReconcile: now, Result: forced})
			d.m.ReconcileTotal.WithLabelValues(id, forced).Inc()
			d.failing(id, false, now)
		}
		allOK = false
		attrs := []any{"result", forced, "revision", d.goodSHA(), "findings", len(c.findings())}
		for i, f := range c.findings() {
			if i == 5 {
				break
			}
			attrs = append(attrs, fmt.Sprintf("finding_%d", i+1), f.Source+": "+f.Message)
		}
		d.log.Error("the enforced revision is denied or its guardrails fail now: nothing applied", attrs...)
	} else {
		for _, ap := range o.accounts {
			as := accountStatus{Account: ap.Provider, AccountID: ap.AccountID, Name: ap.AccountName, LastReconcile: now, Result: "success"}
			switch {
			case forced != "":
				as.Result = forced
			case ap.Err != nil:
				as.Result, as.Error = "error", ap.Err.Error()
			}
			if ap.Plan != nil {
				as.Breaker = ap.Plan.Breaker
				as.Plan = &planSummary{Invite: ap.Plan.Count(diff.Invite), Update: ap.Plan.Count(diff.Update),
					Remove: ap.Plan.Count(diff.Remove), Reinvite: ap.Plan.Count(diff.Reinvite), Unmanaged: len(ap.Plan.Unmanaged)}
				d.m.DriftMembers.WithLabelValues(ap.Provider, "invite").Set(float64(as.Plan.Invite + as.Plan.Reinvite))
				d.m.DriftMembers.WithLabelValues(ap.Provider, "update").Set(float64(as.Plan.Update))
				d.m.DriftMembers.WithLabelValues(ap.Provider, "remove").Set(float64(as.Plan.Remove))
				d.m.DriftMembers.WithLabelValues(ap.Provider, "unmanaged").Set(float64(as.Plan.Unmanaged))
			}
			d.m.BreakerTripped.WithLabelValues(ap.Provider).Set(metrics.Bool(as.Breaker != ""))
			for _, r := range o.results[ap.Provider] {
				if r.Err != nil {
					as.Result, as.Error = "error", "a change failed: "+r.Err.Error()
				}
			}
			if ap.Live != nil {
				d.f.pending.observe(ap.Live, now)
				for _, r := range o.results[ap.Provider] {
					if r.Err == nil && (r.Change.Action == diff.Invite || r.Change.Action == diff.Reinvite) {
						d.f.pending.Pending[ap.AccountID][r.Change.Email] = now
					}
				}
				var oldest time.Duration
				for _, since := range d.f.pending.Pending[ap.AccountID] {
					oldest = max(oldest, now.Sub(since))
				}
				d.m.PendingInvites.WithLabelValues(ap.Provider).Set(float64(len(d.f.pending.Pending[ap.AccountID])))
				d.m.OldestPendingInvite.WithLabelValues(ap.Provider).Set(oldest.Seconds())
			}
			if c.repo != nil {
				d.setExpiring(c.repo, ap.Provider, now)
			}
			d.m.ReconcileTotal.WithLabelValues(ap.Provider, as.Result).Inc()
			d.m.ReconcileDuration.WithLabelValues(ap.Provider).Observe(ap.Took.Seconds())
			d.failing(ap.Provider, as.Result == "success", now)
			switch {
			case as.Result == "success":
				d.m.LastSuccess.WithLabelValues(ap.Provider).Set(float64(now.Unix()))
			case as.Breaker != "":
				allOK = false
				d.log.Error("account not applied: the mass-removal breaker tripped; a person must look (apply --allow-mass-removal if intended)",
					"account", ap.Provider, "account_id", ap.AccountID, "breaker", as.Breaker, "revision", d.goodSHA())
			default:
				allOK = false
				level := slog.LevelError
				if cloudflare.IsTransient(ap.Err) {
					level = slog.LevelWarn
				}
				d.log.Log(context.Background(), level, "account reconcile failed", "account", ap.Provider, "account_id", ap.AccountID,
					"result", as.Result, "error", as.Error, "revision", d.goodSHA())
			}
			accounts = append(accounts, as)
		}
	}
	st.Accounts = accounts
	if d.f.stateFile != "" {
		if err := d.f.pending.save(d.f.stateFile); err != nil {
			d.log.Error("save --state-file", "error", err)
		}
	}
	if allOK && len(accounts) > 0 {
		d.ready.Store(true)
	}
	st.Ready = d.ready.Load()
	level := slog.LevelInfo
	if !allOK {
		level = slog.LevelWarn
	}
	d.log.Log(context.Background(), level, "reconciled", "revision", d.goodSHA(), "accounts", len(accounts), "ok", allOK, "duration", elapsed.String())
}

// failing keeps cfaccess_account_failing_since_timestamp_seconds: the time
// of the first failure in a row, 0 after a success (the alert
// CfaccessReconcileFailing fires when it is 15 minutes old). Called with
// d.mu held.
func (d *daemon) failing(account string, ok bool, now time.Time) {
	if d.failingSince == nil {
		d.failingSince = map[string]time.Time{}
	}
	switch since, known := d.failingSince[account]; {
	case ok:
		delete(d.failingSince, account)
		d.m.FailingSince.WithLabelValues(account).Set(0)
	case !known:
		d.failingSince[account] = now
		d.m.FailingSince.WithLabelValues(account).Set(float64(now.Unix()))
	default:
		d.m.FailingSince.WithLabelValues(account).Set(float64(since.Unix()))
	}
}

// setExpiring sets grants_expiring for the active grants of a provider.
func (d *daemon) setExpiring(repo *desired.Repo, pid string, now time.Time) {
	windows := map[string]time.Duration{"1h": time.Hour, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour}
	counts := map[string]int{}
	for _, g := range repo.Grants {
		if g.Expires.IsZero() || !g.ActiveAt(now) || !grantTouches(repo, g, pid) {
			continue
		}
		for name, w := range windows {
			if g.Expires.Sub(now) <= w {
				counts[name]++
			}
		}
	}
	for name := range windows {
		d.m.GrantsExpiring.WithLabelValues(pid, name).Set(float64(counts[name]))
	}
}

func grantTouches(repo *desired.Repo, g *desired.Grant, pid string) bool {
	for _, rid := range g.Roles {
		if r := repo.Roles[rid]; r != nil {
			for _, p := range r.Providers {
				if p == pid {
					return true
				}
			}
		}
	}
	return false
}

// repoProviders lists the enabled providers of the checked repository.
func (c *checked) repoProviders() map[string]*desired.Provider {
	out := map[string]*desired.Provider{}
	if c.repo != nil {
		for id, pv := range c.repo.Providers {
			if pv.Enabled {
				out[id] = pv
			}
		}
	}
	return out
}

// HTTP side.

type revJSON struct {
	SHA     string `json:"sha"`
	Author  string `json:"author,omitempty"`
	Subject string `json:"subject,omitempty"`
}

func revJSONOf(r gitsource.Revision) *revJSON {
	if r.SHA == "" {
		return nil
	}
	return &revJSON{SHA: r.SHA, Author: r.Author, Subject: r.Subject}
}

type badRevision struct {
	Revision *revJSON  `json:"revision,omitempty"`
	Result   string    `json:"result,omitempty"` // invalid, denied, unverified
	Findings []finding `json:"findings"`
}

type planSummary struct {
	Invite    int `json:"invite"`
	Update    int `json:"update"`
	Remove    int `json:"remove"`
	Reinvite  int `json:"reinvite"`
	Unmanaged int `json:"unmanaged"`
}

type accountStatus struct {
	Account       string       `json:"account"`
	AccountID     string       `json:"account_id"`
	Name          string       `json:"name,omitempty"`
	LastReconcile time.Time    `json:"last_reconcile"`
	Result        string       `json:"result"` // success, error, denied
	Error         string       `json:"error,omitempty"`
	Breaker       string       `json:"breaker,omitempty"`
	Plan          *planSummary `json:"plan,omitempty"`
}

type statusDoc struct {
	Ready           bool            `json:"ready"`
	DryRun          bool            `json:"dry_run"`
	Revision        *revJSON        `json:"revision"`
	BadRevision     *badRevision    `json:"bad_revision,omitempty"`
	SourceError     string          `json:"source_error,omitempty"`
	LastReconcile   time.Time       `json:"last_reconcile"`
	NextReconcile   time.Time       `json:"next_reconcile"`
	NextGrantChange *time.Time      `json:"next_grant_change,omitempty"`
	Accounts        []accountStatus `json:"accounts"`
	Violations      []finding       `json:"violations"`
}

// newServer is an HTTP server with limits for every phase of a request:
// anyone who can reach the port gets no more than these (slow or idle
// connections are closed).
func newServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       gitsource.BodyTimeout + 5*time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// hookMux serves the webhooks alone (--webhook-listen).
func (d *daemon) hookMux() *http.ServeMux {
	mux := http.NewServeMux()
	if d.webhook != nil {
		mux.Handle("/hooks/github", d.webhook.GitHub())
		mux.Handle("/hooks/gitlab", d.webhook.GitLab())
	}
	return mux
}

func (d *daemon) mux(hooks bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{Registry: d.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !d.ready.Load() {
			http.Error(w, "no successful reconcile yet", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		doc := d.status
		d.mu.Unlock()
		if doc.Accounts == nil {
			doc.Accounts = []accountStatus{}
		}
		if doc.Violations == nil {
			doc.Violations = []finding{}
		}
		if !d.f.statusDetails {
			doc = doc.masked()
		}
		w.Header().Set("Content-Type", "application/json")
		_ = writeJSON(w, doc)
	})
	if hooks && d.webhook != nil {
		mux.Handle("/hooks/github", d.webhook.GitHub())
		mux.Handle("/hooks/gitlab", d.webhook.GitLab())
	}
	return mux
}

// emailPattern finds email addresses in text, to mask them.
var emailPattern = regexp.MustCompile(`[^\s"'<>(),;:@]+@[^\s"'<>(),;:@]+\.[^\s"'<>(),;:@]+`)

func maskEmails(s string) string { return emailPattern.ReplaceAllString(s, "[email]") }

// masked is the status for anyone who can reach the port: emails, commit
// authors and subjects removed (--status-details shows them).
func (doc statusDoc) masked() statusDoc {
	maskRev := func(r *revJSON) *revJSON {
		if r == nil {
			return nil
		}
		return &revJSON{SHA: r.SHA}
	}
	maskFindings := func(fs []finding) []finding {
		out := make([]finding, len(fs))
		for i, f := range fs {
			f.Message = maskEmails(f.Message)
			out[i] = f
		}
		return out
	}
	doc.Revision = maskRev(doc.Revision)
	if doc.BadRevision != nil {
		b := *doc.BadRevision
		b.Revision, b.Findings = maskRev(b.Revision), maskFindings(b.Findings)
		doc.BadRevision = &b
	}
	doc.SourceError = maskEmails(doc.SourceError)
	doc.Violations = maskFindings(doc.Violations)
	accounts := make([]accountStatus, len(doc.Accounts))
	for i, a := range doc.Accounts {
		a.Error = maskEmails(a.Error)
		accounts[i] = a
	}
	doc.Accounts = accounts
	return doc
}
