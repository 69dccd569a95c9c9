package daemon

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/gitsource"
	"github.com/cfaccess/reconciler/internal/metrics"
	"github.com/cfaccess/reconciler/internal/notify"
	"github.com/cfaccess/reconciler/internal/reconcile"
	"github.com/cfaccess/reconciler/internal/report"
)

// Source is where the loop gets revisions: a followed Git repository or a
// directory (declared here, where it is used; gitsource has both).
type Source interface {
	// Fetch brings the newest revision (its SHA "" for a directory).
	Fetch(ctx context.Context) (gitsource.Revision, error)
	// Read returns a fetched revision's declarations.
	Read(ctx context.Context, rev gitsource.Revision) (*desired.Source, desired.Diagnostics, error)
	// Verify checks a commit's signature (nil when none is required).
	Verify(sha string) error
	// Descends reports whether sha is ancestor or descends from it.
	Descends(sha, ancestor string) (bool, error)
	// FirstParents returns up to n revisions back from sha along first
	// parents, sha first.
	FirstParents(sha string, n int) ([]gitsource.Revision, error)
	// Key names the source in the state file ("" for none: a directory).
	Key() string
}

// walkLimit bounds how far back the loop looks for a good revision when
// the head is refused and nothing is enforced yet (a restart).
const walkLimit = 50

// LoopConfig configures a Loop.
type LoopConfig struct {
	Source  Source
	Planner *reconcile.Planner
	// Checks and Plans tune each revision's checks and each plan.
	Checks check.Options
	Plans  reconcile.PlanOptions
	DryRun bool
	// Interval between reconciles (±10% jitter); TriggerGap, the least
	// time between the starts of reconciles that triggers (webhooks,
	// watches) cause; Timeout, the longest a reconcile may run.
	Interval, TriggerGap, Timeout time.Duration
	// AllowNonFastForward accepts a head that does not descend from the
	// revision last applied.
	AllowNonFastForward bool
	// StateFile, when set, is where State is saved after each reconcile.
	StateFile string
	// Replicate, when set, is given the revisions applied per followed
	// source after each reconcile (run --leader-elect: the Lease carries
	// them to the replica that leads next).
	Replicate func(applied map[string]string)
	// Notify, when set, is told of what people should hear of (drift
	// corrected, revisions, grants, break-glass, the breaker, cfaccess's
	// credentials used elsewhere); it must not block.
	Notify func(notify.Event)
	// Board, when set, is the board to write (a loop per term of
	// leadership shares one); NewLoop makes one otherwise.
	Board   *Board
	Metrics *metrics.Metrics
	Log     *slog.Logger
	// Now is the clock (time.Now), Rand the jitter's source (a random
	// seed): injected so that tests are deterministic.
	Now  func() time.Time
	Rand *rand.Rand
}

// Loop reconciles every account of a source's revisions, again and again:
// the daemon's heart (external-dns' controller: RunOnce, then Run).
type Loop struct {
	cfg   LoopConfig
	Board *Board

	trigger chan struct{}
	// good is the last good revision: checked and planned; candidate a
	// newer one that passed its checks, to plan; lastRev the last head
	// looked at; refused the revisions not to try again.
	good, candidate *snapshot
	lastRev         string
	refused         map[string]bool
	failingSince    map[string]time.Time
	// breakers are the accounts whose breaker is tripped; active the
	// grants active at the last reconcile that enforced every account
	// (nil before the first): for events.
	breakers map[string]bool
	active   map[string]*desired.Grant
	// started is when the current (or last) reconcile of Run started.
	started time.Time
}

// snapshot is a revision vetted: its declarations loaded and guardrails
// compiled once, evaluated again at each reconcile.
type snapshot struct {
	compiled *check.Compiled
	rev      gitsource.Revision
	// digest identifies a directory's files as read ("" for a commit).
	digest string
}

// NewLoop returns a loop; Run or RunOnce start it.
func NewLoop(cfg LoopConfig) *Loop {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Minute
	}
	board := cfg.Board
	if board == nil {
		board = &Board{}
	}
	l := &Loop{cfg: cfg, Board: board, trigger: make(chan struct{}, 1), refused: map[string]bool{}, failingSince: map[string]time.Time{},
		breakers: map[string]bool{}}
	// Not ready until this loop's first reconcile (a new term's too).
	l.Board.update(func(s *Status) { s.DryRun, s.Ready = cfg.DryRun, false })
	return l
}

// Poke asks for a reconcile; pokes while one is pending coalesce.
func (l *Loop) Poke() {
	select {
	case l.trigger <- struct{}{}:
	default:
	}
}

// Run reconciles at once, then on triggers, on the interval and at the
// next grant change, until ctx ends; after a transient failure it backs
// off exponentially. A reconcile that runs past the timeout is cancelled.
func (l *Loop) Run(ctx context.Context) error {
	failures := 0
	for {
		l.started = l.cfg.Now()
		err := l.runOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if KindOf(err) == Transient || KindOf(err) == Timeout {
			failures++
		} else {
			failures = 0
		}
		wait := NextWake(l.cfg.Now(), l.cfg.Interval, l.cfg.Rand.Float64(), failures, l.nextChange())
		l.Board.update(func(s *Status) { s.NextReconcile = l.cfg.Now().Add(wait).UTC() })
		if !l.sleep(ctx, wait, l.trigger) {
			return nil
		}
	}
}

