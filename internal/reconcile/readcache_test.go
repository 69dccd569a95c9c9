package reconcile

import (
	"testing"

	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/diff"
)

func TestAttributionMatches(t *testing.T) {
	t.Parallel()
	const gid, mid = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
	member := func(typ string) cloudflare.AuditEntry {
		return cloudflare.AuditEntry{Kind: cloudflare.AuditMember, ActionType: typ, MemberID: mid, Email: "alice@example.com"}
	}
	group := func(members bool, mentions ...string) cloudflare.AuditEntry {
		return cloudflare.AuditEntry{Kind: cloudflare.AuditUserGroup, GroupID: gid, GroupMembers: members, Mentions: mentions}
	}
	for _, tc := range []struct {
		what  string
		c     diff.Change
		e     cloudflare.AuditEntry
		match bool
	}{
		{"a removal undoes an addition", diff.Change{Action: diff.Remove, MemberID: mid, Email: "alice@example.com"}, member("create"), true},
		{"a removal does not undo a removal", diff.Change{Action: diff.Remove, MemberID: mid}, member("delete"), false},
		{"an invitation undoes a removal", diff.Change{Action: diff.Invite, Email: "alice@example.com"}, member("delete"), true},
		{"an invitation does not undo an edit", diff.Change{Action: diff.Invite, Email: "alice@example.com"}, member("update"), false},
		{"an update undoes an edit", diff.Change{Action: diff.Update, MemberID: mid, Email: "alice@example.com"}, member("update"), true},
		{"an update does not undo a removal of an older membership", diff.Change{Action: diff.Update, MemberID: "other", Email: "alice@example.com"}, member("delete"), false},
		{"a re-invitation undoes nothing", diff.Change{Action: diff.Reinvite, MemberID: mid, Email: "alice@example.com"}, member("create"), false},
		{"leaving a group is not the member's own edit", diff.Change{Action: diff.LeaveGroup, GroupID: gid, MemberID: mid, Email: "alice@example.com"}, member("update"), false},
		{"leaving a group undoes a change of its members naming her", diff.Change{Action: diff.LeaveGroup, GroupID: gid, MemberID: mid, Email: "alice@example.com"}, group(true, mid), true},
		{"leaving a group is not someone else joining", diff.Change{Action: diff.LeaveGroup, GroupID: gid, MemberID: mid, Email: "alice@example.com"}, group(true, "bob@example.com"), false},
		{"a group's policies are not its members", diff.Change{Action: diff.UpdateGroup, GroupID: gid}, group(true, mid), false},
		{"a group's policies undo an edit of the group", diff.Change{Action: diff.UpdateGroup, GroupID: gid}, group(false), true},
	} {
		if got := matches(tc.c, tc.e, nil); got != tc.match {
			t.Errorf("%s: matches %v, want %v", tc.what, got, tc.match)
		}
	}
}
