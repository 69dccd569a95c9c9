package evidence

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/gitsource"
)

// Report is the evidence for a period.
type Report struct {
	Since, Until time.Time
	Accounts     []Account
}

// Account is one account's changes in the period.
type Account struct {
	Provider, AccountID string
	// Credentials says how cfaccess's credentials were known (Options),
	// NoApproval why nothing could be approved ("" when they were known),
	// Doubt why the credentials known may not be cfaccess's.
	Credentials, NoApproval, Doubt string
	Changes                        []Change
	Summary                        Summary
	// Error is why the account's audit log could not be read (nothing
	// else is then said of it); Truncated that it had more entries than
	// were read.
	Error     string
	Truncated bool
}

// Approval says whether a change was approved through Git.
type Approval string

const (
	// Approved: made with cfaccess's credentials (Cloudflare says so), from
	// a revision on the followed branch, and explained by the repository
	// at that revision.
	Approved Approval = "git"
	// Unverified: made with cfaccess's credentials, but not proven
	// approved (Why says which check failed): a checkout with uncommitted
	// changes, a revision off the branch, access the revision does not
	// grant — or someone else holding the credentials. Also a change that
	// claims to be cfaccess's when its credentials are not known.
	Unverified Approval = "unverified"
	// OutOfBand: made with other credentials, whatever it claims.
	OutOfBand Approval = "out_of_band"
)

// Change is one change to a member or user group.
type Change struct {
	At time.Time
	// Kind is member or user_group; Subject the member's email (or id
	// when unknown) or the group's name (or id).
	Kind, Subject string
	// Action is the audit log's description ("Add Member"), Type create,
	// update or delete.
	Action, Type string
	Approval     Approval
	// Why says why a change made with cfaccess's credentials, or claiming
	// to be cfaccess's (its User-Agent), is not approved.
	Why string
	// Revision is the commit the change names ("" when none), with its
	// Author and Title when it is on the followed branch, and Grants the
	// grants behind it at that revision ("file:line reason").
	Revision string
	Author   string
	Title    string
	Grants   []string
	// The actor, for every change; for a change not approved, Corrected
	// is when cfaccess next changed the subject (zero: not in the period
	// or the week after it).
	Actor, Context, IP string
	Corrected          time.Time
	// PullRequest is how an approved change's commit reached the branch,
	// NotReviewed why it counts as not reviewed ("" when it was, or when
	// reviews were not looked up: WithReviews).
	PullRequest *PullRequest
	NotReviewed string
	// BreakGlass: a break-glass grant explains the change — applied
	// before anyone reviewed it.
	BreakGlass bool

	token bool // made with cfaccess's credentials
}

// TimeToCorrection is how long an out-of-band change stood (0 when not
// corrected in the period).
func (c Change) TimeToCorrection() time.Duration {
	if c.Corrected.IsZero() {
		return 0
	}
	return c.Corrected.Sub(c.At)
}

// Summary sums up an account's changes.
type Summary struct {
	Changes, Approved, Unverified, OutOfBand int
	// Corrected and StillPresent count the changes not approved that
	// cfaccess reverted, or not.
	Corrected, StillPresent int
	// MedianCorrection and MaxCorrection are over the corrected
	// out-of-band changes.
	MedianCorrection, MaxCorrection time.Duration
	// Reviews says whether reviews were looked up (WithReviews), and
	// NotReviewed counts the approved changes not reviewed.
	Reviews     bool
	NotReviewed int
	// BreakGlass counts the approved changes a break-glass grant
	// explains.
	BreakGlass int
}

// AuditLog reads an account's audit log, and what names the ids of its
// writes (the client).
type AuditLog interface {
	AuditLog(ctx context.Context, accountID string, q cloudflare.AuditQuery) (cloudflare.AuditResult, error)
	ReadCatalogue(ctx context.Context, accountID string) (*cloudflare.Account, error)
}

// History is the repository's Git history: declarations and commits by
// SHA.
type History interface {
	// Declarations loads the repository at a revision.
	Declarations(ctx context.Context, sha string) (*desired.Repo, error)
	// Commit names a revision's author and title; an error when the
	// history has no such commit on the followed branch.
	Commit(sha string) (author, title string, err error)
	// Descends reports whether sha is ancestor or descends from it.
	Descends(sha, ancestor string) (bool, error)
}

// Options of a report.
type Options struct {
	Since, Until time.Time
	// Now bounds the look past Until for corrections.
	Now time.Time
	// MaxPages of the audit log per account (1,000 entries a page).
	MaxPages int
	// Identities are cfaccess's credentials as the log names them (its
	// token ids); Credentials says how they were known. None: nothing is
	// approved, and NoIdentity says why.
	Identities  []cloudflare.Identity
	Credentials string
	NoIdentity  string
	// Learned says the identities are the report's own credentials'
	// (tokens/verify), not given: cfaccess may apply with others.
	Learned bool
}

