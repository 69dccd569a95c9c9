package report

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/cfaccess/reconciler/internal/atomicfile"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/reconcile"
)

// A saved plan (`plan --out FILE`, then `apply FILE`), as Terraform users
// expect for reviewed applies: what was reviewed is what is applied. The
// file holds the revision, each account's live state as planned (members
// and user groups, with a fingerprint) and the changes. `apply FILE`
// plans again at the same revision and applies only when the live state
// and the changes are the same as saved; otherwise it refuses and says
// what changed. It never applies the file's changes blindly: a file
// edited by hand cannot add a change.

// savedPlanKind and savedPlanVersion identify the file.
const (
	savedPlanKind    = "cfaccess-plan"
	savedPlanVersion = 1
)

// SavedPlan is the file of `plan --out`.
type SavedPlan struct {
	Kind     string    `json:"kind"`
	Version  int       `json:"version"`
	Created  time.Time `json:"created_at"`
	Revision string    `json:"revision"`
	Modified bool      `json:"modified,omitempty"`
	// Provider is the --provider the plan was made with ("" for all).
	Provider string         `json:"provider,omitempty"`
	Accounts []SavedAccount `json:"accounts"`
}

// SavedAccount is one account of a saved plan.
type SavedAccount struct {
	Provider  string `json:"provider"`
	AccountID string `json:"account_id"`
	// Live is the account as read: a line per member ("email status:
	// access, …") and per user group, sorted; Fingerprint its hash.
	Live        []string `json:"live"`
	Fingerprint string   `json:"fingerprint"`
	// Changes are the planned changes, a line each.
	Changes []string `json:"changes"`
}

// Save makes the saved plan of an outcome, planned for provider ("" for
// all). An account that could not be planned cannot be saved.
func Save(o *reconcile.Outcome, provider string, now time.Time) (*SavedPlan, error) {
	sp := &SavedPlan{Kind: savedPlanKind, Version: savedPlanVersion, Created: now.UTC(), Revision: o.Revision.SHA, Modified: o.Revision.Modified, Provider: provider}
	doc := NewPlanDoc(o)
	for i, ap := range o.Accounts {
		if ap.Err != nil || ap.Plan == nil {
			return nil, fmt.Errorf("%s could not be planned: a plan to save needs every account", ap.Provider)
		}
		sp.Accounts = append(sp.Accounts, savedAccount(ap, doc.Accounts[i]))
	}
	return sp, nil
}

// savedAccount is an account as a saved plan keeps it: its live state
// and its plan's changes (from its document), a line each.
func savedAccount(ap *reconcile.AccountPlan, ad AccountDoc) SavedAccount {
	sa := SavedAccount{Provider: ap.Provider, AccountID: ap.AccountID, Live: liveLines(ap), Changes: []string{}}
	for _, c := range ad.Changes {
		sa.Changes = append(sa.Changes, savedChangeLine(c))
	}
	h := sha256.New()
	for _, l := range sa.Live {
		h.Write([]byte(l + "\n"))
	}
	sa.Fingerprint = hex.EncodeToString(h.Sum(nil))
	return sa
}

// liveLines describes an account's live members and user groups, a
// sorted line each.
func liveLines(ap *reconcile.AccountPlan) []string {
	show := func(as []desired.Access) string {
		out := make([]string, len(as))
		for i, a := range as {
			out[i] = ap.Display(a).String()
		}
		slices.Sort(out)
		return strings.Join(out, ", ")
	}
	var lines []string
	for _, m := range ap.Live.Members {
		line := fmt.Sprintf("member %s %s: %s", m.Email, m.Status, show(m.Access))
		if m.Denies > 0 || len(m.Unknown) > 0 {
			line += fmt.Sprintf(" (deny policies %d, unknown %s)", m.Denies, strings.Join(m.Unknown, ", "))
		}
		lines = append(lines, line)
	}
	for _, g := range ap.Live.UserGroups {
		var members []string
		for _, m := range g.Members {
			members = append(members, m.Email)
		}
		slices.Sort(members)
		lines = append(lines, fmt.Sprintf("user group %s: %s; members %s", g.Name, show(g.Access), strings.Join(members, ", ")))
	}
	for _, m := range ap.Live.OrgAdmins {
		lines = append(lines, "organization super administrator "+m.Email)
	}
	slices.Sort(lines)
	return lines
}

// savedChangeLine describes a change in one line.
func savedChangeLine(c ChangeDoc) string {
	parts := []string{c.Action, c.Email}
	if c.Group != "" {
		parts = append(parts, "user group "+c.Group)
	}
	for _, a := range c.Add {
		parts = append(parts, "+"+a.String())
	}
	for _, a := range c.Remove {
		parts = append(parts, "-"+a.String())
	}
	return strings.Join(parts, " ")
}

