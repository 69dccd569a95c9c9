package diff

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cfaccess/reconciler/internal/desired"
)

var admin = desired.Access{Role: "Administrator", Resource: acct}

func groupSummary(p *Plan) []string {
	var out []string
	for _, c := range p.Changes {
		out = append(out, strings.TrimSpace(fmt.Sprintf("%s %s %s", c.Action, c.Email, c.Group)))
	}
	for _, g := range p.GroupAccess {
		out = append(out, fmt.Sprintf("report %s %s missing=%v", g.Email, g.Group, g.Missing))
	}
	for _, w := range p.Waiting {
		out = append(out, "waiting "+w.Email+" "+w.Group)
	}
	for _, g := range p.GroupsWaiting {
		out = append(out, "group waiting "+g)
	}
	for _, u := range p.Unmanaged {
		out = append(out, "unmanaged "+u.Email)
	}
	for _, u := range p.Provisioned {
		out = append(out, "provisioned "+u.Email)
	}
	return out
}

// User groups: undeclared access through them, and mirrored groups.
func TestComputeUserGroups(t *testing.T) {
	t.Parallel()
	alice := Live{ID: "a", Email: "alice@example.com", Status: "accepted", Access: []desired.Access{dns},
		Inherited: []Inherited{{Access: admin, Group: "ops", GroupID: "g1"}}}
	bob := Live{ID: "b", Email: "bob@example.com", Status: "accepted", Access: []desired.Access{{Role: MinimalRole, Resource: acct}}}
	pat := Live{ID: "p", Email: "pat@example.com", Status: "pending", Access: []desired.Access{dns}}
	wantDNS := func(emails ...string) []Want {
		var out []Want
		for _, e := range emails {
			out = append(out, Want{Email: e, Access: []desired.Access{dns}})
		}
		return out
	}
	oncall := WantGroup{Name: "oncall", Access: []desired.Access{ro}, Members: []string{"alice@example.com", "pat@example.com"}}
	liveOncall := LiveGroup{ID: "g2", Name: "oncall", Access: []desired.Access{ro}, Members: []LiveGroupMember{{ID: "c", Email: "carol@example.com", Status: "accepted"}}}
	carol := Live{ID: "c", Email: "carol@example.com", Status: "accepted", Access: []desired.Access{dns}, Inherited: []Inherited{{Access: ro, Group: "oncall", GroupID: "g2"}}}
	for _, tc := range []struct {
		name string
		want []Want
		live []Live
		opts Options
		out  []string
	}{
		{"undeclared group access is reported", wantDNS("alice@example.com"), []Live{alice}, Options{MaxRemovals: 5},
			[]string{"report alice@example.com ops missing=false"}},
		{"declared through the group too: nothing to say", []Want{{Email: "alice@example.com", Access: []desired.Access{dns, admin}}}, []Live{alice},
			Options{MaxRemovals: 5, PruneUserGroups: true}, nil},
		{"prune_user_groups takes them out", wantDNS("alice@example.com"), []Live{alice}, Options{MaxRemovals: 5, PruneUserGroups: true},
			[]string{"leave_group alice@example.com ops"}},
		{"scim: reported, never taken out", wantDNS("alice@example.com"), []Live{alice}, Options{MaxRemovals: 5, PruneUserGroups: true, SCIM: true},
			[]string{"report alice@example.com ops missing=false"}},
		{"leaving groups counts against the breaker", wantDNS("alice@example.com"), []Live{alice}, Options{MaxRemovals: 0, PruneUserGroups: true},
			nil},
		{"scim keeps Minimal-only members, showing what their groups give", nil,
			[]Live{{ID: "b", Email: "bob@example.com", Status: "accepted", Access: bob.Access, Inherited: []Inherited{{Access: admin, Group: "ops", GroupID: "g1"}}}},
			Options{Prune: true, MaxRemovals: 5, SCIM: true},
			[]string{"report bob@example.com ops missing=false", "provisioned bob@example.com"}},
		{"a member being removed does not also leave its groups", wantDNS("dave@example.com"),
			[]Live{{ID: "c", Email: "carol@example.com", Status: "accepted", Access: []desired.Access{dns}},
				{ID: "d", Email: "dave@example.com", Status: "accepted", Access: []desired.Access{dns}}},
			Options{Prune: true, MaxRemovals: 1, UserGroups: []WantGroup{{Name: "oncall", Access: []desired.Access{ro}}}, LiveGroups: []LiveGroup{liveOncall}},
			[]string{"remove carol@example.com"}},
		{"group members are matched by id, not by the group answer's email",
			wantDNS("alice@example.com"), []Live{{ID: "a", Email: "alice@example.com", Status: "accepted", Access: []desired.Access{dns}}},
			Options{MaxRemovals: 5, UserGroups: []WantGroup{{Name: "oncall", Access: []desired.Access{ro}, Members: []string{"alice@example.com"}}},
				LiveGroups: []LiveGroup{{ID: "g2", Name: "oncall", Access: []desired.Access{ro}, Members: []LiveGroupMember{{ID: "a"}}}}},
			nil},
		{"a protected member declared in a group is neither joined nor waiting", nil,
			[]Live{{ID: "o", Email: "owner@example.com", Status: "accepted", Access: []desired.Access{dns}}},
			Options{MaxRemovals: 5, Protected: []string{"owner@example.com"}, UserGroups: []WantGroup{{Name: "oncall", Access: []desired.Access{ro}, Members: []string{"owner@example.com"}}},
				LiveGroups: []LiveGroup{{ID: "g2", Name: "oncall", Access: []desired.Access{ro}}}},
			nil},
		{"a mirrored group is made, members join, pending ones wait", wantDNS("alice@example.com", "pat@example.com"), []Live{alice, pat},
			Options{MaxRemovals: 5, UserGroups: []WantGroup{oncall}},
			[]string{"create_user_group  oncall", "join_user_group alice@example.com oncall", "report alice@example.com ops missing=false", "waiting pat@example.com oncall"}},
		{"a mirrored group's undeclared member leaves it, whatever prune_user_groups", wantDNS("alice@example.com", "carol@example.com"), []Live{carol},
			Options{MaxRemovals: 5, UserGroups: []WantGroup{oncall}, LiveGroups: []LiveGroup{liveOncall}},
			[]string{"leave_group carol@example.com oncall", "invite alice@example.com", "waiting alice@example.com oncall", "waiting pat@example.com oncall"}},
		{"scim: a mirrored group is not made, nor its members changed", wantDNS("alice@example.com", "carol@example.com"), []Live{alice, carol},
			Options{MaxRemovals: 5, SCIM: true, UserGroups: []WantGroup{oncall}, LiveGroups: []LiveGroup{liveOncall}},
			[]string{"report alice@example.com oncall missing=true", "report alice@example.com ops missing=false", "report carol@example.com oncall missing=false", "waiting pat@example.com oncall"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compute(tc.want, tc.live, tc.opts)
			if tc.out == nil && err == nil && len(p.Changes)+len(p.GroupAccess)+len(p.Waiting) == 0 {
				return // nothing to do, as expected
			}
			if tc.out == nil {
				if err == nil || p.Breaker == "" {
					t.Fatalf("want the breaker, got %v", groupSummary(p))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := groupSummary(p); !slices.Equal(got, tc.out) {
				t.Errorf("plan\n%q\nwant\n%q", got, tc.out)
			}
		})
	}
	// Two live groups of one declared name: an error, nothing planned.
	_, err := Compute(nil, nil, Options{UserGroups: []WantGroup{oncall}, LiveGroups: []LiveGroup{liveOncall, {ID: "g3", Name: "oncall"}}})
	if err == nil || !strings.Contains(err.Error(), `2 user groups of the account are named "oncall"`) {
		t.Errorf("duplicate names: %v", err)
	}
}
