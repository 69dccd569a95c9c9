package reconcile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/diff"
)

// Change detection and attribution from each account's audit log.
//
// Reading a 10,000-member account costs about 200 requests; asking its
// audit log whether any member or user group changed since the last read
// costs one. So the daemon keeps each account's last full read and, at
// each reconcile, asks the log first: with nothing changed out of band,
// and the read younger than FullReadInterval, it plans against the kept
// read (with the clock of now, so grants still expire on time). A few
// members the log names by id are read again one by one (a partial read).
// Anything else reads the account in full: other entries naming members
// or user groups, a failed or truncated query, a change of what is read
// (zones, the organization), changes applied by cfaccess, or the read's
// age. The log
// is a beta "with gaps or missing entries" and its ingestion delay is not
// documented: each query overlaps the last by Margin, and FullReadInterval
// bounds how long the log alone is trusted.
//
// The same entries say who made the drift a plan corrects (diff.Drift).

// Detection configures change detection.
type Detection struct {
	// FullReadInterval is the longest a read is reused (e.g. 10×
	// the interval).
	FullReadInterval time.Duration
	// Margin is how far each query reaches back before the last one
	// ended: the audit log's ingestion delay to allow for.
	Margin time.Duration
}

// DefaultAttributionWindow is how far back a plan with no earlier read
// looks in the audit log for who made the drift it corrects.
const DefaultAttributionWindow = 7 * 24 * time.Hour

// auditPages bounds one query (1,000 entries a page): a busier log than
// that is read in full instead.
const auditPages = 5

// ReadMode is how an account's live state was had.
type ReadMode string

const (
	// ReadFull: the account read in full.
	ReadFull ReadMode = "full"
	// ReadReused: the last full read, no change logged since.
	ReadReused ReadMode = "reused"
	// ReadPartial: the last full read, the members the log names read
	// again.
	ReadPartial ReadMode = "partial"
)

// ReadReason is why an account was read in full.
type ReadReason string

const (
	ReasonFirst    ReadReason = "first"    // no earlier read
	ReasonChanges  ReadReason = "changes"  // the log shows changes
	ReasonApplied  ReadReason = "applied"  // cfaccess changed the account
	ReasonInterval ReadReason = "interval" // the read is FullReadInterval old
	ReasonScope    ReadReason = "scope"    // what is read changed (zones, organization)
	// ReasonAuditLog: the audit log could not be read, or its query was
	// cut short.
	ReasonAuditLog ReadReason = "audit_log_unavailable"
	ReasonDisabled ReadReason = "disabled" // change detection is off
)

// ReadInfo says how an account's live state was had, for /status and the
// metrics.
type ReadInfo struct {
	Read ReadMode
	// Reason for a full read.
	Reason ReadReason
	// LastFullRead is when the read in use began.
	LastFullRead time.Time
	// AuditError is why the audit log could not be used, if it could not;
	// Note why a partial read was given up for a full one.
	AuditError, Note string
	// OutOfBand are the entries of changes made outside cfaccess not yet
	// counted in the metric (the loop counts them when it publishes).
	OutOfBand []cloudflare.AuditEntry
	// Elsewhere are the changes of the last week made with cfaccess's own
	// credentials by someone else (Origin OurCredentials), oldest first.
	Elsewhere []CredentialUse

	// err is why the account could not be read.
	err error
}

// partial returns the members to read again when the changes logged are
// all of members the log names by id, and reading them one by one is
// cheaper than reading the account (members/50 pages and about ten more
// requests); nil otherwise.
func partial(fresh []cloudflare.AuditEntry, members int) []cloudflare.MemberChange {
	limit := max(1, (members/50+10)/4)
	var out []cloudflare.MemberChange
	for _, e := range fresh { // oldest first: the newest entry of a member decides
		if e.Kind != cloudflare.AuditMember || e.MemberID == "" {
			return nil
		}
		i := slices.IndexFunc(out, func(c cloudflare.MemberChange) bool { return c.ID == e.MemberID })
		if i < 0 {
			out = append(out, cloudflare.MemberChange{ID: e.MemberID})
			i = len(out) - 1
		}
		out[i].Removed = e.ActionType == "delete"
	}
	if len(out) > limit {
		return nil
	}
	return out
}

