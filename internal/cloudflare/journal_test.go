package cloudflare

import (
	"encoding/json"
	"testing"
	"time"
)

// write records a write sent at "at" and answered at done with status.
func write(j *Journal, clock *time.Time, at, done time.Time, method, path string, status int) {
	*clock = at
	seq := j.record(method, path, "")
	*clock = done
	j.done(seq, status)
}

// The journal tells cfaccess's own audit entries by the writes it sent:
// the credentials must be cfaccess's, and a write must explain the entry.
func TestJournalJudges(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	us := Identity{TokenID: "00000000000000000000000000000001"}
	entry := func(id string, at time.Time, token, method, uri string) AuditEntry {
		return AuditEntry{ID: id, Time: at, TokenID: token, ActorContext: "api_token", Method: method, URI: uri}
	}
	const alice = "/accounts/a/members/m1"
	var now time.Time
	newJournal := func() *Journal {
		now = t0
		j := NewJournal(func() time.Time { return now })
		write(j, &now, t0.Add(10*time.Minute), t0.Add(10*time.Minute+time.Second), "PUT", alice, 200)
		write(j, &now, t0.Add(20*time.Minute), t0.Add(20*time.Minute+time.Second), "POST", "/accounts/a/members", 400) // refused: not logged
		return j
	}
	for _, tc := range []struct {
		name string
		e    AuditEntry
		want Origin
	}{
		{"another token, whatever it claims", AuditEntry{ID: "x", Time: t0.Add(10 * time.Minute), TokenID: "other", Method: "PUT", URI: alice, UserAgent: "cfaccess/v1 (revision 0123456)"}, Others},
		{"our write", entry("e1", t0.Add(10*time.Minute+500*time.Millisecond), us.TokenID, "PUT", alice), Ours},
		{"our write, the clocks 5 s apart", entry("e1", t0.Add(10*time.Minute-5*time.Second), us.TokenID, "PUT", alice), Ours},
		{"our write, the whole path logged", entry("e1", t0.Add(10*time.Minute), us.TokenID, "PUT", "/client/v4"+alice+"?x=1"), Ours},
		{"our token, another member", entry("e1", t0.Add(10*time.Minute), us.TokenID, "PUT", "/accounts/a/members/m2"), OurCredentials},
		{"our token, another method", entry("e1", t0.Add(10*time.Minute), us.TokenID, "DELETE", alice), OurCredentials},
		{"our token, two minutes after our write", entry("e1", t0.Add(12*time.Minute), us.TokenID, "PUT", alice), OurCredentials},
		{"our token, a write refused with 400 (not logged) explains nothing", entry("e1", t0.Add(20*time.Minute), us.TokenID, "POST", "/accounts/a/members"), OurCredentials},
		{"our token, before the journal began", entry("e1", t0.Add(-time.Hour), us.TokenID, "PUT", alice), Unjudged},
		{"our token, just as the journal began", entry("e1", t0.Add(5*time.Second), us.TokenID, "PUT", alice), Unjudged},
	} {
		if got := newJournal().Judge(tc.e, us); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}

	// One write explains one entry: a second entry of the same path, made
	// with cfaccess's token while it wrote, was made by someone else; and
	// verdicts stand when judged again.
	j := newJournal()
	ours := entry("e1", t0.Add(10*time.Minute), us.TokenID, "PUT", alice)
	theirs := entry("e2", t0.Add(10*time.Minute+2*time.Second), us.TokenID, "PUT", alice)
	if a, b := j.Judge(ours, us), j.Judge(theirs, us); a != Ours || b != OurCredentials {
		t.Errorf("two entries, one write: %v %v", a, b)
	}
	if a, b := j.Judge(theirs, us), j.Judge(ours, us); a != OurCredentials || b != Ours {
		t.Errorf("judged again: %v %v", a, b)
	}
	write(j, &now, t0.Add(10*time.Minute+3*time.Second), t0.Add(10*time.Minute+4*time.Second), "PUT", alice, 200)
	if got := j.Judge(theirs, us); got != OurCredentials {
		t.Errorf("a later write of the same path took someone else's entry for its own: %v", got)
	}

	// Two writers of one path in the same seconds: the write goes to the
	// entry sent with its User-Agent, whichever is judged first.
	now = t0
	j = NewJournal(func() time.Time { return now })
	now = t0.Add(10 * time.Minute)
	seq := j.record("PUT", alice, "cfaccess/v1 (revision aaaaaaa)")
	j.done(seq, 200)
	other := entry("e3", t0.Add(10*time.Minute-time.Second), us.TokenID, "PUT", alice)
	other.UserAgent = "cfaccess/v1 (revision bbbbbbb)"
	mine := entry("e4", t0.Add(10*time.Minute), us.TokenID, "PUT", alice)
	mine.UserAgent = "cfaccess/v1 (revision aaaaaaa)"
	if got := j.JudgeAll([]AuditEntry{other, mine}, us); got[0] != OurCredentials || got[1] != Ours {
		t.Errorf("the other writer's entry taken for ours: %v", got)
	}

	// Two slow writes of one path: each entry goes to the write whose time
	// in flight holds it, not to the one that began nearer.
	now = t0
	j = NewJournal(func() time.Time { return now })
	write(j, &now, t0.Add(time.Minute), t0.Add(time.Minute+20*time.Second), "POST", "/accounts/a/iam/user_groups/g/members", 200)
	write(j, &now, t0.Add(time.Minute+25*time.Second), t0.Add(time.Minute+40*time.Second), "POST", "/accounts/a/iam/user_groups/g/members", 200)
	first := entry("e5", t0.Add(time.Minute+19900*time.Millisecond), us.TokenID, "POST", "/accounts/a/iam/user_groups/g/members")
	second := entry("e6", t0.Add(time.Minute+39*time.Second), us.TokenID, "POST", "/accounts/a/iam/user_groups/g/members")
	if got := j.JudgeAll([]AuditEntry{first, second}, us); got[0] != Ours || got[1] != Ours {
		t.Errorf("two slow writes: %v, want both ours", got)
	}

	// The Global API key: the log names its user, in context api_key.
	key := Identity{KeyEmail: "ops@example.com"}
	if !key.Made(AuditEntry{ActorContext: "api_key", ActorEmail: "OPS@example.com"}) || key.Made(AuditEntry{ActorContext: "dash", ActorEmail: "ops@example.com"}) {
		t.Error("the Global API key's entries are not told by context and user")
	}
	if (Identity{}).Made(AuditEntry{}) || (Identity{}).Known() {
		t.Error("an unknown identity made something")
	}
}

