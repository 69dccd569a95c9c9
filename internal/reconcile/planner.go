package reconcile

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/diff"
	"github.com/cfaccess/reconciler/internal/gitsource"
	"github.com/cfaccess/reconciler/internal/policy"
)

// account is what reconciling needs of a Cloudflare account's API, the
// shape of external-dns's Provider{Records, ApplyChanges}: reading the
// account (whole, or some members again), its token's owner, the audit
// log and the credentials it names, and a writer bound to one read.
// *cloudflare.Client has it.
type account interface {
	ReadAccount(ctx context.Context, accountID string, opts cloudflare.ReadOptions) (*cloudflare.Account, error)
	RefreshMembers(ctx context.Context, acct *cloudflare.Account, changes []cloudflare.MemberChange) error
	Owner(ctx context.Context) (string, error)
	AuditLog(ctx context.Context, accountID string, q cloudflare.AuditQuery) (cloudflare.AuditResult, error)
	Identity(ctx context.Context, accountID string) (cloudflare.Identity, error)
	Writer(live *cloudflare.Account) *cloudflare.Writer
}

var _ account = (*cloudflare.Client)(nil)

// Planner plans accounts and applies their plans, and keeps what is
// learnt across plans of one process: each token's owner and identity
// (read once), the ids of protected members, each account's last read
// (readCache), and the state (State). It is the one writer of all of
// these.
type Planner struct {
	clients *cloudflare.Clients
	state   *State
	// Detect, when set, reuses each account's last read while its audit
	// log shows no change (the daemon); nil reads in full every time.
	Detect *Detection
	// AttributionWindow is how far back a plan with no earlier read of
	// the account looks in the audit log for who made the drift it
	// corrects (0: it does not look).
	AttributionWindow time.Duration

	mu           sync.Mutex
	caches       map[string]*readCache
	identities   map[string]cloudflare.Identity
	owners       map[string]string
	protectedIDs map[string]map[string]bool
}

// NewPlanner returns a planner whose clients come from clients, with
// state (NewState when nil), whose journal records every write: cfaccess
// knows its own changes in the audit log by what it wrote.
func NewPlanner(clients *cloudflare.Clients, state *State) *Planner {
	if state == nil {
		state = NewState(time.Now)
	}
	return &Planner{clients: clients, state: state, owners: map[string]string{}, protectedIDs: map[string]map[string]bool{},
		caches: map[string]*readCache{}, identities: map[string]cloudflare.Identity{}, AttributionWindow: DefaultAttributionWindow}
}

// PlanOptions select and tune a plan.
type PlanOptions struct {
	// Provider, when set, plans that provider's account only.
	Provider         string
	AllowMassRemoval bool
	// ReinviteAfter re-sends invitations pending longer (0: never).
	ReinviteAfter time.Duration
	// Grants keeps, in each account's plan, the grants behind each
	// declared member (the daemon's status page shows them).
	Grants bool
}

// Outcome is a plan run: the checked repository, with the guardrails
// evaluated again against the live accounts and the plans, the revision,
// and each account's plan; after apply, each account's results are on its
// plan.
type Outcome struct {
	// Checked is the repository as checked, its Violations those of the
	// guardrails evaluated with the live accounts (a new value: the
	// Checked planned is not changed).
	Checked  *check.Checked
	Revision gitsource.Revision
	// Now is the instant planned for.
	Now      time.Time
	Accounts []*AccountPlan
	Applied  bool
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
	return o.countResults(func(r Result) bool { return r.Err != nil && !errors.Is(r.Err, ErrHeldBack) })
}

// HeldBack counts the changes giving access that a guardrail on the live
// state held back.
func (o *Outcome) HeldBack() int {
	return o.countResults(func(r Result) bool { return errors.Is(r.Err, ErrHeldBack) })
}