// readCache is what the planner keeps of an account between reconciles:
// its last read, where the audit log was last asked, the entries acted on
// and counted, and when cfaccess last changed each member or user group.
// Only its methods change it.
type readCache struct {
	acct      *cloudflare.Account
	readKey   string    // what the read covered (zones, organization)
	readStart time.Time // when it began
	// readMono is the process's monotonic clock at the read: a wall clock
	// set back cannot make a read look younger than it is.
	readMono  time.Time
	watermark time.Time // where the last audit query ended
	dirty     bool      // cfaccess changed the account since
	// handled are entries already acted on (a full read followed them),
	// and countedAt those already in the metric, by id with their time.
	handled, countedAt map[string]time.Time
	// recent are the out-of-band entries seen lately, by id: who made a
	// drift is still known when its correction comes later (a dry run, a
	// failed or held-back change, a refused candidate revision).
	recent map[string]cloudflare.AuditEntry
	// own is when cfaccess last changed each member or user group (keys
	// from ownKeys): an out-of-band entry older than that was corrected
	// already, and is no drift of a later change.
	own map[string]time.Time
	// emails maps member ids seen to emails, to name members the log
	// names by id only (a removal).
	emails map[string]string
	// groups maps user-group ids seen to names.
	groups map[string]string
}

// auditLog is the part of the client change detection uses.
type auditLog interface {
	AuditLog(ctx context.Context, accountID string, q cloudflare.AuditQuery) (cloudflare.AuditResult, error)
	Identity(ctx context.Context, accountID string) (cloudflare.Identity, error)
}

// judgeFunc tells each entry's Origin (cloudflare.Journal.JudgeAll).
type judgeFunc func([]cloudflare.AuditEntry) []cloudflare.Origin

func readKey(o cloudflare.ReadOptions) string {
	return o.OrganizationID + "|" + strings.Join(o.Zones, ",")
}

// cacheOf returns the planner's read cache of an account, made on first
// use.
func (p *Planner) cacheOf(key string) *readCache {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.caches[key]
	if w == nil {
		w = &readCache{handled: map[string]time.Time{}, countedAt: map[string]time.Time{}, emails: map[string]string{}, groups: map[string]string{},
			recent: map[string]cloudflare.AuditEntry{}, own: map[string]time.Time{}}
		p.caches[key] = w
	}
	return w
}

// judge returns what tells, in an account's audit log, cfaccess's own
// changes from others' (cloudflare.Journal.Judge): its credentials as the
// log names them, read once per credentials, and the journal of what
// this process wrote. It fails when the credentials cannot be told: then
// no entry can be proven cfaccess's own.
func (p *Planner) judge(ctx context.Context, log auditLog, credsKey, accountID string) (judgeFunc, error) {
	p.mu.Lock()
	id, ok := p.identities[credsKey]
	p.mu.Unlock()
	if !ok {
		var err error
		if id, err = log.Identity(ctx, accountID); err != nil {
			return nil, fmt.Errorf("cfaccess's own changes cannot be told from others' in the audit log: %w", err)
		}
		p.mu.Lock()
		p.identities[credsKey] = id
		p.mu.Unlock()
	}
	if !id.Known() {
		return nil, errors.New("cfaccess's own changes cannot be told from others' in the audit log: the token's id is unknown")
	}
	journal := p.state.Journal
	if journal == nil { // nothing kept: every entry of these credentials is Unjudged
		journal = &cloudflare.Journal{}
	}
	return func(es []cloudflare.AuditEntry) []cloudflare.Origin { return journal.JudgeAll(es, id) }, nil
}

// outOfBand queries the log for changes made outside cfaccess in
// [since, before): by others, or with cfaccess's credentials by someone
// else (Origin OurCredentials), and those made with its credentials that
// it cannot judge (Unjudged: from before its journal's reach, perhaps an
// earlier process's) — these call for a read all the same, harmless
// either way, but are neither counted nor named. cfaccess's own are left
// out; so are failures.
func outOfBand(ctx context.Context, log auditLog, accountID string, since, before time.Time, judge judgeFunc) ([]cloudflare.AuditEntry, error) {
	res, err := log.AuditLog(ctx, accountID, cloudflare.AuditQuery{Since: since, Before: before, MaxPages: auditPages})
	if err != nil {
		return nil, err
	}
	if res.Truncated {
		return nil, errTruncated
	}
	var out []cloudflare.AuditEntry
	for _, e := range judged(res.Entries, judge) {
		if e.Origin != cloudflare.Ours {
			out = append(out, e)
		}
	}
	return out, nil
}

