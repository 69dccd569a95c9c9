package daemon

import (
	"sync"

	"time"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/reconcile"

	"github.com/cfaccess/reconciler/internal/gitsource"
)

// RevisionStatus names a commit.
type RevisionStatus struct {
	SHA     string `json:"sha"`
	Author  string `json:"author,omitempty"`
	Subject string `json:"subject,omitempty"`
}

func revisionStatus(r gitsource.Revision) *RevisionStatus {
	if r.SHA == "" {
		return nil
	}
	return &RevisionStatus{SHA: r.SHA, Author: r.Author, Subject: r.Subject}
}

// BadRevision is a revision not applied, and why.
type BadRevision struct {
	Revision *RevisionStatus `json:"revision,omitempty"`
	Result   Verdict         `json:"result,omitempty"`
	Findings []check.Finding `json:"findings"`
}

// PlanSummary counts an account's planned changes.
type PlanSummary struct {
	Invite    int `json:"invite"`
	Update    int `json:"update"`
	Remove    int `json:"remove"`
	Reinvite  int `json:"reinvite"`
	Unmanaged int `json:"unmanaged"`
	// LosingAccess counts the people the plan takes access from, on any
	// path (what max_removals limits).
	LosingAccess int `json:"losing_access"`
}

// AccountStatus is an account's last reconcile.
type AccountStatus struct {
	Account       string    `json:"account"`
	AccountID     string    `json:"account_id"`
	Name          string    `json:"name,omitempty"`
	LastReconcile time.Time `json:"last_reconcile"`
	Result        string    `json:"result"` // success, error, denied
	Error         string    `json:"error,omitempty"`
	Breaker       string    `json:"breaker,omitempty"`
	// FailingSince is the first of the consecutive reconciles of the
	// account that did not succeed, up to this one (absent on success).
	FailingSince *time.Time   `json:"failing_since,omitempty"`
	Plan         *PlanSummary `json:"plan,omitempty"`
	// Outside is access the plan leaves because cfaccess does not control
	// it: through user groups it does not manage, and the organization's
	// Super Administrators. NotChecked is what the credentials could not
	// read.
	Outside    []string `json:"outside_control,omitempty"`
	NotChecked []string `json:"not_checked,omitempty"`
	// Read says how the live state was had: read in full, or the last
	// read reused because the audit log showed no change.
	Read *ReadStatus `json:"read,omitempty"`
	// Drift are this reconcile's changes that correct a change made
	// outside cfaccess, with who made it (from the audit log).
	Drift []DriftStatus `json:"drift,omitempty"`
	// Members are who has which access, and from which grant (the first
	// maxStatusMembers; MembersOmitted the rest): on the status page, and
	// in /status?members=true.
	Members        []MemberStatus `json:"members,omitempty"`
	MembersOmitted int            `json:"members_omitted,omitempty"`
	// Expiring are the next grants to expire.
	Expiring []ExpiryStatus `json:"expiring,omitempty"`
	// CredentialsElsewhere are the changes of the last week made with
	// cfaccess's own credentials that this process did not make: a leaked
	// token, or a second process running with it (newest last).
	CredentialsElsewhere []reconcile.CredentialUse `json:"credentials_used_elsewhere,omitempty"`
}

// maxStatusMembers bounds the members an account's status lists.
const maxStatusMembers = 5000

// MemberStatus is a live member: its access, and the grants behind it.
type MemberStatus struct {
	Email  string   `json:"email"`
	Status string   `json:"status"`
	Access []string `json:"access"`
	// Grants are "file:line" of the grants, Reasons theirs; none for a
	// member the repository does not declare.
	Grants  []string `json:"grants,omitempty"`
	Reasons []string `json:"reasons,omitempty"`
	// PendingSince is when a pending member was invited.
	PendingSince *time.Time `json:"pending_since,omitempty"`
	// Protected: a protected member or the account's owner, which cfaccess
	// never changes (not drift, declared or not).
	Protected bool `json:"protected,omitempty"`
}

// ExpiryStatus is a grant about to expire.
type ExpiryStatus struct {
	Email   string    `json:"email"`
	Access  string    `json:"access"`
	Expires time.Time `json:"expires"`
	Source  string    `json:"source"`
}

