package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/diff"
)

// pendingState remembers since when each pending member has been pending,
// per account: Cloudflare's API gives no invitation time, and an
// invitation expires after a few days. It is what --reinvite-after reads.
type pendingState struct {
	Version int                             `json:"version"`
	Pending map[string]map[string]time.Time `json:"pending"` // account id -> email -> since
	// Applied is the revision last applied per followed repository
	// (URL without credentials, #ref): a head that does not descend
	// from it is refused, across restarts too.
	Applied map[string]string `json:"applied,omitempty"`
}

func loadPending(path string) (*pendingState, error) {
	st := &pendingState{Version: 1, Pending: map[string]map[string]time.Time{}}
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
	return st, nil
}

// observe records the pending members of an account seen at now, and
// forgets those no longer pending.
func (st *pendingState) observe(acct *cloudflare.Account, now time.Time) {
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

// due reports whether a pending member's invitation is older than after.
func (st *pendingState) due(accountID string, l diff.Live, now time.Time, after time.Duration) bool {
	since, ok := st.Pending[accountID][l.Email]
	return ok && now.Sub(since) >= after
}

// save writes the state atomically (a temporary file renamed over it).
func (st *pendingState) save(path string) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".cfaccess-state-")
	if err != nil {
		return fmt.Errorf("write --state-file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write --state-file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write --state-file: %w", err)
	}
	return os.Rename(tmp.Name(), path)
}
