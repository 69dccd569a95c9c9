package cloudflare

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Which audit-log entries are cfaccess's own is decided on evidence, never
// on what a request claims. A User-Agent is a header anyone can send
// (issue 19: an insider sent "cfaccess/…" with her own token, made herself
// Super Administrator, and the daemon took it for its own write). Two
// things can be trusted:
//
//   - the credentials Cloudflare says made the change: the entry's
//     actor.token_id (the id GET /user/tokens/verify gives, cloudflare-go
//     v7.9.0 LogAuditListResponseActor.TokenID, "The API token ID when the
//     actor context is an api_token or oauth"), or for the Global API key
//     the context api_key and the key's user;
//   - what this process itself wrote: every write request it sends is
//     recorded in a Journal before it goes out.
//
// An entry is cfaccess's own only when both hold: made with cfaccess's
// credentials, and matching a write of the journal (the same method and
// path, between when it was sent and when its answer came, give or take
// JournalSkew; each write matching one entry). An entry made with cfaccess's credentials that no write explains
// was made by someone else holding them — a leaked token, or a second
// process running with it — and is reported as such. One older than the
// journal's reach (before the process started, or during a gap between a
// state file's last save and a restart) cannot be judged either way, and
// is left out of both.

// Origin says who made an audit entry, as far as the evidence goes.
type Origin uint8

const (
	// notJudged: not looked at.
	notJudged Origin = iota
	// Others: made with other credentials than cfaccess's: out of band,
	// whatever its User-Agent says.
	Others
	// Ours: made with cfaccess's credentials, and written by this
	// process (its journal has the write).
	Ours
	// OurCredentials: made with cfaccess's credentials, but not written
	// by this process while its journal was keeping count: someone else
	// holds them.
	OurCredentials
	// Unjudged: made with cfaccess's credentials before the journal's
	// reach: it cannot tell.
	Unjudged
)

func (o Origin) String() string {
	switch o {
	case Others:
		return "others"
	case Ours:
		return "ours"
	case OurCredentials:
		return "our_credentials"
	case Unjudged:
		return "unjudged"
	}
	return "not_judged"
}

// Identity is cfaccess's credentials as the audit log names the actor of
// a change: an API token by its id, the Global API key by its user.
type Identity struct {
	TokenID  string
	KeyEmail string // lower case
}

// Known reports whether the identity can be recognised in the log.
func (id Identity) Known() bool { return id.TokenID != "" || id.KeyEmail != "" }

// Made reports whether Cloudflare says the entry was made with these
// credentials.
func (id Identity) Made(e AuditEntry) bool {
	switch {
	case id.TokenID != "":
		return e.TokenID == id.TokenID
	case id.KeyEmail != "":
		return e.ActorContext == "api_key" && strings.EqualFold(e.ActorEmail, id.KeyEmail)
	}
	return false
}

// JournalSkew is how far an audit entry's time may fall outside the write
// it records (from sending it to its answer): the difference of the two
// clocks, Cloudflare's and this machine's. With NTP (the docs ask for it)
// they are within a second; a clock off by more than this makes
// cfaccess's own writes look like someone else's, loudly. The journal's
// reach starts this long after the process, so that an earlier process's
// last writes are not judged.
const JournalSkew = 10 * time.Second

// Journal bounds: writes older than JournalKeep are forgotten (the
// attribution window is a week), and at most JournalMax are kept.
const (
	JournalKeep = 8 * 24 * time.Hour
	JournalMax  = 50_000
)

// Write is a write request cfaccess sent to Cloudflare.
type Write struct {
	// At is when it was sent, Done when its answer came (or the attempt
	// failed).
	At     time.Time `json:"at"`
	Done   time.Time `json:"done,omitzero"`
	Method string    `json:"method"`
	// Path is the request's path under the API base
	// ("/accounts/{id}/members/{member_id}").
	Path string `json:"path"`
	// Status is the answer's status; 0 when none came (a timeout, a cut
	// connection): the change may have been made all the same.
	Status int `json:"status,omitempty"`
	// UserAgent is the one it was sent with: not evidence (anyone can
	// send it), only a hint of which of two entries of the same path, in
	// the same seconds, is this write's.
	UserAgent string `json:"user_agent,omitempty"`
	// Entry is the audit entry matched to it.
	Entry string `json:"entry,omitempty"`

	seq uint64 // to find it again when its answer comes
}