// sleep waits d, or until wake (nil: none) receives, or ctx ends (false).
// A wake-up from a trigger then waits out the trigger gap: triggers come
// from outside, so at most one reconcile per TriggerGap for them.
// (Interval and grant-change wake-ups skip this wait; a grant change that
// falls due during it is applied by the reconcile that ends it, at most
// one gap late.)
func (l *Loop) sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	case <-wake:
	}
	if gap := l.cfg.TriggerGap - l.cfg.Now().Sub(l.started); gap > 0 {
		if !l.sleep(ctx, gap, nil) {
			return false
		}
		select { // the triggers meanwhile are this reconcile
		case <-l.trigger:
		default:
		}
	}
	return true
}

// runOnce is RunOnce under the timeout, reporting a stall.
func (l *Loop) runOnce(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	defer cancel()
	err := l.RunOnce(rctx)
	if rctx.Err() != nil && ctx.Err() == nil {
		l.cfg.Metrics.ReconcileStalls.Inc()
		l.Board.update(func(s *Status) { s.Ready = false })
		l.cfg.Log.Error("reconcile cancelled: it ran longer than --reconcile-timeout", "timeout", l.cfg.Timeout.String(), "enforcing", l.goodSHA())
		return fmt.Errorf("reconcile cancelled after %v: %w", l.cfg.Timeout, context.DeadlineExceeded)
	}
	return err
}

// NextWake is how long to wait before the next reconcile: the interval
// with ±10% jitter (jitter in [0,1)), shortened to an exponential backoff
// (1 s, 2 s, …) after failures, and to just past the next grant change.
func NextWake(now time.Time, interval time.Duration, jitter float64, failures int, nextChange time.Time) time.Duration {
	wait := interval + time.Duration((jitter*0.2-0.1)*float64(interval))
	if failures > 0 {
		wait = min(wait, time.Second<<min(failures-1, 16))
	}
	if !nextChange.IsZero() {
		// A few milliseconds past the instant, so that the grant has
		// changed when the reconcile looks.
		wait = min(wait, nextChange.Sub(now)+5*time.Millisecond)
	}
	return max(wait, 0)
}

func (l *Loop) nextChange() time.Time {
	st := l.Board.Status()
	if st.NextGrantChange == nil {
		return time.Time{}
	}
	return *st.NextGrantChange
}

// RunOnce reconciles every account once, in four steps: select the
// revision (fetch, and vet a new one), trial the candidate (evaluate its
// guardrails at now and plan it), accept or refuse it, and enforce the
// revision kept (apply its plan, or report it denied). The error, if any,
// is classified by KindOf: transient failures are worth retrying soon.
//
// A new revision that passed its checks is a candidate until it has been
// planned: a plan that fails because of the repository (a role the
// account lacks, a zone not in it, a role outside its scope) refuses it
// like an invalid one, and the last good revision is enforced instead, in
// the same reconcile.
func (l *Loop) RunOnce(ctx context.Context) error {
	start := l.cfg.Now()
	now := start.UTC()
	if err := l.selectRevision(ctx, now); err != nil && l.good == nil && l.candidate == nil {
		return err
	}
	if snap := l.candidate; snap != nil {
		t, err := l.trial(ctx, snap, now)
		if err != nil {
			return err
		}
		if why := refusal(t.checked, t.outcome); why != nil {
			l.refuse(snap.rev, why)
		} else {
			l.accept(snap)
			return l.enforce(ctx, snap, t, start)
		}
	}
	if l.good == nil {
		return transient(errors.New("no revision to enforce"))
	}
	t, err := l.trial(ctx, l.good, now)
	if err != nil {
		return err
	}
	return l.enforce(ctx, l.good, t, start)
}

// trialRun is a revision evaluated at now and, when its guardrails
// allow, planned.
type trialRun struct {
	// checked is the revision checked at now: once planned, with the
	// guardrails evaluated on the live accounts too (outcome's).
	checked *check.Checked
	outcome *reconcile.Outcome // nil when not planned
}

// trial evaluates a revision's guardrails at now, and plans it when they
// allow. The error is for a plan that could not be made (transient).
func (l *Loop) trial(ctx context.Context, snap *snapshot, now time.Time) (trialRun, error) {
	t := trialRun{checked: snap.compiled.At(ctx, now)}
	if !t.checked.Valid() || t.checked.Denied() {
		return t, nil
	}
	o, err := l.cfg.Planner.Plan(ctx, t.checked, snap.rev, now, l.cfg.Plans)
	if err != nil {
		if ctx.Err() != nil {
			return t, ctx.Err() // stopping (or past the timeout): said there
		}
		l.cfg.Log.Error("plan", "revision", snap.rev.SHA, "error", err)
		return t, transient(fmt.Errorf("plan %s: %w", snap.rev.SHA, err))
	}
	// The guardrails that read the live accounts may deny it now.
	t.checked, t.outcome = o.Checked, o
	return t, nil
}