// maxBytes bounds the audit log read for a report: a month of a busy
// account is tens of megabytes; a log of huge entries is cut there, and
// the report says it is incomplete.
const maxBytes = 512 << 20

// Windows around the period: members' emails are looked up in the log
// before it (a removal names the member by id only), corrections after it.
const (
	lookBack     = 90 * 24 * time.Hour
	lookBackPage = 10
	lookAfter    = 7 * 24 * time.Hour
	// retention is how long Cloudflare keeps the log (GA changelog,
	// 2026-03-10): the look-up of a member by id reaches that far.
	retention = 18 * 31 * 24 * time.Hour
)

// Build reads an account's changes in the period.
func Build(ctx context.Context, log AuditLog, hist History, provider, accountID string, opts Options) Account {
	a := Account{Provider: provider, AccountID: accountID, Credentials: opts.Credentials}
	if len(opts.Identities) == 0 {
		a.NoApproval = cmp.Or(opts.NoIdentity, "cfaccess's token id is not known")
	}
	res, err := log.AuditLog(ctx, accountID, cloudflare.AuditQuery{Since: opts.Since, Before: readEnd(opts), MaxPages: cmp.Or(opts.MaxPages, 100), MaxBytes: maxBytes})
	if err != nil {
		a.Error = err.Error()
		return a
	}
	// Cut short: only the period counts (the week after is for
	// corrections).
	a.Truncated = res.Truncated && (len(res.Entries) == 0 || res.Entries[len(res.Entries)-1].Time.Before(opts.Until))
	n := learnNames(ctx, log, accountID, opts.Since, res.Entries)
	ck := &checker{hist: hist, provider: provider, repos: map[string]*desired.Repo{}, emails: n.emails, groups: n.groups, made: madeBy(opts.Identities),
		catalogue: sync.OnceValues(func() (*cloudflare.Account, error) { return log.ReadCatalogue(ctx, accountID) })}
	cl := classifier{ck: ck, names: n, identified: len(opts.Identities) > 0}
	all := cl.changes(ctx, succeeded(res.Entries))
	if opts.Learned && cl.byToken == 0 && cl.claims > 0 {
		a.Doubt = fmt.Sprintf("no change was made with the token this report runs with, while %d claim to be cfaccess's: if cfaccess applies with another token, give its id with --cfaccess-token-id", cl.claims)
	}
	correct(all)
	a.Changes = inPeriod(all, opts.Until)
	a.Summary = summarize(a.Changes)
	return a
}