// judged returns the entries that did not fail, each with its Origin.
func judged(entries []cloudflare.AuditEntry, judge judgeFunc) []cloudflare.AuditEntry {
	out := slices.DeleteFunc(slices.Clone(entries), func(e cloudflare.AuditEntry) bool { return e.Result == "failure" })
	for i, o := range judge(out) {
		out[i].Origin = o
	}
	return out
}

type truncatedError struct{}

func (truncatedError) Error() string {
	return "more than 5,000 entries since the last query: read in full instead"
}

var errTruncated error = truncatedError{}

// read has the account's live state for a plan at now: the kept read,
// when the audit log shows no change since (detect set), with the members
// it names read again when that is cheaper (a partial read), or else a
// full read. It returns the state (nil when it could not be read:
// ReadInfo's err), the out-of-band entries of the log since the last read,
// and how the state was had.
func (c *readCache) read(ctx context.Context, client account, accountID string, ro cloudflare.ReadOptions, judge func() (judgeFunc, error), now time.Time, detect *Detection) (*cloudflare.Account, []cloudflare.AuditEntry, ReadInfo) {
	key := readKey(ro)
	live, entries, info, refresh := c.chooseRead(ctx, client, accountID, key, judge, now, detect)
	if info.Read == ReadPartial {
		if err := client.RefreshMembers(ctx, live, refresh); err != nil {
			// Read whole instead: the log named something a member read
			// cannot settle.
			live, info.Read, info.LastFullRead, info.Note = nil, ReadFull, now, "a partial read was given up: "+err.Error()
		} else {
			c.refreshed(entries, now, live)
		}
	}
	if live != nil {
		return live, entries, info
	}
	c.acct = nil // not kept through the new read
	live, err := client.ReadAccount(ctx, accountID, ro)
	if err != nil {
		info.err = err
		return nil, entries, info
	}
	margin := time.Duration(0)
	if detect != nil {
		margin = detect.Margin
	}
	c.keep(live, key, now, entries, detect != nil, margin)
	return live, entries, info
}

// chooseRead asks the audit log whether the kept read of an account can
// be reused at now. It returns the read to reuse (nil for a full read),
// the entries of out-of-band changes since the last read, why, and for a
// partial read the members to read again.
func (c *readCache) chooseRead(ctx context.Context, log auditLog, accountID, key string, judger func() (judgeFunc, error), now time.Time, detect *Detection) (*cloudflare.Account, []cloudflare.AuditEntry, ReadInfo, []cloudflare.MemberChange) {
	info := ReadInfo{Read: ReadFull, LastFullRead: now}
	switch {
	case detect == nil:
		info.Reason = ReasonDisabled
		return nil, nil, info, nil
	case c.acct == nil:
		info.Reason = ReasonFirst
		return nil, nil, info, nil
	}
	judge, err := judger()
	if err != nil {
		info.Reason, info.AuditError = ReasonAuditLog, err.Error()
		return nil, nil, info, nil
	}
	entries, err := outOfBand(ctx, log, accountID, c.watermark.Add(-detect.Margin), now, judge)
	if err != nil {
		info.Reason, info.AuditError = ReasonAuditLog, err.Error()
		return nil, nil, info, nil
	}
	fresh := c.see(entries)
	info.OutOfBand, info.Elsewhere = c.uncounted(), c.elsewhere()
	age := max(now.Sub(c.readStart), time.Since(c.readMono))
	switch {
	case len(fresh) > 0 && !c.dirty && c.readKey == key && age < detect.FullReadInterval:
		info.Reason = ReasonChanges
		if changes := partial(fresh, len(c.acct.Members)); changes != nil {
			info.Read, info.LastFullRead = ReadPartial, c.readStart
			return c.acct, fresh, info, changes
		}
	case len(fresh) > 0:
		info.Reason = ReasonChanges
	case c.dirty:
		info.Reason = ReasonApplied
	case c.readKey != key:
		info.Reason = ReasonScope
	case age >= detect.FullReadInterval:
		info.Reason = ReasonInterval
	default:
		c.watermark = now
		c.prune(now, detect.Margin)
		return c.acct, entries, ReadInfo{Read: ReadReused, LastFullRead: c.readStart, OutOfBand: info.OutOfBand, Elsewhere: info.Elsewhere}, nil
	}
	return nil, entries, info, nil
}

// see keeps a query's out-of-band entries for attribution, and returns
// those not yet acted on (fresh), oldest first.
func (c *readCache) see(entries []cloudflare.AuditEntry) []cloudflare.AuditEntry {
	var fresh []cloudflare.AuditEntry
	for _, e := range entries {
		c.recent[e.ID] = e
		if _, ok := c.handled[e.ID]; !ok {
			fresh = append(fresh, e)
		}
	}
	return fresh
}

