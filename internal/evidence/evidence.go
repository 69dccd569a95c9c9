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
	// when cfaccess next changed the subject (zero: not in the period).
	Actor, Context, IP string
	Corrected          time.Time
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
	TokenID(ctx context.Context, accountID string) (string, error)
}

// History is the repository's Git history: declarations and commits by
// SHA.
type History interface {
	// Declarations loads the repository at a revision.
	Declarations(ctx context.Context, sha string) (*desired.Repo, error)
	// Commit names a revision's author and title.
	Commit(sha string) (author, title string, err error)
}

// Options of a report.
type Options struct {
	Since, Until time.Time
	// MaxPages of the audit log per account (1,000 entries a page).
	MaxPages int
	// TokenIDs are further API tokens whose changes are cfaccess's (a CI
	// apply's), beside those marked by cfaccess's User-Agent.
	TokenIDs []string
}

// Build reads an account's changes in the period.
func Build(ctx context.Context, log AuditLog, hist History, provider, accountID string, opts Options) Account {
	a := Account{Provider: provider, AccountID: accountID}
	res, err := log.AuditLog(ctx, accountID, cloudflare.AuditQuery{Since: opts.Since, Before: opts.Until, MaxPages: cmp.Or(opts.MaxPages, 100)})
	if err != nil {
		a.Error = err.Error()
		return a
	}
	a.Truncated = res.Truncated
	emails, groups := map[string]string{}, map[string]string{}
	for _, e := range res.Entries {
		if e.Email != "" && e.MemberID != "" {
			emails[e.MemberID] = e.Email
		}
	}
	repos := map[string]*desired.Repo{}
	for _, e := range res.Entries {
		if e.Result == "failure" {
			continue
		}
		c := Change{At: e.Time.UTC(), Kind: string(e.Kind), Action: e.Action, Type: e.ActionType,
			Actor: e.Actor(), Context: e.ActorContext, IP: e.IP, ByCfaccess: e.ByCfaccess(opts.TokenIDs...)}
		switch e.Kind {
		case cloudflare.AuditMember:
			c.Subject = cmp.Or(e.Email, emails[e.MemberID], e.MemberID)
		case cloudflare.AuditUserGroup:
			c.Subject = cmp.Or(groups[e.GroupID], e.GroupID)
		}
		if c.ByCfaccess {
			c.Revision = e.Revision()
			if c.Revision != "" && hist != nil {
				c.Author, c.Title, _ = hist.Commit(c.Revision)
				repo, ok := repos[c.Revision]
				if !ok {
					repo, _ = hist.Declarations(ctx, c.Revision)
					repos[c.Revision] = repo
				}
				c.Grants = grantsOf(repo, provider, c.Subject)
			}
		}
		a.Changes = append(a.Changes, c)
	}
	correct(a.Changes)
	a.Summary = summarize(a.Changes)
	return a
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