// Saved and read back, the journal vouches for nothing between the save
// and the restart (a crash there loses writes), and spends no write
// twice.
func TestJournalAcrossRestarts(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	us := Identity{TokenID: "00000000000000000000000000000001"}
	now := t0
	j := NewJournal(func() time.Time { return now })
	write(j, &now, t0.Add(time.Minute), t0.Add(time.Minute), "DELETE", "/accounts/a/members/m1", 200)
	e := AuditEntry{ID: "e1", Time: t0.Add(time.Minute), TokenID: us.TokenID, Method: "DELETE", URI: "/accounts/a/members/m1"}
	if j.Judge(e, us) != Ours {
		t.Fatal("not ours")
	}
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	var back Journal
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	saved, restart := t0.Add(5*time.Minute), t0.Add(time.Hour)
	back.Resume(saved, func() time.Time { return restart })
	at := func(d time.Duration) AuditEntry {
		return AuditEntry{ID: d.String(), Time: t0.Add(d), TokenID: us.TokenID, Method: "PUT", URI: "/accounts/a/members/m9"}
	}
	for _, tc := range []struct {
		e    AuditEntry
		want Origin
	}{
		{e, Ours},                             // spent on it before the save
		{at(3 * time.Minute), OurCredentials}, // while the saving process kept count
		{at(5 * time.Minute), Unjudged},       // after the save: its writes may be lost
		{at(30 * time.Minute), Unjudged},      // the restart's gap
		{at(61 * time.Minute), OurCredentials},
	} {
		if got := back.Judge(tc.e, us); got != tc.want {
			t.Errorf("entry at +%v: %v, want %v", tc.e.Time.Sub(t0), got, tc.want)
		}
	}
}

// The journal is bounded; what it forgot, it no longer vouches for.
func TestJournalBounded(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	us := Identity{TokenID: "00000000000000000000000000000001"}
	now := t0
	j := NewJournal(func() time.Time { return now })
	for i := range JournalMax + 10 {
		at := t0.Add(time.Duration(i) * time.Second)
		path := "/accounts/a/members/m"
		if i < 10 {
			path += "-forgotten"
		}
		write(j, &now, at, at, "PUT", path, 200)
	}
	if n := len(j.Writes()); n != JournalMax {
		t.Errorf("%d writes kept, want %d", n, JournalMax)
	}
	forgotten := AuditEntry{ID: "old", Time: t0.Add(5 * time.Second), TokenID: us.TokenID, Method: "PUT", URI: "/accounts/a/members/m-forgotten"}
	if got := j.Judge(forgotten, us); got != Unjudged {
		t.Errorf("an entry of a forgotten write: %v, want Unjudged", got)
	}
	now = t0.Add(JournalKeep + 24*time.Hour)
	j.record("PUT", "/accounts/a/members/m", "")
	if n := len(j.Writes()); n != 1 {
		t.Errorf("%d writes kept after %v, want only the newest", n, JournalKeep)
	}
}
