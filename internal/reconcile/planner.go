package reconcile

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/diff"
	"github.com/cfaccess/reconciler/internal/gitsource"
	"github.com/cfaccess/reconciler/internal/policy"
)

// Config says how to reach Cloudflare.
type Config struct {
	// APIURL is the API's base URL (cloudflare.DefaultBaseURL when "").
	APIURL string
	// Getenv reads credentials from the environment.
	Getenv func(string) string
	// TokenFile, when set, holds the token; it is read again for every
	// plan, so a rotated file is picked up without a restart.
	TokenFile string
	// RateLimit is the requests per 5 minutes allowed per credentials.
	RateLimit int
	// MaxRetries of one request (0: none).
	MaxRetries int
	// Timeout of one request attempt.
	Timeout time.Duration
	// Transport carries the requests (http.DefaultTransport when nil):
	// tests reach the fake in-process through it.
	Transport http.RoundTripper
	// Observe is told of every request attempt (metrics).
	Observe func(method, endpoint, code string, d time.Duration)
}

// Planner plans accounts and keeps what is learnt across plans of one
// process: a rate limiter per credentials (Cloudflare's budget is per
// user), each token's owner (read once), the ids of protected members, and
// the pending-invitation state.
type Planner struct {
	cfg Config
	// State remembers since when invitations are pending (and the revision
	// last applied); nil keeps nothing.
	State *State
	// Detect, when set, reuses each account's last read while its audit
	// log shows no change (the daemon); nil reads in full every time.
	Detect *Detection
	// AttributionWindow is how far back a plan with no earlier read of
	// the account looks in the audit log for who made the drift it
	// corrects (0: it does not look).
	AttributionWindow time.Duration
	// UserAgent is sent with every request, with the revision planned
	// appended: cfaccess's changes are known by it in the audit log.
	UserAgent string

	mu           sync.Mutex
	watches      map[string]*watch
	identities   map[string]cloudflare.Identity
	limiters     map[string]*cloudflare.Limiter
	owners       map[string]string
	protectedIDs map[string]map[string]bool
}

// NewPlanner returns a planner for cfg.
func NewPlanner(cfg Config) *Planner {
	return &Planner{cfg: cfg, limiters: map[string]*cloudflare.Limiter{}, owners: map[string]string{},
		protectedIDs: map[string]map[string]bool{}, watches: map[string]*watch{}, identities: map[string]cloudflare.Identity{},
		AttributionWindow: DefaultAttributionWindow}
}

// Client returns a client for an account whose provider names tokenEnv
// ("" for the global credentials).
func (p *Planner) Client(tokenEnv string) (*cloudflare.Client, cloudflare.Credentials, error) {
	return p.clientFor(tokenEnv, "")
}

// clientFor is Client stamping a revision on the User-Agent.
func (p *Planner) clientFor(tokenEnv, revision string) (*cloudflare.Client, cloudflare.Credentials, error) {
	creds, err := cloudflare.FindCredentials(p.getenv, tokenEnv, p.cfg.TokenFile)
	if err != nil {
		return nil, creds, err
	}
	p.mu.Lock()
	l, ok := p.limiters[creds.Key()]
	if !ok {
		l = cloudflare.NewLimiter(max(p.cfg.RateLimit, 1), 5*time.Minute)
		p.limiters[creds.Key()] = l
	}
	p.mu.Unlock()
	retries := p.cfg.MaxRetries
	if retries <= 0 {
		retries = -1 // the client's "none"
	}
	ua := p.UserAgent
	if ua == "" {
		ua = cloudflare.UserAgentPrefix + "dev"
	}
	if revision != "" {
		ua += " (revision " + revision + ")"
	}
	var journal *cloudflare.Journal
	if p.State != nil {
		journal = p.State.Journal
	}
	return cloudflare.New(cloudflare.Config{BaseURL: p.cfg.APIURL, Credentials: creds, Limiter: l, UserAgent: ua,
		HTTPClient: &http.Client{Timeout: p.cfg.Timeout, Transport: p.cfg.Transport},
		MaxRetries: retries, Observe: p.cfg.Observe, Journal: journal}), creds, nil
}