// refusal says why a candidate revision, evaluated and planned (or not,
// when its guardrails stopped it), is refused; nil when it is accepted.
func refusal(c *check.Checked, o *reconcile.Outcome) *RefusedError {
	switch {
	case !c.Valid():
		return &RefusedError{Verdict: VerdictInvalid, Findings: c.Findings()}
	case c.Denied():
		return &RefusedError{Verdict: VerdictDenied, Findings: c.Findings()}
	}
	if fs := declarationErrors(o); len(fs) > 0 {
		return &RefusedError{Verdict: VerdictInvalid, Findings: fs}
	}
	return nil
}

// enforce applies the plan of the revision enforced (unless a dry run),
// or, when its guardrails deny or fail at now, applies nothing and says so
// for every account; then publishes the reconcile.
func (l *Loop) enforce(ctx context.Context, snap *snapshot, t trialRun, start time.Time) error {
	c, o := t.checked, t.outcome
	if o == nil || !c.Valid() || c.Denied() {
		// Time can make a good revision denied (a rule on input.now),
		// or its guardrails fail (a rule that loops after a date).
		forced := "denied"
		if !c.Valid() {
			forced = "error"
		}
		r := l.summarize(c, nil, snap.rev, start, forced)
		l.publish(r)
		return r.err()
	}
	if l.cfg.DryRun {
		l.cfg.Planner.Observe(o)
	} else {
		l.cfg.Planner.Apply(ctx, o, l.recordChange)
	}
	r := l.summarize(c, o, snap.rev, start, "")
	l.publish(r)
	return r.err()
}

// declarationErrors are the findings of the accounts whose plan failed
// because of the repository.
func declarationErrors(o *reconcile.Outcome) []check.Finding {
	if o == nil {
		return nil
	}
	var out []check.Finding
	for _, ap := range o.Accounts {
		var de *reconcile.DeclarationError
		if errors.As(ap.Err, &de) {
			for _, d := range de.Diags {
				out = append(out, check.Finding{Severity: "error", Source: d.Pos.String(), Message: ap.Provider + ": " + d.Message})
			}
		}
	}
	return out
}

// selectRevision fetches the newest revision: a head not seen before is
// vetted, and refused unless it descends from the revision last applied
// (a force-push, unless AllowNonFastForward). When nothing is enforced yet
// (a restart) and the head is refused, history is walked back along first
// parents — never below the revision last applied — to the newest
// revision that passes, which becomes the candidate meanwhile.
func (l *Loop) selectRevision(ctx context.Context, now time.Time) error {
	head, err := l.cfg.Source.Fetch(ctx)
	if err != nil {
		l.cfg.Metrics.SourceFetch.WithLabelValues("error").Inc()
		l.Board.update(func(s *Status) { s.SourceError = err.Error() })
		l.cfg.Log.Warn("fetch the repository", "error", err, "enforcing", l.goodSHA())
		return transient(fmt.Errorf("fetch: %w", err))
	}
	l.cfg.Metrics.SourceFetch.WithLabelValues("success").Inc()
	l.Board.update(func(s *Status) { s.SourceError = "" })
	if !l.followed() {
		l.selectDirectory(ctx, head, now)
		return nil
	}
	if head.SHA == l.lastRev && l.good != nil {
		return nil
	}
	l.lastRev = head.SHA
	last := l.lastApplied()
	if last != "" && !l.cfg.AllowNonFastForward {
		if ok, err := l.cfg.Source.Descends(head.SHA, last); err != nil || !ok {
			why := fmt.Sprintf("%s does not descend from %s, the revision last applied: history was rewritten (a force-push?), so it could bring back access already revoked. It is refused; --allow-non-fast-forward accepts it", gitsource.Short(head.SHA), gitsource.Short(last))
			if err != nil {
				why = fmt.Sprintf("cannot tell whether %s descends from %s, the revision last applied: %v", gitsource.Short(head.SHA), gitsource.Short(last), err)
			}
			l.refuse(head, &RefusedError{Verdict: VerdictNonFastForward, Findings: []check.Finding{{Severity: "error", Message: why}}})
			return nil
		}
	}
	revs := []gitsource.Revision{head}
	if l.good == nil {
		if revs, err = l.cfg.Source.FirstParents(head.SHA, walkLimit); err != nil || len(revs) == 0 {
			revs = []gitsource.Revision{head}
		}
	}
	for i, rev := range revs {
		if l.refused[rev.SHA] {
			continue
		}
		if i > 0 && last != "" {
			if ok, err := l.cfg.Source.Descends(rev.SHA, last); err != nil || !ok {
				break // never below the revision last applied
			}
		}
		snap, why := l.vet(ctx, rev, now)
		if snap != nil {
			l.candidate = snap
			if i > 0 {
				l.cfg.Log.Warn("the head is refused: enforcing the newest good revision before it", "head", head.SHA,
					"revision", rev.SHA, "commits_back", i)
			}
			return nil
		}
		if i == 0 {
			l.refuse(rev, why)
		} else {
			l.markRefused(rev.SHA)
		}
	}
	return nil
}