func (o *Outcome) countResults(f func(Result) bool) int {
	n := 0
	for _, ap := range o.Accounts {
		for _, r := range ap.Results {
			if f(r) {
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

// Plan plans every selected account of a checked repository and evaluates
// the guardrails again with the live accounts and plans (Outcome's
// Violations). Nothing is written. The error is for options that cannot
// work (an unknown provider) or guardrails that fail.
func (p *Planner) Plan(ctx context.Context, c *check.Checked, rev gitsource.Revision, now time.Time, opts PlanOptions) (*Outcome, error) {
	o := &Outcome{Checked: c, Revision: rev, Now: now}
	if !c.Valid() || c.Denied() {
		return o, nil
	}
	ids, err := c.Repo.EnabledProviders(opts.Provider)
	if err != nil {
		return nil, err
	}
	aopts := accountOptions{allowMassRemoval: opts.AllowMassRemoval, keepGrants: opts.Grants}
	if opts.ReinviteAfter > 0 {
		aopts.reinvite = func(accountID string, l diff.Live) bool { return p.state.due(accountID, l, now, opts.ReinviteAfter) }
	}
	var live []policy.LiveAccount
	for _, id := range ids {
		ap := p.planAccount(ctx, c.Repo, id, revisionStamp(rev), now, aopts, opts.ReinviteAfter)
		o.Accounts = append(o.Accounts, ap)
		if ap.Live != nil && ap.Plan != nil {
			live = append(live, liveAccount(ap))
		}
	}
	// The guardrails that read the live accounts and the plans: nothing is
	// written before they pass.
	vs, err := c.EvalLive(ctx, live)
	if err != nil {
		return nil, fmt.Errorf("evaluate guardrails: %w", err)
	}
	o.Checked = c.WithViolations(vs)
	return o, nil
}

// revisionStamp is the revision as the User-Agent names it.
func revisionStamp(rev gitsource.Revision) string {
	if rev.Modified && rev.SHA != "" {
		return rev.SHA + ", modified"
	}
	return rev.SHA
}

// planAccount reads an account — or reuses its last read, when the audit
// log shows no change (Detect) — and plans it, naming who made the drift
// each change corrects.
func (p *Planner) planAccount(ctx context.Context, repo *desired.Repo, pid, stamp string, now time.Time, opts accountOptions, reinviteAfter time.Duration) *AccountPlan {
	pv := repo.Providers[pid]
	// Credentials are looked up for every plan, so a rotated token file
	// is picked up without a restart.
	client, creds, err := p.clients.For(pv.APITokenEnv, stamp, p.state.Journal)
	if err != nil {
		return &AccountPlan{Provider: pid, AccountID: pv.AccountID, Err: err}
	}
	start := time.Now()
	key := creds.Key() + "/" + pv.AccountID
	cache := p.cacheOf(key)
	judge := func() (judgeFunc, error) { return p.judge(ctx, client, creds.Key(), pv.AccountID) }
	ro := cloudflare.ReadOptions{Zones: zonesOf(repo, pid), OrganizationID: pv.OrganizationID}
	live, entries, info := cache.read(ctx, client, pv.AccountID, ro, judge, now, p.Detect)
	ap := &AccountPlan{Provider: pid, AccountID: pv.AccountID, ReadInfo: info, cacheKey: key}
	defer func() { ap.Took = time.Since(start) }()
	if live == nil {
		ap.Err = info.err
		return ap
	}
	p.learnInvitations(ctx, client, live, now, invitationWindow(reinviteAfter))
	p.mu.Lock()
	opts.owner, opts.ownerKnown = p.owners[creds.Key()]
	opts.protectedIDs = p.protectedIDs[pv.AccountID]
	p.mu.Unlock()
	in := prepare(ctx, client.Owner, repo, pid, now, live, opts, ap)
	defer p.remember(creds, pv.AccountID, ap)
	if in == nil {
		return ap
	}
	own := cache.ownTimes()
	ap.Plan, ap.Err = in.plan(cache.drift(entries, own))
	if ap.Plan != nil && len(ap.Plan.Changes) > 0 && (info.Reason == ReasonFirst || info.Reason == ReasonDisabled) && p.AttributionWindow > 0 {
		// No earlier read to bound the window: look back a while, with
		// cfaccess's own changes, which tell drift already corrected; the
		// plan is computed again with who made its drift (its inputs are
		// kept: only the diff runs twice, on a first read with changes).
		if j, err := judge(); err == nil {
			entries, own = lookBack(ctx, client, pv.AccountID, now.Add(-p.AttributionWindow), now, j, own)
			ap.Plan, ap.Err = in.plan(cache.drift(entries, own))
		}
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

// Apply applies the plan of every account that was planned (an account
// that failed is left alone), unless the repository is invalid or denied;
// each account's results go on its plan. onChange, when set, is told of
// each change. The state then records the invitations sent.
func (p *Planner) Apply(ctx context.Context, o *Outcome, onChange func(*AccountPlan, Result)) {
	if !o.Checked.Valid() || o.Checked.Denied() {
		return
	}
	o.Applied = true
	hold := o.Checked.LiveDenied()
	repo := o.Checked.Repo
	for _, ap := range o.Accounts {
		if ap.Err != nil || ap.Plan == nil || ctx.Err() != nil {
			continue
		}
		start := time.Now()
		client, _, err := p.clients.For(repo.Providers[ap.Provider].APITokenEnv, revisionStamp(o.Revision), p.state.Journal)
		var w changeWriter = failingWriter{err}
		if err == nil {
			w = client.Writer(ap.Live)
		}
		ap.Results = apply(ctx, w, ap, hold, func(r Result) {
			if onChange != nil {
				onChange(ap, r)
			}
		})
		ap.Took += time.Since(start)
		if len(ap.Results) > 0 {
			p.cacheOf(ap.cacheKey).applied(ap.Results, o.Now)
		}
	}
	p.state.record(o)
}

// failingWriter fails every change: the credentials to write with could
// not be had.
type failingWriter struct{ err error }

func (f failingWriter) Apply(context.Context, diff.Change) (cloudflare.Applied, error) {
	return cloudflare.Applied{}, f.err
}

// Observe records what a plan that is not applied saw (a dry run): the
// members pending since when.
func (p *Planner) Observe(o *Outcome) { p.state.record(o) }

// Counted acknowledges that the out-of-band entries of an outcome's reads
// are counted in the metrics: no later read reports them again.
func (p *Planner) Counted(o *Outcome) {
	for _, ap := range o.Accounts {
		if ap.cacheKey != "" && len(ap.ReadInfo.OutOfBand) > 0 {
			p.cacheOf(ap.cacheKey).counted(ap.ReadInfo.OutOfBand)
		}
	}
}

// Accepted records the revision enforced for a followed source (its
// State key): after a restart too, a head that does not descend from it
// is refused.
func (p *Planner) Accepted(source, sha string) { p.state.Applied[source] = sha }

// LastApplied is the revision last enforced for a followed source ("" for
// none).
func (p *Planner) LastApplied(source string) string { return p.state.Applied[source] }

// AppliedRevisions is the revision last enforced per followed source (a
// copy).
func (p *Planner) AppliedRevisions() map[string]string { return maps.Clone(p.state.Applied) }

// PendingSince is since when each pending member of an account has been
// pending, by email (read only).
func (p *Planner) PendingSince(accountID string) map[string]time.Time {
	return p.state.Pending[accountID]
}

// SaveState writes the state to path at now, atomically.
func (p *Planner) SaveState(path string, now time.Time) error { return p.state.save(path, now) }

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
	for _, l := range lives(ap.Live) {
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
