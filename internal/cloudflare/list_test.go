package cloudflare

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
)

// liar is a list endpoint that misbehaves the way real ones have: pages
// that repeat, totals that grow while pages are read, empty pages that
// claim a count, no count at all, pages past the end that never end, a
// result that is not a list.
type liar struct {
	rng      *rand.Rand
	items    int  // the list's true length at first
	per      int  // items per page
	counted  bool // result_info has total_count
	growBy   int  // the total grows by this much per request
	repeatP  float64
	emptyP   float64
	notListP float64
	ignores  bool // ignores the page parameter (always page 1)
	calls    int
	maxTotal int
}

func (l *liar) get(_ context.Context, page int) ([]string, pageInfo, error) {
	l.calls++
	total := l.items + l.growBy*(l.calls-1)
	l.maxTotal = max(l.maxTotal, total)
	info := pageInfo{list: l.rng.Float64() >= l.notListP, perPage: l.per}
	if l.counted {
		info.totalCount, info.hasCount = total, true
	}
	if l.ignores {
		page = 1
	}
	if l.rng.Float64() < l.emptyP {
		return nil, info, nil
	}
	if l.rng.Float64() < l.repeatP && page > 1 {
		page = 1 + l.rng.IntN(page-1)
	}
	var out []string
	for i := (page - 1) * l.per; i < min(page*l.per, total); i++ {
		out = append(out, strconv.Itoa(i))
	}
	if !l.counted && page > (total+l.per-1)/l.per {
		// A list without a count that never ends: every page full.
		for i := range l.per {
			out = append(out, fmt.Sprintf("ghost-%d-%d", page, i))
		}
	}
	return out, info, nil
}

// TestFetchAllBoundedByTheCount: whatever the list answers, one read sends
// at most ceil(total/per_page)+3 requests (total: the largest count it
// claimed, or the items it truly had), and a read that succeeds returns
// each item once. With -short, 500 lists (each way of lying about 80
// times) rather than 3,000.
func TestFetchAllBoundedByTheCount(t *testing.T) {
	t.Parallel()
	seeds := uint64(3000)
	if testing.Short() {
		seeds = 500
	}
	c := New(Config{PerPage: 50, Concurrency: 1})
	for seed := range seeds {
		rng := rand.New(rand.NewPCG(seed, 7))
		l := &liar{rng: rng, items: rng.IntN(400), per: []int{50, 50, 50, 20, 5, 1}[rng.IntN(6)], counted: rng.IntN(4) != 0}
		mode := listMode{countIsBound: rng.IntN(2) == 0, dropRepeats: rng.IntN(2) == 0}
		switch rng.IntN(6) {
		case 0:
			l.growBy = 1 + rng.IntN(60)
		case 1:
			l.repeatP = 0.3
		case 2:
			l.emptyP = 0.3
		case 3:
			l.notListP = 0.1
		case 4:
			l.ignores = true
		}
		got, err := fetchAll(t.Context(), c, "list things", mode, func(s string) string { return s }, l.get)
		total := max(l.maxTotal, l.items)
		if bound := (total+l.per-1)/l.per + 3; l.calls > bound {
			t.Fatalf("seed %d (%+v): %d requests, more than %d", seed, *l, l.calls, bound)
		}
		if err != nil {
			var ae *APIError
			if !errors.As(err, &ae) || !ae.Transient() {
				t.Fatalf("seed %d: error %v is not a transient APIError", seed, err)
			}
			continue
		}
		seen := map[string]bool{}
		for _, s := range got {
			if seen[s] {
				t.Fatalf("seed %d: %q returned twice", seed, s)
			}
			seen[s] = true
		}
		honest := l.growBy == 0 && l.repeatP == 0 && l.emptyP == 0 && l.notListP == 0 && !l.ignores && l.per >= 5
		if honest && l.counted && len(got) != l.items {
			t.Fatalf("seed %d: an honest list of %d read as %d", seed, l.items, len(got))
		}
	}
}