func (p *Planner) getenv(k string) string {
	if p.cfg.Getenv == nil {
		return ""
	}
	return p.cfg.Getenv(k)
}

// PlanOptions select and tune a plan.
type PlanOptions struct {
	// Provider, when set, plans that provider's account only.
	Provider         string
	AllowMassRemoval bool
	// ReinviteAfter re-sends invitations pending longer (0: never; needs
	// State).
	ReinviteAfter time.Duration
	// Grants keeps, in each account's plan, the grants behind each
	// declared member (the daemon's status page shows them).
	Grants bool
}

// Outcome is a plan run: the checked repository, the revision, and each
// account's plan, with the guardrails evaluated against the live accounts;
// after apply, each account's results.
type Outcome struct {
	Checked  *Checked
	Revision gitsource.Revision
	Accounts []*AccountPlan
	// Results are the applied changes per provider (apply only).
	Results map[string][]Result
	Applied bool
}

// Changes counts the planned changes of every account.
func (o *Outcome) Changes() int {
	n := 0
	for _, ap := range o.Accounts {
		if ap.Plan != nil {
			n += len(ap.Plan.Changes)
		}
	}
	return n
}

// FailedChanges counts the applied changes that failed (not those held
// back by a guardrail on the live state: HeldBack).
func (o *Outcome) FailedChanges() int {
	n := 0
	for _, rs := range o.Results {
		for _, r := range rs {
			if r.Err != nil && !errors.Is(r.Err, ErrHeldBack) {
				n++
			}
		}
	}
	return n
}

// HeldBack counts the changes giving access that a guardrail on the live
// state held back.
func (o *Outcome) HeldBack() int {
	n := 0
	for _, rs := range o.Results {
		for _, r := range rs {
			if errors.Is(r.Err, ErrHeldBack) {
				n++
			}
		}
	}
	return n
}

// Refused counts the changes refused for taking access from a protected
// member, in every account's plan.
func (o *Outcome) Refused() int {
	n := 0
	for _, ap := range o.Accounts {
		if ap.Plan != nil {
			n += ap.Plan.Refused()
		}
	}
	return n
}

// Failed reports whether an account could not be planned.
func (o *Outcome) Failed() bool {
	return slices.ContainsFunc(o.Accounts, func(ap *AccountPlan) bool { return ap.Err != nil })
}

// Apply applies the plan of every account that was planned (an account
// that failed is left alone), unless the repository is invalid or denied.
// report, when set, is told of each change.
func (o *Outcome) Apply(ctx context.Context, report func(*AccountPlan, Result)) {
	o.Results = map[string][]Result{}
	if !o.Checked.Valid() || o.Checked.Denied() {
		return
	}
	o.Applied = true
	hold := o.Checked.LiveDenied()
	for _, ap := range o.Accounts {
		if ap.Err != nil || ap.Plan == nil || ctx.Err() != nil {
			continue
		}
		start := time.Now()
		o.Results[ap.Provider] = apply(ctx, ap.Client, ap, hold, func(r Result) {
			if report != nil {
				report(ap, r)
			}
		})
		if ap.watch != nil && len(o.Results[ap.Provider]) > 0 {
			ap.watch.dirty = true // read in full next time
			for _, r := range o.Results[ap.Provider] {
				if r.Err == nil {
					noteOwn(ap.watch.own, ap.planned, r.Change.MemberID, r.Change.Email, r.Change.GroupID)
					noteOwn(ap.watch.own, ap.planned, r.MemberID, "", "")
				}
			}
		}
		ap.Took += time.Since(start)
	}
}

