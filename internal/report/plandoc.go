package report

import (
	"errors"
	"strings"
	"time"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/diff"
	"github.com/cfaccess/reconciler/internal/reconcile"
)

// PlanDoc is a plan (or an apply's outcome) as every format shows it:
// NewPlanDoc builds it once, with display names resolved, and text,
// markdown, JSON and SARIF render it. Its JSON is the stable form of a
// plan (format_version 1); fields tagged json:"-" are what text and
// markdown say beyond it. The other *Doc types are its parts.
type PlanDoc struct {
	FormatVersion int          `json:"format_version"`
	Revision      string       `json:"revision"`
	Valid         bool         `json:"valid"`
	Denied        bool         `json:"denied"`
	Applied       bool         `json:"applied"`
	Accounts      []AccountDoc `json:"accounts"`
	// Warnings and Violations are about the repository as a whole.
	Warnings   []check.Finding `json:"warnings"`
	Violations []check.Finding `json:"violations"`
	Summary    SummaryDoc      `json:"summary"`

	// RevisionSubject and RevisionAuthor describe the revision's commit.
	RevisionSubject string `json:"-"`
	RevisionAuthor  string `json:"-"`
	// Findings are Warnings and Violations together, in the order checked.
	Findings []check.Finding `json:"-"`
}

// SummaryDoc counts a plan's changes over every account.
type SummaryDoc struct {
	// LosingAccess counts the people the plan takes any access from, on
	// any path (what max_removals limits).
	LosingAccess    int `json:"losing_access"`
	Invite          int `json:"invite"`
	Update          int `json:"update"`
	Remove          int `json:"remove"`
	Reinvite        int `json:"reinvite"`
	LeaveGroup      int `json:"leave_group,omitempty"`
	JoinGroup       int `json:"join_user_group,omitempty"`
	CreateUserGroup int `json:"create_user_group,omitempty"`
	UpdateUserGroup int `json:"update_user_group,omitempty"`

	// Changes counts the changes of every plan, and Refused those refused
	// for taking access from a protected member; after apply, HeldBack
	// counts the changes a guardrail on the live state held back, and
	// FailedChanges those that failed (refused ones among them).
	// AccountsFailed is set when an account could not be planned.
	Changes        int  `json:"-"`
	Refused        int  `json:"-"`
	HeldBack       int  `json:"-"`
	FailedChanges  int  `json:"-"`
	AccountsFailed bool `json:"-"`
}

// AccountDoc is one account's plan, or why there is none.
type AccountDoc struct {
	Account   string      `json:"account"`
	AccountID string      `json:"account_id"`
	Name      string      `json:"name,omitempty"`
	Changes   []ChangeDoc `json:"changes"`
	Unmanaged []string    `json:"unmanaged"`
	Protected []string    `json:"protected"`
	Error     string      `json:"error,omitempty"`
	Breaker   string      `json:"breaker,omitempty"`
	// LosingAccess counts the people the plan takes access away from
	// (protected members aside), Losing names them with what they lose.
	LosingAccess int       `json:"losing_access"`
	Losing       []LossDoc `json:"losing,omitempty"`
	// Warnings and Violations are always empty in format 1, kept so that
	// its readers stay valid: findings are repository-wide, at the top
	// level.
	Warnings   []check.Finding `json:"warnings"`
	Violations []check.Finding `json:"violations"`
	// GroupAccess is access through user groups the plan leaves in place
	// (not declared, the group not managed); OrgAdmins the organization's
	// Super Administrators; NotChecked what the credentials could not
	// read. Omitted when empty.
	GroupAccess []GroupAccessDoc `json:"group_access,omitempty"`
	OrgAdmins   []string         `json:"organization_super_admins,omitempty"`
	NotChecked  []string         `json:"not_checked,omitempty"`
	// Waiting are declared members of user groups who join once they
	// accept their invitation ({email, user_group}).
	Waiting []WaitingDoc `json:"waiting,omitempty"`
	// Provisioned are members nobody declared, kept because the identity
	// provider provisioned them (scim).
	Provisioned []string `json:"provisioned,omitempty"`

	// Failed is set when the account cannot be applied (Error says why);
	// Planned when it has a plan, even so (the plan the breaker refused).
	Failed  bool `json:"-"`
	Planned bool `json:"-"`
	// UnmanagedMembers are Unmanaged with the access each holds through
	// user groups.
	UnmanagedMembers []MemberDoc `json:"-"`
	// Outside is what the plan leaves alone because cfaccess does not
	// control it, and what could not be checked, in the order text and
	// markdown list it.
	Outside []OutsideDoc `json:"-"`
}

// MemberDoc is a live member nobody declared, with the access it holds
// through user groups.
type MemberDoc struct {
	Email     string
	Inherited []InheritedDoc
}