// RecentChange is a change the daemon applied.
type RecentChange struct {
	At      time.Time `json:"at"`
	Account string    `json:"account"`
	Action  string    `json:"action"`
	Email   string    `json:"email,omitempty"`
	Group   string    `json:"user_group,omitempty"`
	Result  string    `json:"result"` // success, error
	// DriftActor and DriftContext name who made the drift it corrected.
	DriftActor   string `json:"drift_actor,omitempty"`
	DriftContext string `json:"drift_context,omitempty"`
}

// maxRecent bounds the changes the status keeps.
const maxRecent = 50

// ReadStatus is how an account's live state was had.
type ReadStatus struct {
	// Read is "full", "reused" or "partial" (the members the audit log
	// names read again, the rest reused).
	Read reconcile.ReadMode `json:"read"`
	// Reason of a full read: first, changes (the audit log shows some),
	// applied (cfaccess changed the account), interval
	// (--full-read-interval), scope (other zones to read),
	// audit_log_unavailable, disabled (--audit-log=false).
	Reason       reconcile.ReadReason `json:"reason,omitempty"`
	LastFullRead time.Time            `json:"last_full_read"`
	// AuditLogError is why the audit log could not be used; Note why a
	// partial read (of the members the log names) was given up.
	AuditLogError string `json:"audit_log_error,omitempty"`
	Note          string `json:"note,omitempty"`
}

// DriftStatus is a correction of an out-of-band change.
type DriftStatus struct {
	Email  string `json:"email,omitempty"`
	Group  string `json:"user_group,omitempty"`
	Change string `json:"change"` // the correcting action: remove, update, invite, …
	// Actor made the out-of-band change, by Context (dash, api_token, …)
	// from IP at At; Action is the audit log's description.
	Actor   string    `json:"actor"`
	Context string    `json:"context"`
	IP      string    `json:"ip,omitempty"`
	At      time.Time `json:"at"`
	Action  string    `json:"action,omitempty"`
	// Applied is whether the correction was made (false in dry-run, or
	// when it failed).
	Applied bool `json:"applied"`
}

// Status is what the daemon shows on /status.
type Status struct {
	Ready           bool            `json:"ready"`
	DryRun          bool            `json:"dry_run"`
	Revision        *RevisionStatus `json:"revision"`
	BadRevision     *BadRevision    `json:"bad_revision,omitempty"`
	SourceError     string          `json:"source_error,omitempty"`
	LastReconcile   time.Time       `json:"last_reconcile"`
	NextReconcile   time.Time       `json:"next_reconcile"`
	NextGrantChange *time.Time      `json:"next_grant_change,omitempty"`
	Accounts        []AccountStatus `json:"accounts"`
	Violations      []check.Finding `json:"violations"`
	// Recent are the last changes applied, newest first.
	Recent []RecentChange `json:"recent_changes,omitempty"`
	// Replica is this replica's part under run --leader-elect (absent
	// without it).
	Replica *ReplicaStatus `json:"replica,omitempty"`
}

// ReplicaStatus is a replica's part under leader election: leading, or
// standing by behind Leader ("" while unknown). A standby writes nothing;
// the rest of the status is what it showed when it last led (empty if it
// never did).
type ReplicaStatus struct {
	Identity string `json:"identity"`
	Leading  bool   `json:"leading"`
	Leader   string `json:"leader"`
}

// Board holds the loop's status and readiness for the HTTP server to
// read: the loop writes it, handlers read copies.
type Board struct {
	mu     sync.Mutex
	status Status
}

// Status returns a copy of the status.
func (b *Board) Status() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.status
	if s.Accounts == nil {
		s.Accounts = []AccountStatus{}
	}
	if s.Violations == nil {
		s.Violations = []check.Finding{}
	}
	return s
}

// Ready reports whether a reconcile of every account has succeeded since
// the start, or since a stall.
func (b *Board) Ready() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.status.Ready
}

// SetReplica sets this replica's part.
func (b *Board) SetReplica(r ReplicaStatus) { b.update(func(s *Status) { s.Replica = &r }) }

func (b *Board) update(f func(*Status)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(&b.status)
}