// Span is a stretch of time the journal kept count through: From until To
// (zero To: still open, this process).
type Span struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to,omitzero"`
}

// Journal records every write request this process sends, to tell its own
// audit entries from others'. It is safe for concurrent use; its JSON form
// is kept in the state file (--state-file), so that it survives restarts.
type Journal struct {
	mu     sync.Mutex
	spans  []Span
	writes []Write
	seq    uint64
	// elsewhere are the entries judged OurCredentials, by id: a later
	// write of the same path cannot take them for its own.
	elsewhere map[string]time.Time
	// clock stamps the writes: the clock the audit log's times are
	// compared with.
	clock func() time.Time
}

// NewJournal returns a journal keeping count from now on clock (time.Now
// when nil).
func NewJournal(clock func() time.Time) *Journal {
	if clock == nil {
		clock = time.Now
	}
	return &Journal{spans: []Span{{From: clock()}}, clock: clock}
}

type journalJSON struct {
	Spans  []Span  `json:"spans"`
	Writes []Write `json:"writes"`
}

// MarshalJSON writes the journal (its spans and writes); the process that
// reads it back ends its reach where it was saved (Resume).
func (j *Journal) MarshalJSON() ([]byte, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return json.Marshal(journalJSON{Spans: j.spans, Writes: j.writes})
}

// UnmarshalJSON reads a journal saved by an earlier process: its spans end
// where that process saved it (see Resume).
func (j *Journal) UnmarshalJSON(b []byte) error {
	var v journalJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.spans, j.writes = v.Spans, v.Writes
	return nil
}

// Resume starts keeping count again from now on clock (time.Now when
// nil), in a journal read from a state file saved at savedAt: the writes
// of the process that saved it after savedAt (it may have crashed) are
// unknown, so its reach ends there.
func (j *Journal) Resume(savedAt time.Time, clock func() time.Time) {
	if clock == nil {
		clock = time.Now
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.clock = clock
	now := clock()
	for i := range j.spans {
		if j.spans[i].To.IsZero() || j.spans[i].To.After(savedAt) {
			j.spans[i].To = savedAt
		}
	}
	j.spans = slices.DeleteFunc(j.spans, func(s Span) bool { return !s.To.After(s.From) })
	j.spans = append(j.spans, Span{From: now})
}

// record notes a write about to be sent, and returns what done needs to
// find it again.
func (j *Journal) record(method, path, userAgent string) uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.clock == nil {
		j.clock = time.Now
	}
	j.seq++
	w := Write{At: j.clock(), Method: method, Path: path, UserAgent: userAgent, seq: j.seq}
	j.writes = append(j.writes, w)
	j.pruneLocked(w.At)
	return w.seq
}

// done notes when a write's answer came and its status (0: none came).
func (j *Journal) done(seq uint64, status int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for i := len(j.writes) - 1; i >= 0; i-- {
		if j.writes[i].seq == seq {
			j.writes[i].Done, j.writes[i].Status = j.clock(), status
			return
		}
	}
}

// Writes returns a copy of the writes kept, oldest first.
func (j *Journal) Writes() []Write {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.writes)
}

// pruneLocked forgets writes past the bounds. The journal's reach starts
// after the newest write forgotten: an entry of it could no longer be
// told from someone else's.
func (j *Journal) pruneLocked(now time.Time) {
	cut := 0
	for cut < len(j.writes) && (now.Sub(j.writes[cut].At) > JournalKeep || len(j.writes)-cut > JournalMax) {
		cut++
	}
	for id, t := range j.elsewhere {
		if now.Sub(t) > JournalKeep {
			delete(j.elsewhere, id)
		}
	}
	if cut == 0 {
		return
	}
	reach := j.writes[cut-1].end().Add(JournalSkew)
	j.writes = slices.Delete(j.writes, 0, cut)
	for i := range j.spans {
		if j.spans[i].From.Before(reach) {
			j.spans[i].From = reach
		}
	}
	j.spans = slices.DeleteFunc(j.spans, func(s Span) bool { return !s.To.IsZero() && !s.To.After(s.From) })
}

// reaches reports whether the journal kept count at t: a write of this
// process then would be in it. The ends of a closed span are pulled in by
// JournalSkew: an entry just after a save may be of a write after it.
func (j *Journal) reachesLocked(t time.Time) bool {
	for _, s := range j.spans {
		if !t.Before(s.From.Add(JournalSkew)) && (s.To.IsZero() || t.Before(s.To.Add(-JournalSkew))) {
			return true
		}
	}
	return false
}