// selectDirectory reads a directory source again (edits need no commit):
// the same files as the revision enforced change nothing; others are
// vetted, and become the candidate or are refused.
func (l *Loop) selectDirectory(ctx context.Context, head gitsource.Revision, now time.Time) {
	l.lastRev, l.candidate = head.SHA, nil
	src, diags, err := l.cfg.Source.Read(ctx, head)
	if err != nil {
		l.refuse(head, &RefusedError{Verdict: VerdictInvalid, Findings: []check.Finding{{Severity: "error", Message: err.Error()}}})
		return
	}
	digest := sourceDigest(src, diags)
	if l.good != nil && l.good.digest == digest {
		l.accept(l.good) // compiled already (and an earlier edit's refusal is over)
		return
	}
	if snap, why := l.compile(ctx, head, src, diags, digest, now); snap != nil {
		l.candidate = snap
	} else {
		l.refuse(head, why)
	}
}

// vet checks one fetched revision: signature, files, load, policy tests
// and guardrails at now. It returns the snapshot when the revision passes,
// or why not.
func (l *Loop) vet(ctx context.Context, rev gitsource.Revision, now time.Time) (*snapshot, *RefusedError) {
	if err := l.cfg.Source.Verify(rev.SHA); err != nil {
		return nil, &RefusedError{Verdict: VerdictUnverified, Findings: []check.Finding{{Severity: "error", Message: err.Error()}}}
	}
	src, diags, err := l.cfg.Source.Read(ctx, rev)
	if err != nil {
		return nil, &RefusedError{Verdict: VerdictInvalid, Findings: []check.Finding{{Severity: "error", Message: err.Error()}}}
	}
	return l.compile(ctx, rev, src, diags, "", now)
}

// compile compiles a revision's declarations and guardrails (once: the
// snapshot keeps them), runs its policy tests, and evaluates its
// guardrails at now.
func (l *Loop) compile(ctx context.Context, rev gitsource.Revision, src *desired.Source, diags desired.Diagnostics, digest string, now time.Time) (*snapshot, *RefusedError) {
	opts := l.cfg.Checks
	opts.RunTests = true
	compiled, err := check.Compile(ctx, src, diags, opts)
	if err != nil {
		return nil, &RefusedError{Verdict: VerdictInvalid, Findings: []check.Finding{{Severity: "error", Message: err.Error()}}}
	}
	c := compiled.At(ctx, now)
	switch {
	case !c.Valid():
		return nil, &RefusedError{Verdict: VerdictInvalid, Findings: c.Findings()}
	case c.Denied():
		return nil, &RefusedError{Verdict: VerdictDenied, Findings: c.Findings()}
	}
	return &snapshot{compiled: compiled, rev: rev, digest: digest}, nil
}

// sourceDigest identifies a directory's declarations as read: the same
// digest, the same revision.
func sourceDigest(src *desired.Source, diags desired.Diagnostics) string {
	h := sha256.New()
	for _, fs := range [][]desired.File{src.YAML, src.Rego} {
		for _, f := range fs {
			fmt.Fprintf(h, "%q %d\n", f.Path, len(f.Data))
			h.Write(f.Data)
		}
		h.Write([]byte{0})
	}
	for _, d := range diags {
		fmt.Fprintln(h, d.String())
	}
	return hex.EncodeToString(h.Sum(nil))
}

// refuse reports a revision that is not applied; the last good one stays
// enforced.
func (l *Loop) refuse(rev gitsource.Revision, why *RefusedError) {
	l.candidate = nil
	l.markRefused(rev.SHA)
	l.Board.update(func(s *Status) {
		s.BadRevision = &BadRevision{Revision: revisionStatus(rev), Result: why.Verdict, Findings: why.Findings}
	})
	l.cfg.Metrics.RevisionsRefused.WithLabelValues(string(why.Verdict)).Inc()
	l.cfg.Metrics.RevisionRefused.Set(1)
	attrs := []any{"revision", rev.SHA, "author", rev.Author, "result", why.Verdict, "findings", len(why.Findings), "enforcing", l.goodSHA()}
	l.cfg.Log.Warn("revision not applied", append(attrs, findingAttrs(why.Findings)...)...)
	l.notifyRefused(rev, why)
}

// findingAttrs are the first findings, for a log record.
func findingAttrs(fs []check.Finding) []any {
	var attrs []any
	for i, f := range fs {
		if i == 5 {
			return append(attrs, "more", len(fs)-5)
		}
		attrs = append(attrs, fmt.Sprintf("finding_%d", i+1), f.Source+": "+f.Message)
	}
	return attrs
}

// markRefused remembers a refused revision of followed history, not to
// try it again.
func (l *Loop) markRefused(sha string) {
	if sha != "" && l.followed() {
		l.refused[sha] = true
	}
}

// followed reports whether the source is history (a Git repository) rather
// than a directory read as it is.
func (l *Loop) followed() bool { return l.cfg.Source.Key() != "" }

