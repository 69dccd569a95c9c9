package daemon

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/gitsource"
	"github.com/cfaccess/reconciler/internal/notify"
	"github.com/cfaccess/reconciler/internal/reconcile"
)

// notify tells LoopConfig.Notify of an event (nothing without one).
func (l *Loop) notify(typ, subject, summary string, data map[string]any) {
	if l.cfg.Notify == nil {
		return
	}
	l.cfg.Notify(notify.Event{Type: typ, Subject: subject, Time: l.cfg.Now().UTC(), Summary: summary, Data: data})
}

func (l *Loop) notifyRefused(rev gitsource.Revision, why *RefusedError) {
	var first []string
	for _, f := range why.Findings[:min(len(why.Findings), 3)] {
		first = append(first, strings.TrimSpace(f.Source+" "+f.Message))
	}
	l.notify(notify.RevisionRefused, rev.SHA, fmt.Sprintf("revision %s refused (%s, %d findings): the last good revision stays enforced",
		gitsource.Short(rev.SHA), why.Verdict, len(why.Findings)),
		map[string]any{"revision": rev.SHA, "author": rev.Author, "result": string(why.Verdict), "findings": len(why.Findings), "first_findings": first})
}

func (l *Loop) notifyAccepted(rev gitsource.Revision) {
	l.notify(notify.RevisionAccepted, rev.SHA, fmt.Sprintf("revision %s accepted: %s", gitsource.Short(rev.SHA), rev.Subject),
		map[string]any{"revision": rev.SHA, "author": rev.Author, "subject": rev.Subject})
}

// notifyDrift tells of an out-of-band change corrected, naming who made it.
func (l *Loop) notifyDrift(account string, r reconcile.Result) {
	d := r.Change.Drift
	if d == nil || r.Err != nil {
		return
	}
	who := r.Change.Email
	if r.Change.Group != "" {
		who = "user group " + r.Change.Group
	}
	l.notify(notify.DriftCorrected, account, fmt.Sprintf("%s: drift corrected (%s %s), made by %s (%s) at %s", account, r.Change.Action, who,
		d.Actor, d.Context, d.At.UTC().Format(time.RFC3339)),
		map[string]any{"account": account, "action": string(r.Change.Action), "email": r.Change.Email, "user_group": r.Change.Group,
			"actor": d.Actor, "context": d.Context, "at": d.At.UTC().Format(time.RFC3339), "drift_action": d.Action})
}

func (l *Loop) notifyElsewhere(account string, e cloudflare.AuditEntry) {
	l.notify(notify.CredentialsUsed, account, fmt.Sprintf("%s: a change (%s) was made with cfaccess's own credentials by someone else, from %s", account, e.Action, e.IP),
		map[string]any{"account": account, "action": e.Action, "at": e.Time.UTC().Format(time.RFC3339), "ip": e.IP, "user_agent": e.UserAgent})
}

// noteBreakers tells of each account whose breaker trips.
func (l *Loop) noteBreakers(r *runResult) {
	for _, a := range r.accounts {
		on := a.Breaker != ""
		if on && !l.breakers[a.Account] {
			l.notify(notify.BreakerTripped, a.Account, a.Account+": not applied, the mass-removal breaker tripped: "+a.Breaker,
				map[string]any{"account": a.Account, "breaker": a.Breaker})
		}
		l.breakers[a.Account] = on
	}
}

// grantKey names a grant across revisions (its position moves with edits).
func grantKey(g *desired.Grant) string {
	return strings.Join([]string{strings.Join(g.Users, ","), strings.Join(g.Groups, ","), strings.Join(g.Roles, ","), g.Reason,
		g.NotBefore.String(), g.Expires.String(), fmt.Sprint(g.BreakGlass)}, "|")
}

// noteGrants tells, after a reconcile that enforced every account, of the
// grants that started or ended since the last such reconcile (break-glass
// ones loudly: a WARN line too), and sets cfaccess_break_glass_active.
// The first reconcile only takes stock.
func (l *Loop) noteGrants(r *runResult) {
	if l.good == nil || l.good.compiled.Repo == nil || r.forced != "" || !r.allOK() {
		return
	}
	repo := l.good.compiled.Repo
	active := map[string]*desired.Grant{}
	breakGlass := map[string]int{}
	for _, g := range repo.Grants {
		if g.ActiveAt(r.now) {
			active[grantKey(g)] = g
			if g.BreakGlass {
				for _, p := range grantProviders(repo, g) {
					breakGlass[p]++
				}
			}
		}
	}
	for _, a := range r.accounts {
		l.cfg.Metrics.BreakGlassActive.WithLabelValues(a.Account).Set(float64(breakGlass[a.Account]))
	}
	before := l.active
	l.active = active
	if before == nil {
		return
	}
	for _, k := range slices.Sorted(maps.Keys(active)) {
		if _, was := before[k]; !was {
			l.grantEvent(repo, active[k], true)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(before)) {
		if _, is := active[k]; !is {
			l.grantEvent(repo, before[k], false)
		}
	}
}

func (l *Loop) grantEvent(repo *desired.Repo, g *desired.Grant, started bool) {
	who := strings.Join(append(slices.Clone(g.Users), prefixed("group ", g.Groups)...), ", ")
	data := map[string]any{"users": g.Users, "groups": g.Groups, "roles": g.Roles, "reason": g.Reason, "source": g.Pos.String(),
		"accounts": grantProviders(repo, g), "break_glass": g.BreakGlass}
	if !g.Expires.IsZero() {
		data["expires"] = g.Expires.UTC().Format(time.RFC3339)
	}
	typ, verb := notify.GrantStarted, "started"
	if !started {
		typ, verb = notify.GrantEnded, "ended and was revoked"
	}
	if g.BreakGlass {
		typ = notify.BreakGlassOn
		if !started {
			typ = notify.BreakGlassOff
		}
		l.cfg.Log.Warn("break-glass grant "+verb+": applied without review; review it after use", "users", g.Users, "groups", g.Groups,
			"roles", g.Roles, "reason", g.Reason, "source", g.Pos.String(), "expires", data["expires"])
		verb = "(break-glass, not reviewed before use) " + verb
	}
	l.notify(typ, g.Pos.String(), fmt.Sprintf("grant of %s to %s %s (%s)", strings.Join(g.Roles, ", "), who, verb, g.Reason), data)
}

// grantProviders are the providers a grant's roles apply to.
func grantProviders(repo *desired.Repo, g *desired.Grant) []string {
	var out []string
	for _, id := range g.Roles {
		if r, ok := repo.Roles[id]; ok {
			out = append(out, r.Providers...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func prefixed(p string, xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = p + x
	}
	return out
}