// Plan plans every selected account of a checked repository and evaluates
// the guardrails again with the live accounts and plans. Nothing is
// written. The error is for options that cannot work (an unknown
// provider) or guardrails that fail.
func (p *Planner) Plan(ctx context.Context, c *Checked, rev gitsource.Revision, now time.Time, opts PlanOptions) (*Outcome, error) {
	o := &Outcome{Checked: c, Revision: rev}
	if !c.Valid() || c.Denied() {
		return o, nil
	}
	var ids []string
	for id, pv := range c.Repo.Providers {
		if pv.Enabled && (opts.Provider == "" || opts.Provider == id) {
			ids = append(ids, id)
		}
	}
	if opts.Provider != "" && len(ids) == 0 {
		if _, exists := c.Repo.Providers[opts.Provider]; exists {
			return nil, fmt.Errorf("--provider %q is disabled (enabled: false)", opts.Provider)
		}
		return nil, fmt.Errorf("--provider %q is not defined in the repository", opts.Provider)
	}
	slices.Sort(ids)
	if !c.UsesLive() {
		// The guardrails will not run again: free their input before the
		// accounts are read (the two together are most of a large plan's
		// memory).
		c.ReleaseInput()
	}
	ropts := Options{AllowMassRemoval: opts.AllowMassRemoval, KeepGrants: opts.Grants}
	if p.State != nil && opts.ReinviteAfter > 0 {
		ropts.Reinvite = func(accountID string, l diff.Live) bool { return p.State.Due(accountID, l, now, opts.ReinviteAfter) }
	}
	var live []policy.LiveAccount
	for _, id := range ids {
		pv := c.Repo.Providers[id]
		// Credentials are looked up for every plan, so a rotated token
		// file is picked up without a restart.
		stamp := rev.SHA
		if rev.Modified && stamp != "" {
			stamp += ", modified"
		}
		client, creds, err := p.clientFor(pv.APITokenEnv, stamp)
		if err != nil {
			o.Accounts = append(o.Accounts, &AccountPlan{Provider: id, AccountID: pv.AccountID, Err: err})
			continue
		}
		aopts := ropts
		p.mu.Lock()
		aopts.Owner, aopts.OwnerKnown = p.owners[creds.Key()]
		aopts.ProtectedIDs = p.protectedIDs[pv.AccountID]
		p.mu.Unlock()
		ap := p.planAccount(ctx, client, creds.Key(), c.Repo, id, now, aopts, opts.ReinviteAfter)
		p.remember(creds, pv.AccountID, ap)
		o.Accounts = append(o.Accounts, ap)
		if ap.Live != nil && ap.Plan != nil {
			live = append(live, liveAccount(ap))
		}
	}
	// The guardrails that read the live accounts and the plans: nothing is
	// written before they pass.
	if err := c.EvalLive(ctx, live); err != nil {
		return nil, fmt.Errorf("evaluate guardrails: %w", err)
	}
	return o, nil
}

