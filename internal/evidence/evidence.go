package evidence

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
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
	Changes             []Change
	Summary             Summary
	// Error is why the account's audit log could not be read (nothing
	// else is then said of it); Truncated that it had more entries than
	// were read.
	Error     string
	Truncated bool
}

// Change is one change to a member or user group.
type Change struct {
	At time.Time
	// Kind is member or user_group; Subject the member's email (or id
	// when unknown) or the group's name (or id).
	Kind, Subject string
	// Action is the audit log's description ("Add Member"), Type create,
	// update or delete.
	Action, Type string
	// ByCfaccess marks a change cfaccess made: Revision is the commit it
	// applied ("" when unknown), with its Author and Title, and Grants the
	// grants of the subject at that revision ("file:line reason").
	ByCfaccess bool
	Revision   string
	Author     string
	Title      string
	Grants     []string
	// The actor, for every change; for out-of-band ones, Corrected is
	// when cfaccess next changed the subject (zero: not in the period or
	// the week after it).
	Actor, Context, IP string
	Corrected          time.Time
	// Unapproved says why a change marked as cfaccess's is not counted
	// as approved through Git.
	Unapproved string
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
	Changes, Approved, OutOfBand, Corrected, StillPresent int
	// MedianCorrection and MaxCorrection are over the corrected
	// out-of-band changes.
	MedianCorrection, MaxCorrection time.Duration
}

// AuditLog reads an account's audit log (the client).
type AuditLog interface {
	AuditLog(ctx context.Context, accountID string, q cloudflare.AuditQuery) (cloudflare.AuditResult, error)
}

// History is the repository's Git history: declarations and commits by
// SHA.
type History interface {
	// Declarations loads the repository at a revision.
	Declarations(ctx context.Context, sha string) (*desired.Repo, error)
	// Commit names a revision's author and title; an error when the
	// history has no such commit on the followed branch.
	Commit(sha string) (author, title string, err error)
}

// Options of a report.
type Options struct {
	Since, Until time.Time
	// Now bounds the look past Until for corrections.
	Now time.Time
	// MaxPages of the audit log per account (1,000 entries a page).
	MaxPages int
	// TokenIDs, when set, are the API tokens cfaccess uses: a change
	// counts as cfaccess's only when made with one of them (besides its
	// User-Agent, which anyone can send).
	TokenIDs []string
}

// Windows around the period: members' emails are looked up in the log
// before it (a removal names the member by id only), corrections after it.
const (
	lookBack     = 90 * 24 * time.Hour
	lookBackPage = 10
	lookAfter    = 7 * 24 * time.Hour
)

