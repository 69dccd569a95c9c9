package cloudflare

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"
)

// MaxListPages bounds one list read: 2,000 pages of 50 is 100,000 items,
// twice the largest account measured. A list claiming more fails instead
// of spending the rate budget (1,200 requests in 5 minutes) on one read.
const MaxListPages = 2000

// pageInfo is what the reconciler reads of a list answer beyond its items:
// result_info, which the SDK's types drop, and whether "result" was a list
// at all.
type pageInfo struct {
	// list is set when the answer's result is a JSON array.
	list bool
	// perPage, totalCount are result_info's, 0 when absent; hasCount says
	// whether total_count was given.
	perPage    int
	totalCount int
	hasCount   bool
}

func parsePageInfo(raw string) pageInfo {
	var body struct {
		Result     json.RawMessage `json:"result"`
		ResultInfo *struct {
			PerPage    int  `json:"per_page"`
			TotalCount *int `json:"total_count"`
		} `json:"result_info"`
	}
	var pi pageInfo
	if json.Unmarshal([]byte(raw), &body) != nil {
		return pi
	}
	pi.list = len(body.Result) > 0 && body.Result[0] == '['
	if ri := body.ResultInfo; ri != nil {
		pi.perPage = ri.PerPage
		if ri.TotalCount != nil && *ri.TotalCount >= 0 {
			pi.totalCount, pi.hasCount = *ri.TotalCount, true
		}
	}
	return pi
}

// untrusted is the error of a read whose answer cannot be trusted. It is
// transient: nothing is decided on it, and a later read may be sound.
func untrusted(op, why string) error {
	return &APIError{Op: op, Message: why + "; nothing was decided on this read: try again"}
}

// listMode says how far a list's answers are trusted.
type listMode struct {
	// countIsBound reads total_count as an upper bound: the schema
	// documents it as "total results available without any search
	// parameters", so a filtered list (zones by account or name) may hold
	// fewer. Pages are then read in turn up to the first short one, never
	// more than the count (or MaxListPages) allows.
	countIsBound bool
	// dropRepeats drops an item listed twice (same id) instead of failing
	// the read: for catalogues (permission groups, zones), where Cloudflare
	// has been seen to repeat entries, and a repeat loses nothing.
	dropRepeats bool
	// perPage is the page size asked for (the client's PerPage when 0).
	perPage int
}