// end is when a write's attempt was over: its answer, or, with none noted
// yet, its sending.
func (w Write) end() time.Time {
	if w.Done.IsZero() {
		return w.At
	}
	return w.Done
}

// Judge says who made an entry (JudgeAll of one).
func (j *Journal) Judge(e AuditEntry, id Identity) Origin {
	return j.JudgeAll([]AuditEntry{e}, id)[0]
}

// JudgeAll says who made each entry: Others unless id made it; then Ours
// when a write of the journal explains it (the write is then spent on
// it), OurCredentials when the journal kept count then and none does, and
// Unjudged before its reach. A verdict of Ours or OurCredentials stands
// when an entry is judged again. Writes go first to the entries sent with
// their User-Agent, then to the closest in time: two writers of one path
// in the same seconds each get their own entry, as far as the hint goes —
// and whichever way, one entry is left over, and reported.
func (j *Journal) JudgeAll(es []AuditEntry, id Identity) []Origin {
	out := make([]Origin, len(es))
	j.mu.Lock()
	defer j.mu.Unlock()
	spent := map[string]bool{}
	for _, w := range j.writes {
		if w.Entry != "" {
			spent[w.Entry] = true
		}
	}
	var open []int
	for i, e := range es {
		switch {
		case !id.Made(e):
			out[i] = Others
		case spent[e.ID]:
			out[i] = Ours
		default:
			if _, ok := j.elsewhere[e.ID]; ok {
				out[i] = OurCredentials
			} else {
				open = append(open, i)
			}
		}
	}
	// The writes that may explain an entry, by method and path.
	byPath := map[string][]int{}
	for i, w := range j.writes {
		// 4xx answers are not logged (GA changelog, 2026-03-10): such a
		// write explains no entry.
		if w.Entry == "" && (w.Status < 400 || w.Status >= 500) {
			byPath[w.Method+" "+w.Path] = append(byPath[w.Method+" "+w.Path], i)
		}
	}
	for _, sameAgent := range []bool{true, false} {
		for _, i := range open {
			if out[i] != notJudged {
				continue
			}
			if w := j.explainLocked(es[i], byPath[es[i].Method+" "+auditPath(es[i].URI)], sameAgent); w >= 0 {
				j.writes[w].Entry, out[i] = es[i].ID, Ours
			}
		}
	}
	for _, i := range open {
		switch {
		case out[i] != notJudged:
		case j.reachesLocked(es[i].Time):
			if j.elsewhere == nil {
				j.elsewhere = map[string]time.Time{}
			}
			j.elsewhere[es[i].ID] = es[i].Time
			out[i] = OurCredentials
		default:
			out[i] = Unjudged
		}
	}
	return out
}

// explainLocked returns, of the writes candidates (indexes of the same
// method and path), the one that explains e — not spent, e within its
// time give or take JournalSkew, the closest to it (none closer than a
// write whose span holds e), and with sameAgent its User-Agent — or -1.
func (j *Journal) explainLocked(e AuditEntry, candidates []int, sameAgent bool) int {
	best, bestD := -1, time.Duration(0)
	for _, i := range candidates {
		w := j.writes[i]
		if w.Entry != "" || sameAgent && w.UserAgent != e.UserAgent {
			continue
		}
		if e.Time.Before(w.At.Add(-JournalSkew)) || e.Time.After(w.end().Add(JournalSkew)) {
			continue
		}
		var d time.Duration
		switch {
		case e.Time.Before(w.At):
			d = w.At.Sub(e.Time)
		case e.Time.After(w.end()):
			d = e.Time.Sub(w.end())
		}
		if best < 0 || d < bestD {
			best, bestD = i, d
		}
	}
	return best
}

// journalPath is a request path as the journal keeps it: under the API
// base, without a trailing slash.
func journalPath(path string) string {
	if i := strings.Index(path, "/client/v4"); i >= 0 {
		path = path[i+len("/client/v4"):]
	}
	return strings.TrimSuffix(path, "/")
}

// auditPath is an entry's URI as the journal keeps paths: without a
// query, and under the API base should the log give the whole path.
func auditPath(uri string) string {
	uri, _, _ = strings.Cut(uri, "?")
	return journalPath(uri)
}

// writes reports whether a request changes something (is journaled).
func writes(method string) bool {
	return method != http.MethodGet && method != http.MethodHead && method != http.MethodOptions
}
