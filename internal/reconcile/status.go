package reconcile

import (
	"sync"
	"time"

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
	// Result is invalid, denied, unverified or non_fast_forward.
	Result   string    `json:"result,omitempty"`
	Findings []Finding `json:"findings"`
}

// PlanSummary counts an account's planned changes.
type PlanSummary struct {
	Invite    int `json:"invite"`
	Update    int `json:"update"`
	Remove    int `json:"remove"`
	Reinvite  int `json:"reinvite"`
	Unmanaged int `json:"unmanaged"`
}

// AccountStatus is an account's last reconcile.
type AccountStatus struct {
	Account       string       `json:"account"`
	AccountID     string       `json:"account_id"`
	Name          string       `json:"name,omitempty"`
	LastReconcile time.Time    `json:"last_reconcile"`
	Result        string       `json:"result"` // success, error, denied
	Error         string       `json:"error,omitempty"`
	Breaker       string       `json:"breaker,omitempty"`
	Plan          *PlanSummary `json:"plan,omitempty"`
	// Outside is access the plan leaves because cfaccess does not control
	// it: through user groups it does not manage, and the organization's
	// Super Administrators. NotChecked is what the credentials could not
	// read.
	Outside    []string `json:"outside_control,omitempty"`
	NotChecked []string `json:"not_checked,omitempty"`
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
	Violations      []Finding       `json:"violations"`
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
		s.Violations = []Finding{}
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

func (b *Board) update(f func(*Status)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(&b.status)
}