// fetchAll reads every page of a list. Lists lie — pages repeat, totals
// change while pages are read, a page past the end may never come — so
// the read is bounded by what the first page says: exactly
// ceil(total_count/per_page) pages are read, the first, then the rest
// concurrently. A page that is empty, repeats an id or reports another
// total fails the read (the list changed while it was read, or the API
// answered inconsistently), and so does a list longer than one page
// without a total_count, or pages smaller than the API's minimum of 5. A
// read never sends more requests than its first page announced (SDK
// retries of one request aside), whatever the API answers. A list that
// changed is not re-read at once: the error is transient, and the next
// reconcile reads it again.
func fetchAll[T any](ctx context.Context, c *Client, op string, mode listMode, id func(T) string, get func(ctx context.Context, page int) ([]T, pageInfo, error)) ([]T, error) {
	first, info, err := get(ctx, 1)
	if err != nil {
		return nil, c.wrap(op, err)
	}
	if !info.list {
		return nil, untrusted(op, "the answer holds no list")
	}
	seen := map[string]bool{}
	repeats := 0
	// fresh records a page's ids and returns its new items, or false when
	// it repeats one and repeats are not dropped.
	fresh := func(items []T) ([]T, bool) {
		out := items[:0:0]
		for _, it := range items {
			k := id(it)
			if seen[k] {
				if !mode.dropRepeats {
					return nil, false
				}
				repeats++
				continue
			}
			seen[k] = true
			out = append(out, it)
		}
		return out, true
	}
	all, ok := fresh(first)
	if !ok {
		return nil, untrusted(op, "page 1 lists an item twice")
	}
	per := c.cfg.PerPage
	if mode.perPage > 0 {
		per = mode.perPage
	}
	if info.perPage > 0 && info.perPage < per {
		if info.perPage < 5 {
			return nil, untrusted(op, fmt.Sprintf("the answer has pages of %d items, fewer than the API's minimum of 5", info.perPage))
		}
		per = info.perPage // the API answered with smaller pages than asked
	}
	if !info.hasCount {
		// Cloudflare's paged lists state their total_count (the recorded
		// member list does). Without it, a short first page is the whole
		// list; a full one may be followed by anything, and no number of
		// pages read would prove the end.
		if len(first) < per {
			return all, nil
		}
		return nil, untrusted(op, "the answer states no total_count for a list longer than one page, so its end cannot be known")
	}
	total := info.totalCount
	pages := (total + per - 1) / per
	switch {
	case mode.countIsBound:
		pages = min(pages, MaxListPages)
	case pages > MaxListPages:
		return nil, untrusted(op, fmt.Sprintf("the list claims %d items, more than %d pages", total, MaxListPages))
	case !mode.countIsBound && total > 0 && len(first) == 0:
		return nil, untrusted(op, fmt.Sprintf("page 1 has %d items but the list claims %d", len(first), total))
	}
	if len(first) > total {
		return nil, untrusted(op, fmt.Sprintf("page 1 has %d items but the list claims %d", len(first), total))
	}
	if mode.countIsBound {
		last := first
		for p := 2; p <= pages && len(last) == per; p++ {
			items, pi, err := get(ctx, p)
			if err != nil {
				return nil, c.wrap(op, err)
			}
			if !pi.list {
				return nil, untrusted(op, fmt.Sprintf("page %d holds no list", p))
			}
			added, ok := fresh(items)
			if !ok {
				return nil, untrusted(op, fmt.Sprintf("page %d repeats an item of another page", p))
			}
			if len(added) == 0 {
				break
			}
			all, last = append(all, added...), items
		}
		return all, nil
	}
	rest := make([][]T, pages)
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.cfg.Concurrency)
	for p := 2; p <= pages; p++ {
		g.Go(func() error {
			items, pi, err := get(gctx, p)
			if err != nil {
				return c.wrap(op, err)
			}
			switch {
			case !pi.list:
				return untrusted(op, fmt.Sprintf("page %d holds no list", p))
			case !pi.hasCount || pi.totalCount != total:
				return untrusted(op, fmt.Sprintf("the list changed while it was read (%d items, then %d)", total, pi.totalCount))
			case len(items) == 0:
				return untrusted(op, fmt.Sprintf("page %d of %d is empty", p, pages))
			}
			mu.Lock()
			defer mu.Unlock()
			added, ok := fresh(items)
			if !ok {
				return untrusted(op, fmt.Sprintf("page %d repeats an item of another page (the list changed while it was read)", p))
			}
			rest[p-1] = added
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for p := 1; p < pages; p++ {
		all = append(all, rest[p]...)
	}
	if len(all)+repeats != total {
		return nil, untrusted(op, fmt.Sprintf("read %d items but the list claims %d (it changed while it was read)", len(all)+repeats, total))
	}
	return all, nil
}

// rawScope reads a resource group's scope from its JSON: an object
// {key, objects} as the API sends it (recorded-list-members.json, 2026
// schema), or a list of one such object, as the 2024 schema said.
func rawScope(raw string) (key string, objects []string) {
	type scope struct {
		Key     string `json:"key"`
		Objects []struct {
			Key string `json:"key"`
		} `json:"objects"`
	}
	var one scope
	if err := json.Unmarshal([]byte(raw), &one); err != nil {
		var list []scope
		if json.Unmarshal([]byte(raw), &list) != nil || len(list) != 1 {
			return "", nil
		}
		one = list[0]
	}
	for _, o := range one.Objects {
		objects = append(objects, o.Key)
	}
	return one.Key, objects
}

// unquote reads a JSON string, "" for anything else.
func unquote(raw string) string {
	var s string
	_ = json.Unmarshal([]byte(raw), &s)
	return s
}