// WriteFile writes the saved plan to path.
//
// It holds emails: it is written readable by its owner only, to a
// temporary file renamed over path, so that no one else reads it even
// for an instant and a crash leaves the old file or the new whole. A path
// that is a symbolic link is refused: writing through it would overwrite
// (and re-mode) whatever it points to.
func (sp *SavedPlan) WriteFile(path string) error {
	data, err := json.MarshalIndent(sp, "", "  ")
	if err != nil {
		return err
	}
	switch info, err := os.Lstat(path); {
	case err == nil && info.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("%s is a symbolic link: refused, as writing through it would overwrite what it points to; give the path of a plain file", path)
	case err == nil && !info.Mode().IsRegular():
		return fmt.Errorf("%s is not a plain file: refused", path)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return err
	}
	return atomicfile.Write(path, append(data, '\n'))
}

// MaxSavedPlan is the largest saved plan read: a plan of 50,000 members
// is a few megabytes; a larger file is not one of ours, and is refused
// before it is read whole.
const MaxSavedPlan = 64 << 20

// ReadSavedPlan reads a file of `plan --out`.
func ReadSavedPlan(path string) (*SavedPlan, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read the saved plan: %w", err)
	}
	defer f.Close()
	tooLarge := fmt.Errorf("%s is larger than %d MiB: not a plan saved by reconciler plan --out", path, MaxSavedPlan>>20)
	if info, err := f.Stat(); err == nil && info.Mode().IsRegular() && info.Size() > MaxSavedPlan {
		return nil, tooLarge // known without reading it
	}
	// A pipe, or a file growing meanwhile, is bounded as it is read.
	data, err := io.ReadAll(io.LimitReader(f, MaxSavedPlan+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("read the saved plan: %w", err)
	case len(data) > MaxSavedPlan:
		return nil, tooLarge
	}
	var sp SavedPlan
	if err := json.Unmarshal(data, &sp); err != nil || sp.Kind != savedPlanKind {
		return nil, fmt.Errorf("%s is not a plan saved by reconciler plan --out", path)
	}
	if sp.Version != savedPlanVersion {
		return nil, fmt.Errorf("%s is a saved plan of version %d; this reconciler reads version %d: plan again", path, sp.Version, savedPlanVersion)
	}
	return &sp, nil
}

// Differences lists why a fresh outcome is not the saved plan: another
// revision, an account's live state changed (member by member), or other
// changes planned (time passed: a grant expired). None means the saved
// plan is what applying now would do.
func (sp *SavedPlan) Differences(o *reconcile.Outcome) []string {
	var out []string
	if o.Revision.SHA != sp.Revision || o.Revision.Modified != sp.Modified {
		out = append(out, fmt.Sprintf("the repository is at %s, the plan was made at %s", revisionText(o.Revision.SHA, o.Revision.Modified), revisionText(sp.Revision, sp.Modified)))
	}
	saved := map[string]SavedAccount{}
	for _, sa := range sp.Accounts {
		saved[sa.Provider] = sa
	}
	doc := NewPlanDoc(o)
	for i, ap := range o.Accounts {
		sa, ok := saved[ap.Provider]
		delete(saved, ap.Provider)
		switch {
		case !ok:
			out = append(out, ap.Provider+": not in the saved plan")
			continue
		case ap.Err != nil || ap.Plan == nil:
			out = append(out, fmt.Sprintf("%s: could not be planned: %v", ap.Provider, ap.Err))
			continue
		case sa.AccountID != ap.AccountID:
			out = append(out, fmt.Sprintf("%s: the plan was made for account %s, the repository now names account %s", ap.Provider, sa.AccountID, ap.AccountID))
			continue
		}
		now := savedAccount(ap, doc.Accounts[i])
		if now.Fingerprint != sa.Fingerprint {
			for _, l := range lineDiff(sa.Live, now.Live) {
				out = append(out, ap.Provider+": live account changed since the plan: "+l)
			}
		}
		for _, l := range lineDiff(sa.Changes, now.Changes) {
			out = append(out, ap.Provider+": the plan would now differ: "+l)
		}
	}
	for p := range saved {
		out = append(out, p+": in the saved plan, not planned now")
	}
	slices.Sort(out)
	return out
}

func revisionText(sha string, modified bool) string {
	if sha == "" {
		sha = "no revision (not a Git checkout)"
	}
	if modified {
		sha += " with uncommitted changes"
	}
	return sha
}

// lineDiff lists the lines only in was ("- …") and only in now ("+ …").
func lineDiff(was, now []string) []string {
	in := func(ls []string) map[string]bool {
		m := make(map[string]bool, len(ls))
		for _, l := range ls {
			m[l] = true
		}
		return m
	}
	wasSet, nowSet := in(was), in(now)
	var out []string
	for _, l := range was {
		if !nowSet[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range now {
		if !wasSet[l] {
			out = append(out, "+ "+l)
		}
	}
	return out
}