// uncounted are the entries seen and not yet counted in the metric — by
// this query or an earlier one whose plan was not published (a refused
// candidate revision) — oldest first; those cfaccess cannot judge are
// never counted.
func (c *readCache) uncounted() []cloudflare.AuditEntry {
	var out []cloudflare.AuditEntry
	for _, e := range c.recent {
		if _, ok := c.countedAt[e.ID]; !ok && e.Origin != cloudflare.Unjudged {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b cloudflare.AuditEntry) int { return a.Time.Compare(b.Time) })
	return out
}

// refreshed records a partial read at now: the fresh entries it followed
// are handled.
func (c *readCache) refreshed(fresh []cloudflare.AuditEntry, now time.Time, live *cloudflare.Account) {
	for _, e := range fresh {
		c.handled[e.ID] = e.Time
	}
	c.watermark = now
	c.remember(live)
}

// recentKeep is how long out-of-band entries are kept for attribution.
const recentKeep = 7 * 24 * time.Hour

// recentMax bounds how many are kept.
const recentMax = 10_000

// prune forgets entries no query can return any more, and those too old
// to attribute.
func (w *readCache) prune(now time.Time, margin time.Duration) {
	older := func(cut time.Time) func(string, time.Time) bool {
		return func(_ string, t time.Time) bool { return t.Before(cut) }
	}
	maps.DeleteFunc(w.handled, older(w.watermark.Add(-margin-time.Hour)))
	// counted and recent live as long: an entry forgotten by one and not
	// the other would be counted twice.
	old := now.Add(-recentKeep)
	maps.DeleteFunc(w.recent, func(_ string, e cloudflare.AuditEntry) bool { return e.Time.Before(old) })
	maps.DeleteFunc(w.countedAt, older(old))
	maps.DeleteFunc(w.own, older(old))
	if len(w.recent) > recentMax {
		all := slices.SortedFunc(maps.Values(w.recent), func(a, b cloudflare.AuditEntry) int { return a.Time.Compare(b.Time) })
		for _, e := range all[:len(all)-recentMax] {
			delete(w.recent, e.ID)
		}
	}
}