// accept makes a planned candidate the last good revision.
func (l *Loop) accept(snap *snapshot) {
	m := l.cfg.Metrics
	if l.good != nil && l.good.rev.SHA != "" && l.good.rev.SHA != snap.rev.SHA {
		m.SourceRevision.DeleteLabelValues(l.good.rev.SHA)
	}
	if snap.rev.SHA != "" {
		m.SourceRevision.WithLabelValues(snap.rev.SHA).Set(1)
	}
	if l.good == nil || l.good.rev.SHA != snap.rev.SHA {
		l.cfg.Log.Info("revision accepted", "revision", snap.rev.SHA, "author", snap.rev.Author, "subject", snap.rev.Subject)
		l.notifyAccepted(snap.rev)
	}
	l.good, l.candidate = snap, nil
	if !l.followed() || snap.rev.SHA == l.lastRev {
		// The head itself is enforced: nothing refused any more. (A
		// revision found by walking back leaves the head's refusal.)
		l.Board.update(func(s *Status) { s.BadRevision = nil })
		m.RevisionRefused.Set(0)
	}
	if key := l.cfg.Source.Key(); key != "" {
		// Remembered (with a state file) so that after a restart a
		// force-push cannot bring an older revision back.
		l.cfg.Planner.Accepted(key, snap.rev.SHA)
	}
}

// lastApplied is the revision last applied: the one enforced, or after a
// restart the one the state remembers for this source.
func (l *Loop) lastApplied() string {
	if l.good != nil {
		return l.good.rev.SHA
	}
	return l.cfg.Planner.LastApplied(l.cfg.Source.Key())
}

func (l *Loop) goodSHA() string {
	if l.good == nil {
		return ""
	}
	return l.good.rev.SHA
}

// recordChange writes the audit record of an applied change, counts it,
// and shows it among the recent changes.
func (l *Loop) recordChange(ap *reconcile.AccountPlan, r reconcile.Result) {
	result := "success"
	attrs := []any{"audit", true, "account", ap.Provider, "account_id", ap.AccountID, "action", string(r.Change.Action),
		"email", r.Change.Email, "revision", l.goodSHA(), "commit_author", l.good.rev.Author,
		"grant_reason", strings.Join(r.Change.Reasons, "; ")}
	if r.Err != nil {
		result = "error"
		attrs = append(attrs, "error", r.Err.Error())
	}
	if r.Note != "" {
		attrs = append(attrs, "note", r.Note)
	}
	if r.Change.Group != "" {
		attrs = append(attrs, "user_group", r.Change.Group)
	}
	if d := r.Change.Drift; d != nil {
		attrs = append(attrs, "drift_actor", d.Actor, "drift_context", d.Context, "drift_at", d.At.UTC().Format(time.RFC3339),
			"drift_action", d.Action)
		if d.IP != "" {
			attrs = append(attrs, "drift_ip", d.IP)
		}
	}
	attrs = append(attrs, "result", result)
	l.cfg.Metrics.ChangesApplied.WithLabelValues(ap.Provider, string(r.Change.Action), result).Inc()
	rc := RecentChange{At: l.cfg.Now().UTC(), Account: ap.Provider, Action: string(r.Change.Action), Email: r.Change.Email, Group: r.Change.Group, Result: result}
	if d := r.Change.Drift; d != nil {
		rc.DriftActor, rc.DriftContext = d.Actor, d.Context
	}
	l.Board.update(func(s *Status) {
		s.Recent = append([]RecentChange{rc}, s.Recent...)
		if len(s.Recent) > maxRecent {
			s.Recent = s.Recent[:maxRecent]
		}
	})
	if r.Err != nil {
		l.cfg.Log.Error("change failed", attrs...)
	} else {
		l.cfg.Log.Info("change applied", attrs...)
	}
	l.notifyDrift(ap.Provider, r)
}

// runResult is one reconcile's outcome, from which the status, the
// metrics, the logs and the state are updated (publish).
type runResult struct {
	now      time.Time
	took     time.Duration
	rev      gitsource.Revision
	findings []check.Finding
	forced   string // every account's result, when the revision is denied or failing
	accounts []accountResult
	next     time.Time
	expiring map[string]map[string]int // provider -> window -> grants
	pending  map[string][2]float64     // provider -> (count, oldest seconds)
	dryRun   bool
	// outcome is the plan run summarized (nil when none was planned).
	outcome *reconcile.Outcome
}

type accountResult struct {
	AccountStatus
	took      time.Duration
	err       error
	outOfBand []cloudflare.AuditEntry
}

// memberStatus lists an account's live members with their grants, for
// the status page.
func memberStatus(ap *reconcile.AccountPlan, pending map[string]time.Time) ([]MemberStatus, int) {
	if ap.Live == nil || ap.Grants == nil {
		return nil, 0
	}
	show := func(a desired.Access) string { return ap.Display(a).String() }
	var out []MemberStatus
	for _, l := range ap.LiveMembers() {
		if len(out) == maxStatusMembers {
			return out, len(ap.Live.Members) - maxStatusMembers
		}
		ms := MemberStatus{Email: l.Email, Status: l.Status, Access: []string{}, Protected: slices.Contains(ap.ProtectedIDs, l.ID)}
		for _, a := range l.Access {
			ms.Access = append(ms.Access, show(a))
		}
		// Access through user groups is access too.
		for _, in := range l.Inherited {
			ms.Access = append(ms.Access, show(in.Access)+" (via user group "+in.Group+")")
		}
		if g, ok := ap.Grants[l.Email]; ok {
			ms.Grants, ms.Reasons = g.Sources, g.Reasons
		}
		if since, ok := pending[l.Email]; ok && l.Status == "pending" {
			t := since.UTC()
			ms.PendingSince = &t
		}
		out = append(out, ms)
	}
	return out, 0
}