// Build reads an account's changes in the period.
func Build(ctx context.Context, log AuditLog, hist History, provider, accountID string, opts Options) Account {
	a := Account{Provider: provider, AccountID: accountID}
	end := opts.Until.Add(lookAfter)
	if !opts.Now.IsZero() && opts.Now.Before(end) {
		end = opts.Now
	}
	end = later(end, opts.Until)
	res, err := log.AuditLog(ctx, accountID, cloudflare.AuditQuery{Since: opts.Since, Before: end, MaxPages: cmp.Or(opts.MaxPages, 100)})
	if err != nil {
		a.Error = err.Error()
		return a
	}
	// Cut short: only the period counts (the week after is for
	// corrections).
	a.Truncated = res.Truncated && (len(res.Entries) == 0 || res.Entries[len(res.Entries)-1].Time.Before(opts.Until))
	emails, groups := map[string]string{}, map[string]string{}
	learn := func(es []cloudflare.AuditEntry) {
		for _, e := range es {
			if e.Email != "" && e.MemberID != "" {
				emails[e.MemberID] = e.Email
			}
			if e.GroupName != "" && e.GroupID != "" {
				groups[e.GroupID] = e.GroupName
			}
		}
	}
	if before, err := log.AuditLog(ctx, accountID, cloudflare.AuditQuery{Since: opts.Since.Add(-lookBack), Before: opts.Since,
		MaxPages: lookBackPage, NewestFirst: true}); err == nil {
		learn(before.Entries)
	}
	learn(res.Entries)
	repos := map[string]*desired.Repo{}
	var all []Change
	for _, e := range res.Entries {
		if e.Result == "failure" {
			continue
		}
		c := Change{At: e.Time.UTC(), Kind: string(e.Kind), Action: e.Action, Type: e.ActionType,
			Actor: e.Actor(), Context: e.ActorContext, IP: e.IP, ByCfaccess: e.ByCfaccess()}
		switch e.Kind {
		case cloudflare.AuditMember:
			c.Subject = cmp.Or(e.Email, emails[e.MemberID], e.MemberID)
		case cloudflare.AuditUserGroup:
			c.Subject = cmp.Or(e.GroupName, groups[e.GroupID], e.GroupID)
		}
		if c.ByCfaccess {
			verify(ctx, &c, e, hist, repos, provider, opts.TokenIDs)
		}
		all = append(all, c)
	}
	correct(all)
	for _, c := range all {
		if c.At.Before(opts.Until) {
			a.Changes = append(a.Changes, c)
		}
	}
	a.Summary = summarize(a.Changes)
	return a
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// verify ties a change marked as cfaccess's to its revision, or takes the
// approval away, saying why: the marker is a User-Agent anyone can send.
// Approved means made with cfaccess's token (when TokenIDs are known),
// from a commit of the followed branch (not a modified checkout), and —
// for one that gives access — with a grant of the subject at that commit.
func verify(ctx context.Context, c *Change, e cloudflare.AuditEntry, hist History, repos map[string]*desired.Repo, provider string, tokens []string) {
	deny := func(why string) { c.ByCfaccess, c.Unapproved = false, why }
	if len(tokens) > 0 && !slices.Contains(tokens, e.TokenID) {
		deny("marked as cfaccess's, but not made with a token of --cfaccess-token-id")
		return
	}
	sha, modified := e.Revision()
	c.Revision = sha
	switch {
	case modified:
		deny("applied by cfaccess from uncommitted changes on top of " + gitsource.Short(sha))
		return
	case sha == "":
		deny("marked as cfaccess's, but names no revision to check")
		return
	case hist == nil:
		deny("marked as applied from " + gitsource.Short(sha) + ", but --repo has no Git history to check it against")
		return
	}
	author, title, err := hist.Commit(sha)
	if err != nil {
		deny("marked as applied from " + gitsource.Short(sha) + ", which is not in the repository's history")
		return
	}
	c.Author, c.Title = author, title
	repo, ok := repos[sha]
	if !ok {
		repo, _ = hist.Declarations(ctx, sha)
		repos[sha] = repo
	}
	c.Grants = grantsOf(repo, provider, c.Subject)
	if len(c.Grants) == 0 && c.Kind == string(cloudflare.AuditMember) && (c.Type == "create" || c.Type == "update") {
		deny("marked as applied from " + gitsource.Short(sha) + ", which grants " + c.Subject + " nothing")
	}
}

// grantsOf lists the grants giving email access on the provider's account.
func grantsOf(repo *desired.Repo, provider, email string) []string {
	if repo == nil {
		return nil
	}
	var out []string
	for _, b := range repo.Bindings(time.Time{}) {
		if b.Provider != provider || !strings.EqualFold(b.Email, email) {
			continue
		}
		g := b.Source.String()
		if b.Reason != "" {
			g += " " + b.Reason
		}
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out
}

// correct sets, on each out-of-band change, when cfaccess next changed the
// same subject.
func correct(cs []Change) {
	for i := range cs {
		if cs[i].ByCfaccess {
			continue
		}
		for _, later := range cs[i+1:] {
			if later.ByCfaccess && later.Kind == cs[i].Kind && strings.EqualFold(later.Subject, cs[i].Subject) {
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
		switch {
		case c.ByCfaccess:
			s.Approved++
		case c.Corrected.IsZero():
			s.OutOfBand++
			s.StillPresent++
		default:
			s.OutOfBand++
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
