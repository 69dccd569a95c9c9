package report

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cfaccess/reconciler/internal/check"
	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/desired"
	"github.com/cfaccess/reconciler/internal/diff"
	"github.com/cfaccess/reconciler/internal/reconcile"
)

// NewPlanDoc says each fact once, as people read it: zones by name, what
// apply did with each change, and what the plan leaves alone in the
// order every format lists it.
func TestNewPlanDoc(t *testing.T) {
	t.Parallel()
	dns := desired.Access{Role: "Domain DNS", Resource: desired.Resource{Kind: desired.ZoneKey, Zone: "z1"}}
	plan := &diff.Plan{
		Changes: []diff.Change{
			{Action: diff.Invite, Email: "ann@example.com", Add: []desired.Access{dns}, Status: "pending"},
			{Action: diff.Update, Email: "bea@example.com", Add: []desired.Access{dns}},
			{Action: diff.Remove, Email: "owner@example.com", Remove: []desired.Access{dns},
				Protects: []diff.ProtectedLoss{{Email: "owner@example.com", Lose: []desired.Access{dns}}}},
			{Action: diff.LeaveGroup, Email: "cy@example.com", Group: "Ops"},
		},
		Unmanaged:     []diff.Live{{Email: "old@example.com", Inherited: []diff.Inherited{{Access: dns, Group: "Ops"}}}},
		Waiting:       []diff.Waiting{{Email: "ann@example.com", Group: "Ops"}},
		GroupsWaiting: []string{"SCIM team"},
		GroupAccess: []diff.GroupAccess{{Email: "dee@example.com", Group: "Legacy", Access: []desired.Access{dns}},
			{Email: "eve@example.com", Group: "SCIM team", Missing: true}},
	}
	ap := &reconcile.AccountPlan{Provider: "prod", AccountID: "acc", Plan: plan,
		Live: &cloudflare.Account{ZoneNames: map[string]string{"z1": "example.com"},
			OrgAdmins:  []cloudflare.OrgMember{{Email: "boss@example.com", Status: "accepted"}},
			NotChecked: []cloudflare.NotChecked{{What: "user groups", Why: "forbidden"}}},
		Results: []reconcile.Result{{Note: "already a member", MemberID: "m1"}, {Err: reconcile.ErrHeldBack},
			{Err: fmt.Errorf("owner@example.com: %w", reconcile.ErrProtected)}, {Err: errors.New("boom")}}}
	doc := NewPlanDoc(&reconcile.Outcome{Checked: &check.Checked{}, Applied: true, Accounts: []*reconcile.AccountPlan{ap}})

	type change struct {
		Action, Add, Result, Failure, Note string
		Outcome                            ChangeOutcome
		Pending, Refused                   bool
	}
	var got []change
	for _, c := range doc.Accounts[0].Changes {
		add := ""
		if len(c.Add) > 0 {
			add = c.Add[0].String()
		}
		got = append(got, change{c.Action, add, c.Result, c.Failure, c.Note, c.Outcome, c.Pending, c.Refused != ""})
	}
	refused := "failed: owner@example.com: " + reconcile.ErrProtected.Error()
	want := []change{
		{"invite", "Domain DNS on zone:example.com", "applied", "", "already a member", ChangeApplied, true, false},
		{"update", "Domain DNS on zone:example.com", "held back", "", "", ChangeHeldBack, false, false},
		{"remove", "", refused, "owner@example.com: " + reconcile.ErrProtected.Error(), "", ChangeRefused, false, true},
		{"leave_group", "", "failed: boom", "boom", "", ChangeFailed, false, false},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}

	var kinds []OutsideKind
	for _, x := range doc.Accounts[0].Outside {
		kinds = append(kinds, x.Kind)
	}
	wantKinds := []OutsideKind{OutsideWaiting, OutsideGroupWaiting, OutsideGroupAccess, OutsideGroupMissing, OutsideOrgAdmin, OutsideNotChecked}
	if diff := cmp.Diff(wantKinds, kinds); diff != "" {
		t.Errorf("outside (-want +got):\n%s", diff)
	}
	wantUnmanaged := []MemberDoc{{Email: "old@example.com", Inherited: []InheritedDoc{
		{AccessDoc: AccessDoc{"Domain DNS", "zone:example.com"}, Via: "user group Ops", Group: "Ops"}}}}
	if diff := cmp.Diff(wantUnmanaged, doc.Accounts[0].UnmanagedMembers); diff != "" {
		t.Errorf("unmanaged (-want +got):\n%s", diff)
	}
	wantSum := SummaryDoc{Invite: 1, Update: 1, Remove: 1, LeaveGroup: 1, Changes: 4, Refused: 1, HeldBack: 1, FailedChanges: 2}
	if diff := cmp.Diff(wantSum, doc.Summary); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
}