// nextExpiries are the account's next 20 grants to expire. Only the
// grants that expire are expanded into bindings (it runs at every
// reconcile): a repository's bindings can be many.
func nextExpiries(repo *desired.Repo, ap *reconcile.AccountPlan, now time.Time) []ExpiryStatus {
	var out []ExpiryStatus
	seen := map[string]bool{}
	var bs []desired.Binding
	for _, g := range repo.Grants {
		if g.Expires.IsZero() || !g.ActiveAt(now) || !repo.GrantReaches(g, ap.Provider) {
			continue
		}
		bs = repo.AppendGrantBindings(bs[:0], g, now)
		for _, b := range bs {
			if b.Provider != ap.Provider {
				continue
			}
			e := ExpiryStatus{Email: b.Email, Access: ap.Display(b.Access).String(), Expires: b.Expires.UTC(), Source: b.Source.String()}
			if k := e.Email + "\x00" + e.Access; !seen[k] {
				seen[k] = true
				out = append(out, e)
			}
		}
	}
	slices.SortFunc(out, func(a, b ExpiryStatus) int {
		return cmp.Or(a.Expires.Compare(b.Expires), strings.Compare(a.Email, b.Email), strings.Compare(a.Access, b.Access))
	})
	return out[:min(len(out), 20)]
}

// accountStatus is what /status shows of an account's plan (its
// document): the result, what the plan leaves outside cfaccess's control,
// the drift it corrects, its counts.
func accountStatus(ad report.AccountDoc, applied bool, now time.Time) AccountStatus {
	a := AccountStatus{Account: ad.Account, AccountID: ad.AccountID, Name: ad.Name, LastReconcile: now, Result: "success",
		Breaker: ad.Breaker, NotChecked: ad.NotChecked, Error: ad.Error}
	if ad.Failed {
		a.Result = "error"
	}
	for _, x := range ad.Outside {
		switch x.Kind {
		case report.OutsideGroupMissing:
			a.Outside = append(a.Outside, x.Email+" is declared in user group "+x.Group+", owned by the identity provider, and not in it")
		case report.OutsideGroupAccess:
			a.Outside = append(a.Outside, x.Email+" holds "+joinAccess(x.Access)+" via user group "+x.Group)
		case report.OutsideOrgAdmin:
			a.Outside = append(a.Outside, x.Email+" is a Super Administrator of the organization")
		}
	}
	if !ad.Planned {
		return a
	}
	t := ad.Tally()
	a.Plan = &PlanSummary{Invite: t.Invite, Update: t.Update, Remove: t.Remove, Reinvite: t.Reinvite,
		Unmanaged: len(ad.Unmanaged), LosingAccess: t.LosingAccess}
	for _, cd := range ad.Changes {
		if d := cd.Drift; d != nil {
			a.Drift = append(a.Drift, DriftStatus{Email: cd.Email, Group: cd.Group, Change: cd.Action, Actor: d.Actor, Context: d.Context,
				IP: d.IP, At: d.At, Action: d.Action, Applied: applied && cd.Outcome == report.ChangeApplied})
		}
		if cd.Outcome != "" && cd.Outcome != report.ChangeApplied {
			a.Result, a.Error = "error", "a change failed: "+cmp.Or(cd.Failure, reconcile.ErrHeldBack.Error())
		}
	}
	if a.Result == "success" {
		// Not applied (a dry run): refused all the same.
		for _, cd := range ad.Changes {
			if cd.Refused != "" {
				a.Result, a.Error = "error", "a change is refused: "+cd.Refused
			}
		}
	}
	return a
}

// joinAccess lists accesses as people read them.
func joinAccess(as []report.AccessDoc) string {
	parts := make([]string, len(as))
	for i, x := range as {
		parts[i] = x.String()
	}
	return strings.Join(parts, ", ")
}

// accountErr is why an account's reconcile failed, for its kind and the
// logs: its plan's failure, the first change that failed, or (not
// applied) the last change refused.
func accountErr(ap *reconcile.AccountPlan) error {
	if ap.Err != nil {
		return ap.Err
	}
	for _, res := range ap.Results {
		if res.Err != nil {
			return res.Err
		}
	}
	var err error
	if ap.Plan != nil {
		for _, c := range ap.Plan.Changes {
			if msg := reconcile.Refusal(ap, c); msg != "" {
				err = fmt.Errorf("%w: %s", reconcile.ErrProtected, msg)
			}
		}
	}
	return err
}

// err is the reconcile's error: the accounts' failures, joined.
func (r *runResult) err() error {
	var errs []error
	for _, a := range r.accounts {
		if a.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.Account, a.err))
		}
	}
	if r.forced != "" {
		errs = append(errs, fmt.Errorf("the enforced revision is %s now", r.forced))
	}
	return errors.Join(errs...)
}