// Specific lies, with the outcome each must have.
func TestFetchAllLies(t *testing.T) {
	t.Parallel()
	c := New(Config{PerPage: 50})
	list := func(items ...string) func(context.Context, int) ([]string, pageInfo, error) {
		return func(_ context.Context, page int) ([]string, pageInfo, error) {
			return items, pageInfo{list: true}, nil
		}
	}
	many := make([]string, 50)
	for i := range many {
		many[i] = strconv.Itoa(i)
	}
	for _, tc := range []struct {
		name     string
		get      func(context.Context, int) ([]string, pageInfo, error)
		want     int // items, or -1 for an error
		maxCalls int
		mode     listMode
	}{
		{"a catalogue repeating an entry", list("a", "a", "b"), 2, 1, listMode{dropRepeats: true}},
		{"a filtered list with the unfiltered count", func(context.Context, int) ([]string, pageInfo, error) {
			return []string{"a"}, pageInfo{list: true, hasCount: true, totalCount: 9000, perPage: 50}, nil
		}, 1, 1, listMode{countIsBound: true}},
		{"a filtered list with no match", func(context.Context, int) ([]string, pageInfo, error) {
			return nil, pageInfo{list: true, hasCount: true, totalCount: 9000, perPage: 50}, nil
		}, 0, 1, listMode{countIsBound: true}},
		{"pages of one item", func(context.Context, int) ([]string, pageInfo, error) {
			return []string{"a"}, pageInfo{list: true, hasCount: true, totalCount: 2000, perPage: 1}, nil
		}, -1, 1, listMode{}},
		{"empty result with a count", func(context.Context, int) ([]string, pageInfo, error) {
			return nil, pageInfo{list: true, hasCount: true, totalCount: 120}, nil
		}, -1, 1, listMode{}},
		{"result is null", func(context.Context, int) ([]string, pageInfo, error) {
			return nil, pageInfo{}, nil
		}, -1, 1, listMode{}},
		{"no count, a full page (more may follow)", list(many...), -1, 1, listMode{}},
		{"no count, short page", list("a", "b"), 2, 1, listMode{}},
		{"page 1 lists an item twice", list("a", "a"), -1, 1, listMode{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			got, err := fetchAll(t.Context(), c, "list things", tc.mode, func(s string) string { return s }, func(ctx context.Context, p int) ([]string, pageInfo, error) {
				calls++
				return tc.get(ctx, p)
			})
			switch {
			case tc.want < 0 && err == nil:
				t.Errorf("got %d items, want an error", len(got))
			case tc.want >= 0 && (err != nil || len(got) != tc.want):
				t.Errorf("got %d items, %v; want %d", len(got), err, tc.want)
			}
			if calls > tc.maxCalls {
				t.Errorf("%d requests, want at most %d", calls, tc.maxCalls)
			}
		})
	}
}

// FuzzFetchAll drives the list reader with arbitrary answers: it never
// sends more than ceil(largest claimed total/per_page)+3 requests.
func FuzzFetchAll(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3})
	f.Add([]byte{255, 255, 0, 9, 9, 9})
	f.Fuzz(func(t *testing.T, script []byte) {
		c := New(Config{PerPage: 5, Concurrency: 2})
		var mu sync.Mutex
		calls, maxTotal := 0, 0
		get := func(_ context.Context, page int) ([]string, pageInfo, error) {
			mu.Lock()
			var b byte
			if calls < len(script) {
				b = script[calls]
			}
			calls++
			total := int(b)
			maxTotal = max(maxTotal, total)
			mu.Unlock()
			info := pageInfo{list: b != 1, hasCount: b%3 != 0, totalCount: total, perPage: 1 + int(b%9)}
			var out []string
			for i := range int(b % 7) {
				out = append(out, fmt.Sprintf("%d-%d", page*int(b%2), i))
			}
			return out, info, nil
		}
		mode := listMode{countIsBound: len(script) > 0 && script[0]%2 == 0, dropRepeats: len(script) > 0 && script[0]%3 == 0}
		_, _ = fetchAll(t.Context(), c, "fuzz", mode, func(s string) string { return s }, get)
		if calls > (maxTotal+4)/5+3 {
			t.Fatalf("%d requests for a claimed total of at most %d", calls, maxTotal)
		}
	})
}