// readEnd is where the read of the log stops: a week past the period, for
// corrections, but not past now, nor before the period's end.
func readEnd(opts Options) time.Time {
	end := opts.Until.Add(lookAfter)
	if !opts.Now.IsZero() && opts.Now.Before(end) {
		end = opts.Now
	}
	return later(end, opts.Until)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// names are the members' emails and the user groups' names by id, as the
// log gives them.
type names struct {
	emails, groups map[string]string
}

// learnNames names the members and user groups of the period's entries:
// from the entries themselves and the look-back before the period, and
// for members still named by id only, from their own older entries.
// Failed look-ups leave ids unnamed.
func learnNames(ctx context.Context, log AuditLog, accountID string, since time.Time, entries []cloudflare.AuditEntry) names {
	n := names{emails: map[string]string{}, groups: map[string]string{}}
	if before, err := log.AuditLog(ctx, accountID, cloudflare.AuditQuery{Since: since.Add(-lookBack), Before: since,
		MaxPages: lookBackPage, NewestFirst: true}); err == nil {
		n.learn(before.Entries)
	}
	n.learn(entries)
	n.learnRemoved(ctx, log, accountID, since, entries)
	return n
}

// learn names the ids the entries name.
func (n names) learn(es []cloudflare.AuditEntry) {
	for _, e := range es {
		if e.Email != "" && e.MemberID != "" {
			n.emails[e.MemberID] = e.Email
		}
		if e.GroupName != "" && e.GroupID != "" {
			n.groups[e.GroupID] = e.GroupName
		}
	}
}

// learnRemoved names members removed in the period who were added before
// the look-back: their own entries, by resource id, as far back as the log
// goes.
func (n names) learnRemoved(ctx context.Context, log AuditLog, accountID string, since time.Time, entries []cloudflare.AuditEntry) {
	var unknown []string
	for _, e := range entries {
		if e.Kind == cloudflare.AuditMember && e.MemberID != "" && n.emails[e.MemberID] == "" && !slices.Contains(unknown, e.MemberID) {
			unknown = append(unknown, e.MemberID)
		}
	}
	for len(unknown) > 0 {
		batch := unknown[:min(len(unknown), 50)]
		unknown = unknown[len(batch):]
		older, err := log.AuditLog(ctx, accountID, cloudflare.AuditQuery{Since: since.Add(-retention), Before: since.Add(-lookBack),
			ResourceIDs: batch, MaxPages: lookBackPage, NewestFirst: true})
		if err != nil {
			break
		}
		for _, e := range older.Entries {
			if slices.Contains(batch, e.MemberID) && e.Email != "" && n.emails[e.MemberID] == "" {
				n.emails[e.MemberID] = e.Email
			}
		}
	}
}

// subject names what an entry changed: a member's email (or id when
// unknown), a user group's name (or id).
func (n names) subject(e cloudflare.AuditEntry) string {
	switch e.Kind {
	case cloudflare.AuditMember:
		return cmp.Or(e.Email, n.emails[e.MemberID], e.MemberID)
	case cloudflare.AuditUserGroup:
		return cmp.Or(e.GroupName, n.groups[e.GroupID], e.GroupID)
	}
	return ""
}

// madeBy reports whether an entry was made with any of cfaccess's
// credentials.
func madeBy(ids []cloudflare.Identity) func(cloudflare.AuditEntry) bool {
	return func(e cloudflare.AuditEntry) bool {
		return slices.ContainsFunc(ids, func(id cloudflare.Identity) bool { return id.Made(e) })
	}
}

// succeeded returns the entries of writes that did not fail.
func succeeded(es []cloudflare.AuditEntry) []cloudflare.AuditEntry {
	var out []cloudflare.AuditEntry
	for _, e := range es {
		if e.Result != "failure" {
			out = append(out, e)
		}
	}
	return out
}

// classifier turns entries into changes, each approved, unverified or
// out of band, and counts those made with cfaccess's credentials and
// those whose User-Agent claims cfaccess.
type classifier struct {
	ck    *checker
	names names
	// identified says cfaccess's credentials are known.
	identified      bool
	byToken, claims int
}

// changes classifies the entries, in order.
func (cl *classifier) changes(ctx context.Context, entries []cloudflare.AuditEntry) []Change {
	var all []Change
	for i, e := range entries {
		all = append(all, cl.change(ctx, e, entries[i+1:]))
	}
	return all
}

// change classifies one entry; after are the entries that follow it.
func (cl *classifier) change(ctx context.Context, e cloudflare.AuditEntry, after []cloudflare.AuditEntry) Change {
	c := Change{At: e.Time.UTC(), Kind: string(e.Kind), Action: e.Action, Type: e.ActionType, Approval: OutOfBand,
		Actor: e.Actor(), Context: e.ActorContext, IP: e.IP}
	c.Subject = cl.names.subject(e)
	c.token = cl.ck.made(e)
	claim := "its User-Agent claims cfaccess"
	if sha, _ := e.Revision(); sha != "" {
		claim += " (revision " + gitsource.Short(sha) + ")"
	}
	claimed := strings.HasPrefix(e.UserAgent, cloudflare.UserAgentPrefix)
	if claimed {
		cl.claims++
	}
	if c.token {
		cl.byToken++
	}
	switch {
	case c.token:
		c.Approval = Unverified
		cl.ck.verify(ctx, &c, e, after)
	case !cl.identified && claimed:
		// Whose credentials these are cannot be told: the claim is
		// worth a mention, never an approval.
		c.Approval = Unverified
		c.Why = claim + ", which anyone can send, and cfaccess's token is not known to check it"
	case claimed:
		c.Why = claim + ", but Cloudflare says another token made it"
	}
	return c
}

// inPeriod returns the changes made before until: those of the period.
func inPeriod(cs []Change, until time.Time) []Change {
	var out []Change
	for _, c := range cs {
		if c.At.Before(until) {
			out = append(out, c)
		}
	}
	return out
}

// correct sets, on each change not approved, when cfaccess next changed
// the same subject (with its credentials).
func correct(cs []Change) {
	for i := range cs {
		if cs[i].Approval == Approved {
			continue
		}
		for _, later := range cs[i+1:] {
			if later.token && later.Kind == cs[i].Kind && strings.EqualFold(later.Subject, cs[i].Subject) {
				cs[i].Corrected = later.At
				break
			}
		}
	}
}

func summarize(cs []Change) Summary {
	var s Summary
	var times []time.Duration
	for _, c := range cs {
		s.Changes++
		switch c.Approval {
		case Approved:
			s.Approved++
			if c.BreakGlass {
				s.BreakGlass++
			}
			continue
		case Unverified:
			s.Unverified++
		default:
			s.OutOfBand++
		}
		if c.Corrected.IsZero() {
			s.StillPresent++
		} else {
			s.Corrected++
			times = append(times, c.TimeToCorrection())
		}
	}
	if len(times) > 0 {
		slices.Sort(times)
		s.MaxCorrection = times[len(times)-1]
		if n := len(times); n%2 == 1 {
			s.MedianCorrection = times[n/2]
		} else {
			s.MedianCorrection = (times[n/2-1] + times[n/2]) / 2
		}
	}
	return s
}

// Duration writes a duration for people: "2h 5m", "3d 4h", "45s".
func Duration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd %dh", int(d.Hours())/24, int(d.Hours())%24)
}