// OutsideKind says what an OutsideDoc is.
type OutsideKind int

const (
	// OutsideWaiting is a declared member of a user group who joins once
	// they accept their invitation.
	OutsideWaiting OutsideKind = iota
	// OutsideGroupWaiting is a user group the identity provider has yet
	// to create (scim).
	OutsideGroupWaiting
	// OutsideGroupMissing is a declared member not in a user group the
	// identity provider owns (scim): not put in.
	OutsideGroupMissing
	// OutsideGroupAccess is access nobody declared, held through a user
	// group cfaccess does not manage.
	OutsideGroupAccess
	// OutsideOrgAdmin is a Super Administrator of the organization.
	OutsideOrgAdmin
	// OutsideNotChecked is what the credentials could not read.
	OutsideNotChecked
)

// OutsideDoc is one thing a plan leaves alone because cfaccess does not
// control it, or could not check.
type OutsideDoc struct {
	Kind  OutsideKind
	Email string
	Group string
	// Access is what a user group gives (OutsideGroupAccess).
	Access []AccessDoc
	// Status is an organization Super Administrator's membership status.
	Status string
	// What could not be checked, and Why.
	What, Why string
}

// LossDoc is a person the plan takes access from: what they lose, and
// whether they leave the account.
type LossDoc struct {
	Email     string      `json:"email"`
	Access    []AccessDoc `json:"access"`
	Removed   bool        `json:"removed,omitempty"`
	Protected bool        `json:"protected,omitempty"`
}

// WaitingDoc is a member who joins a user group once they accept their
// invitation, or (no email) a user group the identity provider has yet to
// create.
type WaitingDoc struct {
	Email string `json:"email,omitempty"`
	Group string `json:"user_group"`
}

// GroupAccessDoc is a member's access through a user group the plan
// leaves in place.
type GroupAccessDoc struct {
	Email  string      `json:"email"`
	Group  string      `json:"user_group"`
	Access []AccessDoc `json:"access"`
	// Missing is set for a declared member not in the group, which the
	// identity provider owns.
	Missing bool `json:"missing,omitempty"`
}

// AccessDoc is a role on a resource, zones by name where the account
// knows them.
type AccessDoc struct {
	Role     string `json:"role"`
	Resource string `json:"resource"`
}

// String is the access as people read it: "Domain DNS on zone:example.com".
func (a AccessDoc) String() string { return a.Role + " on " + a.Resource }

// ChangeDoc is one change of a plan, with its result after apply.
type ChangeDoc struct {
	Action   string      `json:"action"`
	Email    string      `json:"email"`
	MemberID string      `json:"member_id,omitempty"`
	Add      []AccessDoc `json:"add"`
	Remove   []AccessDoc `json:"remove"`
	Sources  []string    `json:"sources"`
	Reasons  []string    `json:"reasons,omitempty"`
	Risks    []string    `json:"risks,omitempty"`
	Result   string      `json:"result,omitempty"` // apply: applied, or failed: …
	Note     string      `json:"note,omitempty"`   // apply: how it was applied, when not as planned
	// Group is the user group a leave_group change takes the member out
	// of; Inherited the access the member holds through user groups.
	Group     string         `json:"user_group,omitempty"`
	Inherited []InheritedDoc `json:"inherited,omitempty"`
	// Drift is the out-of-band change this change corrects, from the
	// account's audit log.
	Drift *DriftDoc `json:"drift,omitempty"`
	// Refused says why the change is not made: it would take access from
	// a protected member.
	Refused string `json:"refused,omitempty"`

	// Pending is set when the member's invitation is pending.
	Pending bool `json:"-"`
	// Outcome is what apply did with the change ("" before apply), and
	// Failure why it was not made (failed or refused).
	Outcome ChangeOutcome `json:"-"`
	Failure string        `json:"-"`
}

// ChangeOutcome is what apply did with a change.
type ChangeOutcome string

const (
	ChangeApplied  ChangeOutcome = "applied"
	ChangeHeldBack ChangeOutcome = "held back" // a guardrail on the live state denies
	ChangeRefused  ChangeOutcome = "refused"   // it would take access from a protected member
	ChangeFailed   ChangeOutcome = "failed"
)

// DriftDoc is who made an out-of-band change, how and when.
type DriftDoc struct {
	Actor     string    `json:"actor"`
	ActorType string    `json:"actor_type,omitempty"`
	Context   string    `json:"context"`
	IP        string    `json:"ip,omitempty"`
	At        time.Time `json:"at"`
	Action    string    `json:"action,omitempty"`
	Text      string    `json:"text"`
}

// InheritedDoc is access held through a user group.
type InheritedDoc struct {
	AccessDoc
	Via string `json:"via"`
	// Group is the user group Via names.
	Group string `json:"-"`
}