// CredentialUse is a change made with cfaccess's credentials by someone
// else, as the audit log has it.
type CredentialUse struct {
	At time.Time `json:"at"`
	// Action is the log's description ("Edit Member"); Subject the member
	// (email, or id) or user group it changed.
	Action  string `json:"action"`
	Subject string `json:"subject,omitempty"`
	// Actor is the credentials as the log names them ("token <name> of
	// <email>"); IP and UserAgent where the request came from, and what it
	// claimed to be.
	Actor     string `json:"actor"`
	IP        string `json:"ip,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
}

// maxElsewhere bounds the changes made with cfaccess's credentials by
// someone else that /status lists.
const maxElsewhere = 20

// elsewhere lists the kept entries of changes made with cfaccess's
// credentials by someone else, oldest first, the newest maxElsewhere.
func (w *readCache) elsewhere() []CredentialUse {
	var out []CredentialUse
	for _, e := range w.recent {
		if e.Origin != cloudflare.OurCredentials {
			continue
		}
		subject := cmp.Or(e.Email, w.emails[e.MemberID], e.MemberID)
		if e.Kind == cloudflare.AuditUserGroup {
			subject = "user group " + cmp.Or(e.GroupName, w.groups[e.GroupID], e.GroupID)
		}
		out = append(out, CredentialUse{At: e.Time.UTC(), Action: e.Action, Subject: subject, Actor: e.Actor(), IP: e.IP, UserAgent: e.UserAgent})
	}
	slices.SortFunc(out, func(a, b CredentialUse) int { return a.At.Compare(b.At) })
	return out[max(0, len(out)-maxElsewhere):]
}

// attribution returns the entries to attribute a plan's changes from:
// those kept lately and those of this query, oldest first.
func (w *readCache) attribution(entries []cloudflare.AuditEntry) []cloudflare.AuditEntry {
	all := map[string]cloudflare.AuditEntry{}
	for _, e := range entries {
		all[e.ID] = e
	}
	for id, e := range w.recent {
		all[id] = e
	}
	return slices.SortedFunc(maps.Values(all), func(a, b cloudflare.AuditEntry) int {
		return cmp.Or(a.Time.Compare(b.Time), strings.Compare(a.ID, b.ID))
	})
}

// counted records entries as counted in the metric.
func (w *readCache) counted(entries []cloudflare.AuditEntry) {
	for _, e := range entries {
		w.countedAt[e.ID] = e.Time
	}
}

// applied records the changes cfaccess made at t (those that did not
// fail): the account is read in full next time, and an out-of-band entry
// older than a change is no drift of a later one.
func (w *readCache) applied(results []Result, t time.Time) {
	w.dirty = true
	for _, r := range results {
		if r.Err == nil {
			noteOwn(w.own, t, r.Change.MemberID, r.Change.Email, r.Change.GroupID)
			noteOwn(w.own, t, r.MemberID, "", "")
		}
	}
}

// ownTimes is when cfaccess last changed each member or user group (a
// copy).
func (w *readCache) ownTimes() map[string]time.Time { return maps.Clone(w.own) }

// keep records a full read that began at start, and the entries it
// covers; with keepRead, the read itself, to reuse.
func (w *readCache) keep(acct *cloudflare.Account, key string, start time.Time, entries []cloudflare.AuditEntry, keepRead bool, margin time.Duration) {
	for _, e := range entries {
		w.handled[e.ID] = e.Time
	}
	w.remember(acct)
	w.acct, w.readKey, w.readStart, w.watermark, w.dirty = nil, key, start, start, false
	w.readMono = time.Now()
	if keepRead {
		w.acct = acct
	}
	w.prune(start, margin)
}

// remember keeps the ids of an account's members and groups.
func (w *readCache) remember(acct *cloudflare.Account) {
	if acct == nil {
		return
	}
	if len(w.emails) > 2*len(acct.Members)+10_000 { // churn: start again from this read
		w.emails = map[string]string{}
	}
	if len(w.groups) > 2*len(acct.UserGroups)+1_000 {
		w.groups = map[string]string{}
	}
	for _, m := range acct.Members {
		w.emails[m.ID] = m.Email
	}
	for _, g := range acct.UserGroups {
		w.groups[g.ID] = g.Name
	}
}

// ownKeys are the keys of own for a change of a member or user group.
func ownKeys(memberID, email, groupID string) []string {
	var out []string
	if memberID != "" {
		out = append(out, "m:"+memberID)
	}
	if email != "" {
		out = append(out, "e:"+strings.ToLower(email))
	}
	if groupID != "" {
		out = append(out, "g:"+groupID)
	}
	return out
}

// noteOwn records that cfaccess changed a member or group at t.
func noteOwn(own map[string]time.Time, t time.Time, memberID, email, groupID string) {
	for _, k := range ownKeys(memberID, email, groupID) {
		if t.After(own[k]) {
			own[k] = t
		}
	}
}

// lastOwn is when cfaccess last changed the subject of a change.
func lastOwn(own map[string]time.Time, c diff.Change) time.Time {
	var t time.Time
	for _, k := range ownKeys(c.MemberID, c.Email, c.GroupID) {
		if own[k].After(t) {
			t = own[k]
		}
	}
	return t
}

// drift returns who made the drift each change corrects: the newest
// out-of-band entry about its member or user group — of those kept lately
// and entries — since cfaccess last changed it (own).
func (w *readCache) drift(entries []cloudflare.AuditEntry, own map[string]time.Time) func(diff.Change) *diff.Drift {
	all := w.attribution(entries)
	if len(all) == 0 {
		return nil
	}
	emails := maps.Clone(w.emails)
	return func(c diff.Change) *diff.Drift {
		since := lastOwn(own, c)
		for _, e := range slices.Backward(all) {
			if !e.Time.After(since) {
				return nil // corrected already: older drift
			}
			if matches(c, e, emails) {
				if e.Origin == cloudflare.Unjudged { // perhaps cfaccess's own: named nobody
					return nil
				}
				return driftOf(e)
			}
		}
		return nil
	}
}

// OurCredentialsActor is the actor type of a change made with cfaccess's
// own credentials by someone else (a leaked token, or a second process
// running with it): in drift, in the metric's actor_type, in /status.
const OurCredentialsActor = "cfaccess_token"

// driftOf is who made an out-of-band change, for a plan.
func driftOf(e cloudflare.AuditEntry) *diff.Drift {
	d := &diff.Drift{Actor: e.Actor(), ActorType: e.ActorType, Context: e.ActorContext, IP: e.IP, At: e.Time.UTC(), Action: e.Action}
	if e.Origin == cloudflare.OurCredentials {
		d.Actor, d.ActorType = e.Actor()+", cfaccess's own credentials, not this cfaccess", OurCredentialsActor
	}
	return d
}

// matches reports whether an audit entry is about a change's member or
// user group, and is what the change undoes: an invitation undoes a
// removal, a removal an addition or an edit; a re-invitation undoes
// nothing.
func matches(c diff.Change, e cloudflare.AuditEntry, emails map[string]string) bool {
	switch e.Kind {
	case cloudflare.AuditMember:
		switch c.Action {
		case diff.CreateGroup, diff.UpdateGroup, diff.Reinvite, diff.JoinGroup, diff.LeaveGroup:
			return false
		case diff.Invite:
			if e.ActionType != "delete" {
				return false
			}
		case diff.Remove, diff.Update:
			if e.ActionType == "delete" {
				return false
			}
		}
		email := e.Email
		if email == "" {
			email = emails[e.MemberID]
		}
		return e.MemberID != "" && e.MemberID == c.MemberID || email != "" && strings.EqualFold(email, c.Email)
	case cloudflare.AuditUserGroup:
		if e.GroupID == "" || e.GroupID != c.GroupID {
			return false
		}
		switch c.Action {
		case diff.JoinGroup, diff.LeaveGroup:
			// A change of the group's members names the member; another
			// change of the group is not this member's drift.
			return slices.ContainsFunc(e.Mentions, func(m string) bool {
				return strings.EqualFold(m, c.Email) || m == c.MemberID && m != ""
			})
		case diff.CreateGroup, diff.UpdateGroup:
			return !e.GroupMembers // the group's policies, not its members
		}
		return false
	}
	return false
}

// learnInvitations sets, for pending members the state has no time for,
// when they were invited: from the newest "Add Member" entry (a creation)
// of the account's audit log in the last window. It makes the
// pending-invitation age and --reinvite-after survive a restart with no
// state file.
func (p *Planner) learnInvitations(ctx context.Context, log auditLog, acct *cloudflare.Account, now time.Time, window time.Duration) {
	if p.state == nil || acct == nil {
		return
	}
	known := p.state.Pending[acct.ID]
	var unknown []cloudflare.Member
	for _, m := range acct.Members {
		if _, ok := known[m.Email]; m.Status == "pending" && !ok {
			unknown = append(unknown, m)
		}
	}
	if len(unknown) == 0 {
		return
	}
	// (before a little past now: an invitation sent this very instant
	// counts)
	res, err := log.AuditLog(ctx, acct.ID, cloudflare.AuditQuery{Since: now.Add(-window), Before: now.Add(time.Minute), MaxPages: auditPages, NewestFirst: true})
	if err != nil {
		return // the state's first-seen time stands
	}
	if p.state.Pending[acct.ID] == nil {
		p.state.Pending[acct.ID] = map[string]time.Time{}
	}
	for _, m := range unknown {
		for _, e := range slices.Backward(res.Entries) {
			if e.Kind == cloudflare.AuditMember && e.ActionType == "create" && e.Result != "failure" &&
				(e.MemberID == m.ID || e.Email == m.Email) {
				p.state.Pending[acct.ID][m.Email] = e.Time
				break
			}
		}
	}
}

// invitationWindow is how far back invitations are looked for: longer
// than an invitation lives (a few days), and than --reinvite-after.
func invitationWindow(reinviteAfter time.Duration) time.Duration {
	return max(30*24*time.Hour, 2*reinviteAfter)
}

// lookBack reads the log in [since, before) for a plan with no earlier
// read: the out-of-band entries, and cfaccess's own changes added to a
// copy of own.
//
// An entry made with cfaccess's credentials that its journal cannot judge
// (older than the process, without a state file) is not named as drift:
// it bounds the search as cfaccess's own changes do, since cfaccess may
// well have made it.
func lookBack(ctx context.Context, log auditLog, accountID string, since, before time.Time, judge judgeFunc, own map[string]time.Time) ([]cloudflare.AuditEntry, map[string]time.Time) {
	res, err := log.AuditLog(ctx, accountID, cloudflare.AuditQuery{Since: since, Before: before, MaxPages: auditPages, NewestFirst: true})
	if err != nil {
		return nil, own
	}
	own = maps.Clone(own)
	var out []cloudflare.AuditEntry
	for _, e := range judged(res.Entries, judge) {
		switch e.Origin {
		case cloudflare.Ours, cloudflare.Unjudged:
			noteOwn(own, e.Time, e.MemberID, e.Email, e.GroupID)
		default:
			out = append(out, e)
		}
	}
	return out, own
}