// summarize makes the result of a reconcile. forced, when set, is the
// result of every account (the enforced revision denied or failing).
func (l *Loop) summarize(c *check.Checked, o *reconcile.Outcome, rev gitsource.Revision, start time.Time, forced string) *runResult {
	now := c.Now
	if o != nil {
		c = o.Checked // with the violations on the live accounts
	}
	r := &runResult{now: now, took: l.cfg.Now().Sub(start), rev: rev, findings: c.Findings(), forced: forced,
		expiring: map[string]map[string]int{}, pending: map[string][2]float64{}, dryRun: l.cfg.DryRun, outcome: o}
	if c.Repo != nil {
		r.next = c.Repo.NextChange(now)
	}
	if o == nil {
		if c.Repo != nil {
			for id, pv := range c.Repo.Providers {
				if pv.Enabled {
					r.accounts = append(r.accounts, accountResult{AccountStatus: AccountStatus{Account: id, AccountID: pv.AccountID, LastReconcile: now, Result: forced}})
				}
			}
		}
		return r
	}
	doc := report.NewPlanDoc(o)
	for i, ap := range o.Accounts {
		a := accountResult{AccountStatus: accountStatus(doc.Accounts[i], doc.Applied, now), took: ap.Took, err: accountErr(ap)}
		if ap.ReadInfo.Read != "" {
			a.Read = &ReadStatus{Read: ap.ReadInfo.Read, Reason: ap.ReadInfo.Reason, LastFullRead: ap.ReadInfo.LastFullRead.UTC(),
				AuditLogError: ap.ReadInfo.AuditError, Note: ap.ReadInfo.Note}
			a.outOfBand = ap.ReadInfo.OutOfBand
			a.CredentialsElsewhere = ap.ReadInfo.Elsewhere
		}
		if ap.Live != nil {
			var oldest time.Duration
			pending := l.cfg.Planner.PendingSince(ap.AccountID)
			for _, since := range pending {
				oldest = max(oldest, now.Sub(since))
			}
			r.pending[ap.Provider] = [2]float64{float64(len(pending)), oldest.Seconds()}
		}
		if c.Repo != nil {
			r.expiring[ap.Provider] = expiring(c.Repo, ap.Provider, now)
			a.Expiring = nextExpiries(c.Repo, ap, now)
		}
		a.Members, a.MembersOmitted = memberStatus(ap, l.cfg.Planner.PendingSince(ap.AccountID))
		r.accounts = append(r.accounts, a)
	}
	return r
}

// publish updates the state, the status, the metrics and the logs from a
// reconcile's result.
func (l *Loop) publish(r *runResult) {
	l.noteFailures(r)
	l.recordState(r)
	l.publishStatus(r)
	l.publishMetrics(r)
	l.noteBreakers(r)
	l.noteGrants(r)
	if r.outcome != nil {
		l.cfg.Planner.Counted(r.outcome) // each out-of-band entry counted once
	}
	l.logResult(r)
}

func (l *Loop) recordState(r *runResult) {
	if l.cfg.Replicate != nil {
		l.cfg.Replicate(l.cfg.Planner.AppliedRevisions())
	}
	if l.cfg.StateFile == "" {
		return
	}
	if err := l.cfg.Planner.SaveState(l.cfg.StateFile, r.now); err != nil {
		l.cfg.Log.Error("save --state-file", "error", err)
	}
}

func (r *runResult) allOK() bool {
	if r.forced != "" || len(r.accounts) == 0 {
		return false
	}
	for _, a := range r.accounts {
		if a.Result != "success" {
			return false
		}
	}
	return true
}

// publishStatus updates what /status shows.
func (l *Loop) publishStatus(r *runResult) {
	l.Board.update(func(s *Status) {
		s.LastReconcile = r.now
		s.DryRun = r.dryRun
		s.Revision = revisionStatus(r.rev)
		s.Violations = nil
		for _, f := range r.findings {
			if f.Policy != "" || f.Severity == "deny" {
				s.Violations = append(s.Violations, f)
			}
		}
		s.NextGrantChange = nil
		if !r.next.IsZero() {
			n := r.next.UTC()
			s.NextGrantChange = &n
		}
		s.Accounts = nil
		for _, a := range r.accounts {
			s.Accounts = append(s.Accounts, a.AccountStatus)
		}
		s.Ready = s.Ready || r.allOK()
	})
}