// NewPlanDoc builds the document of a plan, or of an apply's outcome.
func NewPlanDoc(o *reconcile.Outcome) *PlanDoc {
	doc := &PlanDoc{FormatVersion: 1, Revision: o.Revision.SHA, Valid: o.Checked.Valid(), Denied: o.Checked.Denied(), Applied: o.Applied,
		Accounts: []AccountDoc{}, Warnings: []check.Finding{}, Violations: []check.Finding{},
		RevisionSubject: o.Revision.Subject, RevisionAuthor: o.Revision.Author, Findings: o.Checked.Findings()}
	for _, f := range doc.Findings {
		if f.Policy != "" || f.Severity == "deny" {
			doc.Violations = append(doc.Violations, f)
		} else {
			doc.Warnings = append(doc.Warnings, f)
		}
	}
	for _, ap := range o.Accounts {
		a := newAccountDoc(ap)
		doc.Summary.count(a)
		doc.Accounts = append(doc.Accounts, a)
	}
	doc.Summary.Refused, doc.Summary.HeldBack = o.Refused(), o.HeldBack()
	doc.Summary.FailedChanges, doc.Summary.AccountsFailed = o.FailedChanges(), o.Failed()
	return doc
}

// Tally counts the account's changes by action, and its losses.
func (a AccountDoc) Tally() SummaryDoc {
	var s SummaryDoc
	s.count(a)
	return s
}

// count adds an account's changes and losses.
func (s *SummaryDoc) count(a AccountDoc) {
	s.LosingAccess += a.LosingAccess
	s.Changes += len(a.Changes)
	for _, c := range a.Changes {
		switch diff.Action(c.Action) {
		case diff.Invite:
			s.Invite++
		case diff.Update:
			s.Update++
		case diff.Remove:
			s.Remove++
		case diff.Reinvite:
			s.Reinvite++
		case diff.LeaveGroup:
			s.LeaveGroup++
		case diff.JoinGroup:
			s.JoinGroup++
		case diff.CreateGroup:
			s.CreateUserGroup++
		case diff.UpdateGroup:
			s.UpdateUserGroup++
		}
	}
}

func newAccountDoc(ap *reconcile.AccountPlan) AccountDoc {
	a := AccountDoc{Account: ap.Provider, AccountID: ap.AccountID, Name: ap.AccountName, Changes: []ChangeDoc{},
		Unmanaged: []string{}, Protected: []string{}, Warnings: []check.Finding{}, Violations: []check.Finding{},
		Failed: ap.Err != nil, Planned: ap.Plan != nil}
	if ap.Err != nil {
		a.Error = ap.Err.Error()
	}
	if p := ap.Plan; p != nil {
		a.Breaker, a.LosingAccess = p.Breaker, p.LosingAccess()
		a.Protected = append(a.Protected, p.Protected...)
		a.Losing = lossDocs(ap)
		for i, c := range p.Changes {
			a.Changes = append(a.Changes, changeDoc(ap, c, i))
		}
		a.members(ap)
		a.groupsOutside(ap)
	}
	a.orgOutside(ap)
	return a
}

func lossDocs(ap *reconcile.AccountPlan) []LossDoc {
	var out []LossDoc
	for _, l := range ap.Plan.Losing {
		out = append(out, LossDoc{Email: l.Email, Access: accessDocs(ap, l.Lose), Removed: l.Removed, Protected: l.Protected})
	}
	return out
}

// members lists the members nobody declared: unmanaged (prune off) and
// provisioned by the identity provider.
func (a *AccountDoc) members(ap *reconcile.AccountPlan) {
	for _, u := range ap.Plan.Unmanaged {
		a.Unmanaged = append(a.Unmanaged, u.Email)
		a.UnmanagedMembers = append(a.UnmanagedMembers, MemberDoc{Email: u.Email, Inherited: inheritedDocs(ap, u.Inherited)})
	}
	for _, u := range ap.Plan.Provisioned {
		a.Provisioned = append(a.Provisioned, u.Email)
	}
}

// groupsOutside lists what the plan leaves alone in user groups: members
// waiting to join, groups waiting to be created, access through groups
// cfaccess does not manage.
func (a *AccountDoc) groupsOutside(ap *reconcile.AccountPlan) {
	for _, w := range ap.Plan.Waiting {
		a.Waiting = append(a.Waiting, WaitingDoc{Email: w.Email, Group: w.Group})
		a.Outside = append(a.Outside, OutsideDoc{Kind: OutsideWaiting, Email: w.Email, Group: w.Group})
	}
	for _, g := range ap.Plan.GroupsWaiting {
		a.Waiting = append(a.Waiting, WaitingDoc{Group: g})
		a.Outside = append(a.Outside, OutsideDoc{Kind: OutsideGroupWaiting, Group: g})
	}
	for _, g := range ap.Plan.GroupAccess {
		gd := GroupAccessDoc{Email: g.Email, Group: g.Group, Access: accessDocs(ap, g.Access), Missing: g.Missing}
		a.GroupAccess = append(a.GroupAccess, gd)
		kind := OutsideGroupAccess
		if g.Missing {
			kind = OutsideGroupMissing
		}
		a.Outside = append(a.Outside, OutsideDoc{Kind: kind, Email: g.Email, Group: g.Group, Access: gd.Access})
	}
}

