package diff

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cfaccess/reconciler/internal/desired"
)

var (
	acct = desired.Resource{Kind: desired.WholeAccount}
	z1   = desired.Resource{Kind: desired.ZoneKey, Zone: "0000000000000000000000000000000a"}
	dns  = desired.Access{Role: "DNS", Resource: z1}
	ro   = desired.Access{Role: "Administrator Read Only", Resource: acct}
	bill = desired.Access{Role: "Billing", Resource: acct}
)

func summary(p *Plan) []string {
	var out []string
	for _, c := range p.Changes {
		out = append(out, fmt.Sprintf("%s %s +%v -%v", c.Action, c.Email, c.Add, c.Remove))
	}
	for _, u := range p.Unmanaged {
		out = append(out, "unmanaged "+u.Email)
	}
	for _, e := range p.Protected {
		out = append(out, "protected "+e)
	}
	return out
}

func TestCompute(t *testing.T) {
	t.Parallel()
	opts := Options{Prune: true, MaxRemovals: 5, Protected: []string{"Owner@example.com"}, Owner: "token-user@example.com"}
	tests := []struct {
		name string
		want []Want
		live []Live
		opts Options
		out  []string
	}{
		{"in sync", []Want{{Email: "a@example.com", Access: []desired.Access{dns}}},
			[]Live{{ID: "1", Email: "a@example.com", Access: []desired.Access{dns}}, {ID: "9", Email: "z@example.com"}}, Options{}, []string{"unmanaged z@example.com"}},
		{"invite, update, remove in order", []Want{
			{Email: "new@example.com", Access: []desired.Access{ro}},
			{Email: "chg@example.com", Access: []desired.Access{dns, ro}},
			{Email: "gone@example.com"},
		}, []Live{
			{ID: "1", Email: "chg@example.com", Access: []desired.Access{dns, bill}},
			{ID: "2", Email: "gone@example.com", Access: []desired.Access{dns}},
			{ID: "3", Email: "stranger@example.com", Access: []desired.Access{bill}},
		}, opts, []string{
			"remove gone@example.com +[] -[DNS on com.cloudflare.api.account.zone.0000000000000000000000000000000a]",
			"remove stranger@example.com +[] -[Billing on account:*]",
			"update chg@example.com +[Administrator Read Only on account:*] -[Billing on account:*]",
			"invite new@example.com +[Administrator Read Only on account:*] -[]",
		}},
		{"prune off leaves strangers", nil, []Live{{ID: "3", Email: "stranger@example.com"}, {ID: "4", Email: "x@example.com"}},
			Options{Prune: false}, []string{"unmanaged stranger@example.com", "unmanaged x@example.com"}},
		{"emails differ in case only", []Want{{Email: "alice@example.com", Access: []desired.Access{dns}}},
			[]Live{{ID: "1", Email: "Alice@Example.COM", Access: []desired.Access{dns}}}, opts, nil},
		{"pending counts as present", []Want{{Email: "p@example.com", Access: []desired.Access{dns}}},
			[]Live{{ID: "1", Email: "p@example.com", Status: "pending", Access: []desired.Access{dns}}}, opts, nil},
		{"protected and owner untouched", []Want{{Email: "owner@example.com"}, {Email: "token-user@example.com", Access: []desired.Access{ro}}},
			[]Live{{ID: "1", Email: "owner@example.com", Access: []desired.Access{bill}}, {ID: "2", Email: "token-user@example.com", Access: []desired.Access{bill}}, {ID: "3", Email: "keep@example.com"}},
			Options{Prune: true, MaxRemovals: 5, Protected: []string{"owner@example.com"}, Owner: "Token-User@example.com", AllowMassRemoval: true},
			[]string{"remove keep@example.com +[] -[]", "protected owner@example.com", "protected token-user@example.com"}},
		{"foreign access is always updated", []Want{{Email: "d@example.com", Access: []desired.Access{dns}}},
			[]Live{{ID: "1", Email: "d@example.com", Access: []desired.Access{dns}, Foreign: true}}, opts, []string{"update d@example.com +[] -[]"}},
		{"declared with nothing active and absent: nothing", []Want{{Email: "later@example.com"}}, nil, opts, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compute(tc.want, tc.live, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.out, summary(p)); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMassRemovalBreaker(t *testing.T) {
	t.Parallel()
	live := []Live{{ID: "1", Email: "a@example.com"}, {ID: "2", Email: "b@example.com"}, {ID: "3", Email: "c@example.com"}, {ID: "4", Email: "owner@example.com"}}
	owner := []string{"owner@example.com"}
	keepOne := []Want{{Email: "c@example.com"}, {Email: "b@example.com", Access: []desired.Access{dns}}}
	tests := []struct {
		name    string
		want    []Want
		opts    Options
		breaker string
	}{
		{"over max_removals", keepOne, Options{Prune: true, MaxRemovals: 1, Protected: owner}, "the plan removes 2 members, more than max_removals (1)"},
		{"at max_removals", keepOne, Options{Prune: true, MaxRemovals: 2, Protected: owner}, ""},
		{"everyone not protected", nil, Options{Prune: true, MaxRemovals: 10, Protected: []string{"owner@example.com"}}, "the plan removes every member that is not protected (3)"},
		{"allowed", nil, Options{Prune: true, MaxRemovals: 0, AllowMassRemoval: true}, ""},
		{"max_removals 0 refuses any removal", keepOne, Options{Prune: true, MaxRemovals: 0, Protected: owner}, "the plan removes 2 members, more than max_removals (0)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compute(tc.want, live, tc.opts)
			if p.Breaker != tc.breaker {
				t.Errorf("breaker %q, want %q", p.Breaker, tc.breaker)
			}
			if (tc.breaker != "") != errors.Is(err, ErrMassRemoval) {
				t.Errorf("err = %v", err)
			}
		})
	}
}

// randomState draws members with random access over a small universe, so
// that random desired and live states overlap.
func randomState(rng *rand.Rand) ([]Want, []Live) {
	universe := []desired.Access{dns, ro, bill, {Role: "Domain DNS", Resource: desired.Resource{Kind: desired.ZoneKey, Zone: "0123456789abcdef0123456789abcdef"}}}
	pick := func() []desired.Access {
		var out []desired.Access
		for _, a := range universe {
			if rng.IntN(3) == 0 {
				out = append(out, a)
			}
		}
		return out
	}
	var want []Want
	var live []Live
	for i := range 30 {
		email := fmt.Sprintf("m%02d@example.com", i)
		if rng.IntN(3) > 0 {
			want = append(want, Want{Email: email, Access: pick()})
		}
		if rng.IntN(3) > 0 {
			live = append(live, Live{ID: fmt.Sprint(i), Email: email, Status: "accepted", Access: pick()})
		}
	}
	return want, live
}

// apply simulates applying a plan to a live state.
func apply(live []Live, p *Plan) []Live {
	out := slices.Clone(live)
	for _, c := range p.Changes {
		switch c.Action {
		case Remove:
			out = slices.DeleteFunc(out, func(l Live) bool { return l.ID == c.MemberID })
		case Update:
			for i := range out {
				if out[i].ID == c.MemberID {
					out[i].Access, out[i].Foreign = c.Access, false
				}
			}
		case Invite:
			out = append(out, Live{ID: "new-" + c.Email, Email: c.Email, Status: "pending", Access: c.Access})
		}
	}
	return out
}

func TestPropertyApplyingConverges(t *testing.T) {
	t.Parallel()
	for seed := range 500 {
		rng := rand.New(rand.NewPCG(uint64(seed), 2))
		want, live := randomState(rng)
		prune := rng.IntN(2) == 0
		opts := Options{Prune: prune, AllowMassRemoval: true}
		p, err := Compute(want, live, opts)
		if err != nil {
			t.Fatal(err)
		}
		after := apply(live, p)
		again, err := Compute(want, after, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !again.Empty() {
			t.Fatalf("seed %d: second plan not empty: %v", seed, summary(again))
		}
		// The result is the desired state: every member with access has
		// exactly it; nobody else remains unless unmanaged.
		for _, w := range want {
			var got []desired.Access
			found := false
			for _, l := range after {
				if l.Email == w.Email {
					got, found = l.Access, true
				}
			}
			if len(w.Access) == 0 && found {
				t.Fatalf("seed %d: %s should be gone", seed, w.Email)
			}
			if len(w.Access) > 0 && !cmp.Equal(sorted(w.Access), sorted(got)) {
				t.Fatalf("seed %d: %s has %v, want %v", seed, w.Email, got, w.Access)
			}
		}
		if prune && len(after) != len(slices.DeleteFunc(slices.Clone(want), func(w Want) bool { return len(w.Access) == 0 })) {
			t.Fatalf("seed %d: %d members after, want the declared ones only", seed, len(after))
		}
	}
}

func TestPropertySelfPlanIsEmpty(t *testing.T) {
	t.Parallel()
	for seed := range 200 {
		_, live := randomState(rand.New(rand.NewPCG(uint64(seed), 3)))
		var want []Want
		for _, l := range live {
			want = append(want, Want{Email: l.Email, Access: slices.Clone(l.Access)})
		}
		// A live member with no access is declared with none: removed.
		p, err := Compute(want, live, Options{Prune: true, AllowMassRemoval: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range p.Changes {
			if c.Action != Remove || len(c.Remove) != 0 {
				t.Fatalf("seed %d: %v", seed, summary(p))
			}
		}
	}
}

func TestReinvite(t *testing.T) {
	t.Parallel()
	want := []Want{{Email: "old@example.com", Access: []desired.Access{dns}}, {Email: "new@example.com", Access: []desired.Access{dns}}, {Email: "acc@example.com", Access: []desired.Access{dns}}}
	live := []Live{
		{ID: "1", Email: "old@example.com", Status: "pending", Access: []desired.Access{dns}},
		{ID: "2", Email: "new@example.com", Status: "pending", Access: []desired.Access{dns}},
		{ID: "3", Email: "acc@example.com", Status: "accepted", Access: []desired.Access{dns}},
	}
	p, err := Compute(want, live, Options{Reinvite: func(l Live) bool { return l.ID != "2" }})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"reinvite old@example.com +[] -[]"}, summary(p)); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
}
