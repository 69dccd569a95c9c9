package diff

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cfaccess/reconciler/internal/desired"
)

// Who loses access, on every path, and what the breaker and the
// protection make of it (issue 19: a plan that cut 24 members down to
// Minimal Account Access, through member updates and one user group's
// policies, passed a breaker of max_removals 2).
func TestLosses(t *testing.T) {
	t.Parallel()
	minimal := desired.Access{Role: MinimalRole, Resource: acct}
	analytics := desired.Access{Role: "Analytics", Resource: acct}
	super := desired.Access{Role: "Super Administrator - All Privileges", Resource: acct}
	ops := func(access ...desired.Access) LiveGroup {
		return LiveGroup{ID: "g1", Name: "ops", Access: access}
	}
	inOps := func(as ...desired.Access) []Inherited {
		var out []Inherited
		for _, a := range as {
			out = append(out, Inherited{Access: a, Group: "ops", GroupID: "g1"})
		}
		return out
	}
	groupPos := desired.Pos{File: "groups.yaml", Line: 3}
	wantOps := func(access ...desired.Access) []WantGroup {
		return []WantGroup{{Name: "ops", Access: access, Pos: groupPos}}
	}
	for _, tc := range []struct {
		name   string
		want   []Want
		live   []Live
		opts   Options
		losing []string // email: lost access, by causes
	}{
		{name: "an update that only adds takes nothing",
			want: []Want{{Email: "a@example.com", Access: []desired.Access{dns, ro}}},
			live: []Live{{ID: "1", Email: "a@example.com", Access: []desired.Access{dns}}}},
		{name: "a role swapped is a role lost",
			want:   []Want{{Email: "a@example.com", Access: []desired.Access{admin}}},
			live:   []Live{{ID: "1", Email: "a@example.com", Access: []desired.Access{analytics}}},
			losing: []string{"a@example.com: [Analytics on account:*] by [update]"}},
		{name: "a removal loses everything, its groups too",
			want:   nil,
			live:   []Live{{ID: "1", Email: "a@example.com", Access: []desired.Access{dns}, Inherited: inOps(ro)}},
			opts:   Options{Prune: true, MaxRemovals: 5},
			losing: []string{"a@example.com: [Administrator Read Only on account:* DNS on com.cloudflare.api.account.zone.0000000000000000000000000000000a] removed by [remove]"}},
		{name: "a group's policies rewritten: each member of it loses",
			want: []Want{{Email: "a@example.com", Access: []desired.Access{dns}}, {Email: "b@example.com", Access: []desired.Access{ro}}},
			live: []Live{{ID: "1", Email: "a@example.com", Access: []desired.Access{dns}, Inherited: inOps(admin)},
				{ID: "2", Email: "b@example.com", Access: []desired.Access{ro}, Inherited: inOps(admin)}},
			opts: Options{MaxRemovals: 5, UserGroups: wantOps(analytics), LiveGroups: []LiveGroup{ops(admin)}},
			losing: []string{"a@example.com: [Administrator on account:*] by [update_user_group ops]",
				"b@example.com: [Administrator on account:*] by [update_user_group ops]"}},
		{name: "what a rewrite takes but the member holds on its own is not lost",
			want: []Want{{Email: "a@example.com", Access: []desired.Access{admin}}},
			live: []Live{{ID: "1", Email: "a@example.com", Access: []desired.Access{admin}, Inherited: inOps(admin)}},
			opts: Options{MaxRemovals: 5, UserGroups: wantOps(analytics), LiveGroups: []LiveGroup{ops(admin)}}},
		{name: "a rewrite that only adds takes nothing",
			want: []Want{{Email: "a@example.com", Access: []desired.Access{dns}}},
			live: []Live{{ID: "1", Email: "a@example.com", Access: []desired.Access{dns}, Inherited: inOps(ro)}},
			opts: Options{MaxRemovals: 0, UserGroups: wantOps(ro, admin), LiveGroups: []LiveGroup{ops(ro)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.live {
				tc.live[i].Status = "accepted"
			}
			for _, g := range tc.opts.LiveGroups {
				for _, l := range tc.live {
					if len(l.Inherited) > 0 {
						g.Members = append(g.Members, LiveGroupMember{ID: l.ID, Email: l.Email, Status: "accepted"})
					}
				}
				tc.opts.LiveGroups = []LiveGroup{g}
			}
			for _, g := range tc.opts.UserGroups {
				for _, l := range tc.live {
					if len(l.Inherited) > 0 {
						g.Members = append(g.Members, l.Email)
					}
				}
				tc.opts.UserGroups = []WantGroup{g}
			}
			tc.opts.AllowMassRemoval = true
			p, err := Compute(tc.want, tc.live, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range p.Losing {
				var causes []string
				for _, i := range l.Causes {
					causes = append(causes, strings.TrimSpace(fmt.Sprintf("%s %s", p.Changes[i].Action, p.Changes[i].Group)))
				}
				s := fmt.Sprintf("%s: %v", l.Email, l.Lose)
				if l.Removed {
					s += " removed"
				}
				got = append(got, fmt.Sprintf("%s by %v", s, causes))
			}
			if diff := cmp.Diff(tc.losing, got); diff != "" {
				t.Errorf("losing (-want +got):\n%s", diff)
			}
			if p.LosingAccess() != len(tc.losing) {
				t.Errorf("LosingAccess() = %d, want %d", p.LosingAccess(), len(tc.losing))
			}
		})
	}

	// 24 members cut down to Minimal Account Access: 12 by their own
	// policies, 12 others through their user group's policies.
	t.Run("the breaker counts every loss", func(t *testing.T) {
		var want []Want
		var live []Live
		group := LiveGroup{ID: "g1", Name: "ops", Access: []desired.Access{admin}}
		wg := WantGroup{Name: "ops", Access: []desired.Access{minimal}, Pos: groupPos}
		for i := range 24 {
			email := fmt.Sprintf("m%02d@example.com", i)
			l := Live{ID: fmt.Sprint(i), Email: email, Status: "accepted", Access: []desired.Access{analytics}}
			if i%2 == 1 {
				l.Access = []desired.Access{minimal}
				l.Inherited = inOps(admin)
				group.Members = append(group.Members, LiveGroupMember{ID: l.ID, Email: email, Status: "accepted"})
				wg.Members = append(wg.Members, email)
			}
			live = append(live, l)
			want = append(want, Want{Email: email, Access: []desired.Access{minimal}})
		}
		opts := Options{Prune: true, MaxRemovals: 2, UserGroups: []WantGroup{wg}, LiveGroups: []LiveGroup{group}}
		p, err := Compute(want, live, opts)
		if !errors.Is(err, ErrMassRemoval) {
			t.Fatalf("err = %v, want the breaker", err)
		}
		const msg = "the plan takes access away from 24 people (12 with their own policies cut, 12 losing access through a user group's policies), more than max_removals (2)"
		if p.Breaker != msg {
			t.Errorf("breaker:\n%s\nwant\n%s", p.Breaker, msg)
		}
		if p.Count(Update) != 12 || p.Count(UpdateGroup) != 1 || p.Count(Remove) != 0 {
			t.Errorf("changes: %v", summary(p))
		}
		opts.MaxRemovals = 24
		if _, err := Compute(want, live, opts); err != nil {
			t.Errorf("at max_removals: %v", err)
		}
	})

	// The protected owner, in a mirrored group whose policies would
	// shrink: the group's update is refused whatever --allow-mass-removal
	// says; the rest of the plan goes on.
	t.Run("a protected member loses nothing, on any path", func(t *testing.T) {
		owner := Live{ID: "o", Email: "owner@example.com", Status: "accepted", Access: []desired.Access{minimal}, Inherited: inOps(super)}
		other := Live{ID: "x", Email: "x@example.com", Status: "accepted", Access: []desired.Access{analytics}}
		group := LiveGroup{ID: "g1", Name: "ops", Access: []desired.Access{super},
			Members: []LiveGroupMember{{ID: "o", Email: "owner@example.com", Status: "accepted"}}}
		for _, opts := range []Options{
			{Owner: "owner@example.com"},
			{Protected: []string{"Owner@example.com"}},
			{ProtectedIDs: map[string]bool{"o": true}},
		} {
			opts.MaxRemovals, opts.AllowMassRemoval, opts.Prune = 5, true, true
			opts.UserGroups = wantOps(analytics)
			opts.LiveGroups = []LiveGroup{group}
			p, err := Compute(nil, []Live{owner, other}, opts)
			if err != nil {
				t.Fatal(err)
			}
			if p.Refused() != 1 || p.Count(Remove) != 1 {
				t.Fatalf("%+v: %v, want the group's update refused, x removed", opts, summary(p))
			}
			for _, c := range p.Changes {
				if c.Action == UpdateGroup && (c.GroupPos != groupPos || len(c.Protects) != 1 || c.Protects[0].Email != "owner@example.com" ||
					!slices.Equal(c.Protects[0].Lose, []desired.Access{super})) {
					t.Errorf("the refusal: %+v", c)
				}
			}
			if p.LosingAccess() != 1 {
				t.Errorf("losing %d, want only x (the refused update takes nothing)", p.LosingAccess())
			}
		}
	})

	// Policies cfaccess does not write (deny, unknown scopes) dropped by
	// a rewrite count as a loss: a protected member in such a group is
	// not rewritten out of them.
	t.Run("foreign policies count", func(t *testing.T) {
		owner := Live{ID: "o", Email: "owner@example.com", Status: "accepted", Access: []desired.Access{analytics}, Inherited: inOps(analytics)}
		group := LiveGroup{ID: "g1", Name: "ops", Access: []desired.Access{analytics}, Foreign: true,
			Members: []LiveGroupMember{{ID: "o", Email: "owner@example.com", Status: "accepted"}}}
		p, err := Compute(nil, []Live{owner}, Options{MaxRemovals: 0, Owner: "owner@example.com", UserGroups: wantOps(analytics), LiveGroups: []LiveGroup{group}})
		if err != nil || p.Refused() != 1 {
			t.Fatalf("%v, %v: want the rewrite of a foreign group refused for the owner", summary(p), err)
		}
		bob := Live{ID: "b", Email: "bob@example.com", Status: "accepted", Access: []desired.Access{analytics}, Foreign: true}
		if _, err := Compute([]Want{{Email: "bob@example.com", Access: []desired.Access{analytics}}}, []Live{bob}, Options{MaxRemovals: 0}); !errors.Is(err, ErrMassRemoval) {
			t.Errorf("a member's deny or unknown policies dropped: %v, want the breaker at max_removals 0", err)
		}
	})

	// A move from a direct grant into a mirrored group giving the same
	// takes nothing: the join is counted with the cut.
	t.Run("a move into a group loses nothing", func(t *testing.T) {
		var live []Live
		var members []string
		for i := range 5 {
			email := fmt.Sprintf("m%d@example.com", i)
			live = append(live, Live{ID: fmt.Sprint(i), Email: email, Status: "accepted", Access: []desired.Access{admin}})
			members = append(members, email)
		}
		var want []Want
		for _, e := range members {
			want = append(want, Want{Email: e, Access: []desired.Access{minimal}, Groups: []string{"ops"}, Minimal: true})
		}
		for _, live2 := range [][]LiveGroup{nil, {{ID: "g1", Name: "ops", Access: []desired.Access{admin}}}} {
			p, err := Compute(want, live, Options{MaxRemovals: 2, UserGroups: []WantGroup{{Name: "ops", Access: []desired.Access{admin}, Members: members}}, LiveGroups: live2})
			if err != nil || p.LosingAccess() != 0 {
				t.Errorf("group exists %v: %v, losing %d: %v", live2 != nil, err, p.LosingAccess(), summary(p))
			}
		}
	})
}