// planAccount reads an account — or reuses its last read, when the audit
// log shows no change (Detect) — and plans it, naming who made the drift
// each change corrects.
func (p *Planner) planAccount(ctx context.Context, client *cloudflare.Client, credsKey string, repo *desired.Repo, pid string, now time.Time, opts Options, reinviteAfter time.Duration) *AccountPlan {
	pv := repo.Providers[pid]
	ro := cloudflare.ReadOptions{Zones: zonesOf(repo, pid), OrganizationID: pv.OrganizationID}
	key := readKey(ro)
	w := p.watchOf(credsKey + "/" + pv.AccountID)
	judge := func() (func([]cloudflare.AuditEntry) []cloudflare.Origin, error) {
		return p.judge(ctx, client, credsKey, pv.AccountID)
	}
	live, entries, info := p.decide(ctx, client, w, pv.AccountID, key, judge, now)
	if info.Read == "partial" {
		if err := client.RefreshMembers(ctx, live, info.refresh); err != nil {
			// Read whole instead: the log named something a member read
			// cannot settle.
			live, info.Read, info.LastFullRead, info.Note = nil, "full", now, "a partial read was given up: "+err.Error()
		} else {
			for _, e := range info.fresh {
				w.handled[e.ID] = e.Time
			}
			w.watermark = now
			w.remember(live)
		}
	}
	if live == nil {
		w.acct = nil // not kept through the new read
		var err error
		if live, err = client.ReadAccount(ctx, pv.AccountID, ro); err != nil {
			ap := &AccountPlan{Provider: pid, AccountID: pv.AccountID, Client: client, Err: err, ReadInfo: info}
			return ap
		}
		margin := time.Duration(0)
		if p.Detect != nil {
			margin = p.Detect.Margin
		}
		w.read(live, key, now, entries, p.Detect != nil, margin)
	}
	p.learnInvitations(ctx, client, live, now, invitationWindow(reinviteAfter))
	opts.Live = live
	ap := Plan(ctx, client, repo, pid, now, opts)
	ap.ReadInfo, ap.watch = info, w
	ap.planned = now
	own := w.own
	if ap.Plan != nil && len(ap.Plan.Changes) > 0 && (info.Reason == "first" || info.Reason == "disabled") && p.AttributionWindow > 0 {
		// No earlier read to bound the window: look back a while, with
		// cfaccess's own changes, which tell drift already corrected.
		if j, err := judge(); err == nil {
			entries, own = lookBack(ctx, client, pv.AccountID, now.Add(-p.AttributionWindow), now, j, own)
		}
	}
	if ap.Plan != nil {
		w.remember(live)
		attribute(ap.Plan, w.attribution(entries), w.emails, own)
	}
	return ap
}

// remember keeps what a plan learnt: the token's owner (it never
// changes) and the ids of protected members.
func (p *Planner) remember(creds cloudflare.Credentials, accountID string, ap *AccountPlan) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ap.Plan != nil { // the owner was read
		p.owners[creds.Key()] = ap.Owner
	}
	if len(ap.ProtectedIDs) > 0 && p.protectedIDs[accountID] == nil {
		p.protectedIDs[accountID] = map[string]bool{}
	}
	for _, id := range ap.ProtectedIDs {
		p.protectedIDs[accountID][id] = true
	}
}

// liveAccount is what guardrails see of an account.
func liveAccount(ap *AccountPlan) policy.LiveAccount {
	la := policy.LiveAccount{Provider: ap.Provider}
	display := func(as []desired.Access) []desired.Access {
		out := make([]desired.Access, len(as))
		for i, a := range as {
			out[i] = ap.Display(a)
		}
		return out
	}
	for _, l := range Lives(ap.Live) {
		lm := policy.LiveMember{Email: l.Email, Status: l.Status, Access: display(l.Access)}
		for _, in := range l.Inherited {
			lm.Inherited = append(lm.Inherited, policy.InheritedAccess{Access: display([]desired.Access{in.Access})[0], Group: in.Group})
		}
		la.Members = append(la.Members, lm)
	}
	for i, m := range ap.Live.Members {
		la.Members[i].TwoFactor = m.TwoFactor
		la.Members[i].Protected = slices.Contains(ap.ProtectedIDs, m.ID)
	}
	for _, c := range ap.Plan.Changes {
		pc := policy.PlanChange{Action: string(c.Action), Email: c.Email, Add: display(c.Add), Remove: display(c.Remove), Group: c.Group}
		if d := c.Drift; d != nil {
			pc.Drift = &policy.ChangeDrift{Actor: d.Actor, ActorType: d.ActorType, Context: d.Context, At: d.At.UTC().Format(time.RFC3339)}
		}
		la.Changes = append(la.Changes, pc)
	}
	for _, m := range ap.Live.OrgAdmins {
		la.OrgAdmins = append(la.OrgAdmins, m.Email)
	}
	for _, l := range ap.Plan.Losing {
		if !l.Protected {
			la.LosingAccess = append(la.LosingAccess, l.Email)
		}
	}
	return la
}