// orgOutside lists the organization's Super Administrators and what the
// credentials could not read.
func (a *AccountDoc) orgOutside(ap *reconcile.AccountPlan) {
	if ap.Live == nil {
		return
	}
	for _, m := range ap.Live.OrgAdmins {
		a.OrgAdmins = append(a.OrgAdmins, m.Email)
		a.Outside = append(a.Outside, OutsideDoc{Kind: OutsideOrgAdmin, Email: m.Email, Status: m.Status})
	}
	for _, nc := range ap.Live.NotChecked {
		a.NotChecked = append(a.NotChecked, nc.String())
		a.Outside = append(a.Outside, OutsideDoc{Kind: OutsideNotChecked, What: nc.What, Why: nc.Why})
	}
}

// changeDoc is the i-th change of an account's plan, with its result
// after apply.
func changeDoc(ap *reconcile.AccountPlan, c diff.Change, i int) ChangeDoc {
	cd := ChangeDoc{Action: string(c.Action), Email: c.Email, MemberID: c.MemberID, Add: accessDocs(ap, c.Add), Remove: accessDocs(ap, c.Remove),
		Sources: []string{}, Reasons: c.Reasons, Risks: c.Risks, Group: c.Group, Inherited: inheritedDocs(ap, c.Inherited),
		Refused: reconcile.Refusal(ap, c), Pending: c.Status == "pending"}
	for _, s := range c.Sources {
		cd.Sources = append(cd.Sources, s.String())
	}
	if d := c.Drift; d != nil {
		cd.Drift = &DriftDoc{Actor: d.Actor, ActorType: d.ActorType, Context: d.Context, IP: d.IP, At: d.At.UTC(), Action: d.Action, Text: driftText(d)}
	}
	if i < len(ap.Results) {
		cd.result(ap.Results[i])
	}
	return cd
}

// result says what apply did with the change.
func (cd *ChangeDoc) result(r reconcile.Result) {
	cd.Result, cd.Outcome = "applied", ChangeApplied
	switch {
	case errors.Is(r.Err, reconcile.ErrHeldBack):
		cd.Result, cd.Outcome = "held back", ChangeHeldBack
	case r.Err != nil:
		cd.Result, cd.Outcome, cd.Failure = "failed: "+r.Err.Error(), ChangeFailed, r.Err.Error()
		if errors.Is(r.Err, reconcile.ErrProtected) {
			cd.Outcome = ChangeRefused
		}
	}
	if r.MemberID != "" {
		cd.MemberID = r.MemberID
	}
	cd.Note = r.Note
}

// accessDocs are accesses as people read them (never nil).
func accessDocs(ap *reconcile.AccountPlan, as []desired.Access) []AccessDoc {
	out := []AccessDoc{}
	for _, a := range as {
		d := ap.Display(a)
		out = append(out, AccessDoc{d.Role, d.Resource.String()})
	}
	return out
}

// inheritedDocs are accesses held through user groups, as people read
// them (nil for none).
func inheritedDocs(ap *reconcile.AccountPlan, ins []diff.Inherited) []InheritedDoc {
	var out []InheritedDoc
	for _, in := range ins {
		d := ap.Display(in.Access)
		out = append(out, InheritedDoc{AccessDoc: AccessDoc{d.Role, d.Resource.String()}, Via: "user group " + in.Group, Group: in.Group})
	}
	return out
}

// driftText says who made an out-of-band change, for people: "added in
// the dashboard by mallory@example.com at 2026-11-25 10:42 UTC".
func driftText(d *diff.Drift) string {
	verb := "changed"
	first, _, _ := strings.Cut(d.Action, " ")
	switch strings.ToLower(first) {
	case "add", "create", "invite":
		verb = "added"
	case "edit", "update", "replace":
		verb = "changed"
	case "remove", "delete":
		verb = "removed"
	}
	s := verb
	if ctx := cloudflare.ContextText(d.Context); ctx != "" {
		s += " " + ctx
	}
	s += " by " + d.Actor + " at " + d.At.UTC().Format("2006-01-02 15:04 UTC")
	if d.Action != "" {
		s += " (" + d.Action + ")"
	}
	return s
}