// publishMetrics updates the metrics.
func (l *Loop) publishMetrics(r *runResult) {
	m := l.cfg.Metrics
	deny, warn := 0, 0
	for _, f := range r.findings {
		switch f.Severity {
		case "deny":
			deny++
		case "warn", "warning":
			warn++
		}
	}
	m.PolicyViolations.WithLabelValues("repository", "deny").Set(float64(deny))
	m.PolicyViolations.WithLabelValues("repository", "warn").Set(float64(warn))
	for _, a := range r.accounts {
		m.ReconcileTotal.WithLabelValues(a.Account, a.Result).Inc()
		since := 0.0
		if a.FailingSince != nil {
			since = float64(a.FailingSince.Unix())
		}
		m.FailingSince.WithLabelValues(a.Account).Set(since)
		if r.forced != "" {
			continue
		}
		m.ReconcileDuration.WithLabelValues(a.Account).Observe(a.took.Seconds())
		if a.Result == "success" {
			m.LastSuccess.WithLabelValues(a.Account).Set(float64(r.now.Unix()))
		}
		m.BreakerTripped.WithLabelValues(a.Account).Set(metrics.Bool(a.Breaker != ""))
		if a.Read != nil {
			m.LiveReads.WithLabelValues(a.Account, string(a.Read.Read), string(a.Read.Reason)).Inc()
		}
		// Born at zero, so that the alert's increase() sees the first
		// change made with cfaccess's own credentials by someone else.
		for _, ctx := range []string{"api_token", "api_key"} {
			m.OutOfBandChanges.WithLabelValues(a.Account, reconcile.OurCredentialsActor, ctx)
		}
		for _, e := range a.outOfBand {
			actor := cmp.Or(e.ActorType, "unknown")
			if e.Origin == cloudflare.OurCredentials {
				actor = reconcile.OurCredentialsActor
				l.cfg.Log.Error("a change was made with cfaccess's own credentials that this cfaccess did not make: a leaked token, or a second process running with it",
					"account", a.Account, "account_id", a.AccountID, "at", e.Time.UTC().Format(time.RFC3339), "action", e.Action,
					"member_id", e.MemberID, "user_group_id", e.GroupID, "actor", e.Actor(), "ip", e.IP, "user_agent", e.UserAgent, "audit_entry", e.ID)
				l.notifyElsewhere(a.Account, e)
			}
			m.OutOfBandChanges.WithLabelValues(a.Account, actor, cmp.Or(e.ActorContext, "unknown")).Inc()
		}
		if p := a.Plan; p != nil {
			m.DriftMembers.WithLabelValues(a.Account, "invite").Set(float64(p.Invite + p.Reinvite))
			m.DriftMembers.WithLabelValues(a.Account, "update").Set(float64(p.Update))
			m.DriftMembers.WithLabelValues(a.Account, "remove").Set(float64(p.Remove))
			m.DriftMembers.WithLabelValues(a.Account, "unmanaged").Set(float64(p.Unmanaged))
		}
		if p, ok := r.pending[a.Account]; ok {
			m.PendingInvites.WithLabelValues(a.Account).Set(p[0])
			m.OldestPendingInvite.WithLabelValues(a.Account).Set(p[1])
		}
		for window, n := range r.expiring[a.Account] {
			m.GrantsExpiring.WithLabelValues(a.Account, window).Set(float64(n))
		}
	}
}

// noteFailures stamps each account's result with the first failure in a
// row (FailingSince, nil after a success), which /status and
// cfaccess_account_failing_since_timestamp_seconds show (the alert
// CfaccessReconcileFailing fires when it is 15 minutes old).
func (l *Loop) noteFailures(r *runResult) {
	for i := range r.accounts {
		a := &r.accounts[i]
		since, known := l.failingSince[a.Account]
		switch {
		case a.Result == "success":
			delete(l.failingSince, a.Account)
			continue
		case !known:
			since = r.now.UTC()
			l.failingSince[a.Account] = since
		}
		a.FailingSince = &since
	}
}

// logResult writes a reconcile's failures at WARN (transient) or ERROR,
// and its summary.
func (l *Loop) logResult(r *runResult) {
	log := l.cfg.Log
	if r.forced != "" {
		attrs := []any{"result", r.forced, "revision", r.rev.SHA, "findings", len(r.findings)}
		log.Error("the enforced revision is denied or its guardrails fail now: nothing applied", append(attrs, findingAttrs(r.findings)...)...)
	}
	for _, a := range r.accounts {
		switch {
		case r.forced != "", a.Result == "success":
		case a.Breaker != "":
			log.Error("account not applied: the mass-removal breaker tripped; a person must look (apply --allow-mass-removal if intended)",
				"account", a.Account, "account_id", a.AccountID, "breaker", a.Breaker, "revision", r.rev.SHA)
		default:
			level := slog.LevelError
			if KindOf(a.err) == Transient {
				level = slog.LevelWarn
			}
			log.Log(context.Background(), level, "account reconcile failed", "account", a.Account, "account_id", a.AccountID,
				"result", a.Result, "error", a.Error, "revision", r.rev.SHA)
		}
	}
	level := slog.LevelInfo
	if !r.allOK() {
		level = slog.LevelWarn
	}
	log.Log(context.Background(), level, "reconciled", "revision", r.rev.SHA, "accounts", len(r.accounts), "ok", r.allOK(), "duration", r.took.String())
}

// expiring counts the active grants of a provider expiring within 1h, 24h
// and 7d.
func expiring(repo *desired.Repo, pid string, now time.Time) map[string]int {
	windows := map[string]time.Duration{"1h": time.Hour, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour}
	counts := map[string]int{"1h": 0, "24h": 0, "7d": 0}
	for _, g := range repo.Grants {
		if g.Expires.IsZero() || !g.ActiveAt(now) || !repo.GrantReaches(g, pid) {
			continue
		}
		for name, w := range windows {
			if g.Expires.Sub(now) <= w {
				counts[name]++
			}
		}
	}
	return counts
}
