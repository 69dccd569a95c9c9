package reconcile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/cfaccess/reconciler/internal/atomicfile"
	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/diff"
)

// State is what the reconciler remembers between runs (--state-file):
// since when each pending member has been pending, per account —
// Cloudflare's API gives no invitation time, and an invitation expires
// after a few days — the revision last applied per followed repository,
// and the journal of the writes it made. The Planner that holds it is its
// one writer (the journal itself is written by the clients it is given
// to).
type State struct {
	Version int                             `json:"version"`
	Pending map[string]map[string]time.Time `json:"pending"` // account id -> email -> since
	// Applied is the revision last applied per followed repository (URL
	// without credentials, #ref): a head that does not descend from it is
	// refused, across restarts too.
	Applied map[string]string `json:"applied,omitempty"`
	// Journal is every write request sent to Cloudflare lately, by which
	// the audit log's entries of cfaccess's own changes are told from
	// others' (cloudflare.Journal): give it to the clients that write.
	Journal *cloudflare.Journal `json:"journal,omitempty"`
	// SavedAt is when the state was saved: the journal read back vouches
	// for nothing after it.
	SavedAt time.Time `json:"saved_at,omitzero"`
}

// NewState is an empty state, its journal keeping count from now on clock
// (the clock the audit log's times are compared with).
func NewState(clock func() time.Time) *State {
	return &State{Version: 1, Pending: map[string]map[string]time.Time{}, Applied: map[string]string{}, Journal: cloudflare.NewJournal(clock)}
}

// LoadState reads a state file, resuming its journal on clock; a missing
// file is an empty state.
func LoadState(path string, clock func() time.Time) (*State, error) {
	st := NewState(clock)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read --state-file: %w", err)
	}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("read --state-file %s: %w", path, err)
	}
	if st.Pending == nil {
		st.Pending = map[string]map[string]time.Time{}
	}
	if st.Applied == nil {
		st.Applied = map[string]string{}
	}
	if st.Journal == nil {
		st.Journal = cloudflare.NewJournal(clock)
	} else {
		st.Journal.Resume(st.SavedAt, clock)
	}
	return st, nil
}

// observe records the pending members of an account seen at now, and
// forgets those no longer pending.
func (st *State) observe(acct *cloudflare.Account, now time.Time) {
	old := st.Pending[acct.ID]
	cur := map[string]time.Time{}
	for _, m := range acct.Members {
		if m.Status != "pending" {
			continue
		}
		since, ok := old[m.Email]
		if !ok {
			since = now
		}
		cur[m.Email] = since
	}
	st.Pending[acct.ID] = cur
}

// record updates the state after a plan, applied or not: members seen
// pending keep their first-seen time; those just (re)invited start now.
func (st *State) record(o *Outcome) {
	for _, ap := range o.Accounts {
		if ap.Live == nil {
			continue
		}
		st.observe(ap.Live, o.Now)
		for _, r := range ap.Results {
			if r.Err == nil && (r.Change.Action == diff.Invite || r.Change.Action == diff.Reinvite) {
				st.Pending[ap.AccountID][r.Change.Email] = o.Now
			}
		}
	}
}

// due reports whether a pending member's invitation is older than after.
func (st *State) due(accountID string, l diff.Live, now time.Time, after time.Duration) bool {
	since, ok := st.Pending[accountID][l.Email]
	return ok && now.Sub(since) >= after
}

// Save writes the state at now atomically (a temporary file renamed over
// it).
func (st *State) save(path string, now time.Time) error {
	st.SavedAt = now.UTC()
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, append(data, '\n')); err != nil {
		return fmt.Errorf("write --state-file: %w", err)
	}
	return nil
}
