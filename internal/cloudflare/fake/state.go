package fake

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// snapshot is what an account holds, to keep it across restarts: its
// roles, groups, zones, members, user groups, organization members and
// audit log. Requests logged, failures, latency and the rate-limit window
// belong to a run and are not kept.
type snapshot struct {
	Version          int
	AccountID        string
	PermissionGroups []permissionGroupRecord
	Roles            []roleRecord
	ResourceGroups   []ResourceGroup
	Zones            []zoneRecord
	Members          []*memberRecord
	UserGroups       []*userGroupRecord
	OrgMembers       []orgMemberRecord
	Seq              int
	Audit            []savedAudit
	AuditSeq         int
}

// savedAudit is an audit entry with when it becomes visible and whether
// it was lost (SetAuditDelay, LoseAuditEntries).
type savedAudit struct {
	AuditEntry
	Visible time.Time
	Lost    bool
}

// snapshotVersion is the format of a snapshot.
const snapshotVersion = 1

// Snapshot returns the account's state as JSON (Restore reads it back).
func (s *Server) Snapshot() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	audit := make([]savedAudit, len(s.audit))
	for i, e := range s.audit {
		audit[i] = savedAudit{AuditEntry: *e, Visible: e.visible, Lost: e.lost}
	}
	return json.Marshal(snapshot{Version: snapshotVersion, AccountID: s.opts.AccountID, PermissionGroups: s.permGroup, Roles: s.roles,
		ResourceGroups: s.rgroups, Zones: s.zones, Members: s.members, UserGroups: s.userGroups, OrgMembers: s.orgMembers,
		Seq: s.seq, Audit: audit, AuditSeq: s.auditSeq})
}

// Restore replaces the account's state by a snapshot of the same account;
// on any error the account is left as it was.
func (s *Server) Restore(b []byte) error {
	var snap snapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		return fmt.Errorf("not a snapshot of a simulated account: %w", err)
	}
	if snap.Version != snapshotVersion {
		return fmt.Errorf("a snapshot of version %d; this release reads version %d", snap.Version, snapshotVersion)
	}
	if snap.AccountID != s.opts.AccountID {
		return fmt.Errorf("a snapshot of account %s, not %s", snap.AccountID, s.opts.AccountID)
	}
	byEmail := map[string]*memberRecord{}
	for _, m := range snap.Members {
		if m == nil || m.ID == "" || m.Email == "" {
			return fmt.Errorf("a snapshot with a member without an id or an email")
		}
		byEmail[strings.ToLower(m.Email)] = m
	}
	for _, g := range snap.UserGroups {
		if g == nil || g.ID == "" {
			return fmt.Errorf("a snapshot with a user group without an id")
		}
	}
	audit := make([]*AuditEntry, len(snap.Audit))
	for i, e := range snap.Audit {
		if e.ID == "" {
			return fmt.Errorf("a snapshot with an audit entry without an id")
		}
		entry := e.AuditEntry
		entry.visible, entry.lost = e.Visible, e.Lost
		audit[i] = &entry
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.permGroup, s.roles, s.rgroups, s.zones = snap.PermissionGroups, snap.Roles, snap.ResourceGroups, snap.Zones
	s.members, s.byEmail, s.userGroups, s.orgMembers = snap.Members, byEmail, snap.UserGroups, snap.OrgMembers
	s.seq, s.audit, s.auditSeq = snap.Seq, audit, snap.AuditSeq
	return nil
}
