package cloudflare

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"
)

// maxListPages bounds one list read: 2,000 pages of 50 is 100,000 items,
// twice the largest account measured. A list claiming more fails instead
// of spending the rate budget (1,200 requests in 5 minutes) on one read.
const maxListPages = 2000

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
	// more than the count (or maxListPages) allows.
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
	l := &lister[T]{c: c, op: op, mode: mode, id: id, get: get, seen: map[string]bool{}}
	first, info, err := l.fetch(ctx, 1)
	if err != nil {
		return nil, err
	}
	all, ok := l.fresh(first)
	if !ok {
		return nil, untrusted(op, "page 1 lists an item twice")
	}
	per, err := l.pageSize(info)
	if err != nil {
		return nil, err
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
	pages, err := l.pageCount(len(first), total, per)
	if err != nil {
		return nil, err
	}
	if mode.countIsBound {
		return l.readInTurn(ctx, all, first, pages, per)
	}
	return l.readAtOnce(ctx, all, total, pages)
}

// lister is one read of a paged list (fetchAll): how it asks for a page,
// and the ids its pages have listed so far.
type lister[T any] struct {
	c    *Client
	op   string
	mode listMode
	id   func(T) string
	get  func(ctx context.Context, page int) ([]T, pageInfo, error)
	// seen holds the ids read so far; repeats counts the items dropped
	// as repeats (mode.dropRepeats).
	seen    map[string]bool
	repeats int
}

// fetch reads page p, failing unless its answer holds a list.
func (l *lister[T]) fetch(ctx context.Context, p int) ([]T, pageInfo, error) {
	items, info, err := l.get(ctx, p)
	if err != nil {
		return nil, pageInfo{}, l.c.wrap(l.op, err)
	}
	if !info.list {
		if p == 1 {
			return nil, pageInfo{}, untrusted(l.op, "the answer holds no list")
		}
		return nil, pageInfo{}, untrusted(l.op, fmt.Sprintf("page %d holds no list", p))
	}
	return items, info, nil
}

// fresh records a page's ids and returns its new items, or false when it
// repeats one and repeats are not dropped.
func (l *lister[T]) fresh(items []T) ([]T, bool) {
	out := items[:0:0]
	for _, it := range items {
		k := l.id(it)
		if l.seen[k] {
			if !l.mode.dropRepeats {
				return nil, false
			}
			l.repeats++
			continue
		}
		l.seen[k] = true
		out = append(out, it)
	}
	return out, true
}

// pageSize is the number of items a full page holds: the size asked for,
// or the smaller one the first page's answer states.
func (l *lister[T]) pageSize(info pageInfo) (int, error) {
	per := l.c.cfg.PerPage
	if l.mode.perPage > 0 {
		per = l.mode.perPage
	}
	if info.perPage > 0 && info.perPage < per {
		if info.perPage < 5 {
			return 0, untrusted(l.op, fmt.Sprintf("the answer has pages of %d items, fewer than the API's minimum of 5", info.perPage))
		}
		per = info.perPage // the API answered with smaller pages than asked
	}
	return per, nil
}

// pageCount is the number of pages total items fill: at most
// maxListPages, a list claiming more failing unless its count is only a
// bound (mode.countIsBound). A first page of firstLen items that does
// not fit the count fails the read.
func (l *lister[T]) pageCount(firstLen, total, per int) (int, error) {
	pages := (total + per - 1) / per
	switch {
	case l.mode.countIsBound:
		pages = min(pages, maxListPages)
	case pages > maxListPages:
		return 0, untrusted(l.op, fmt.Sprintf("the list claims %d items, more than %d pages", total, maxListPages))
	}
	if firstLen > total || !l.mode.countIsBound && total > 0 && firstLen == 0 {
		return 0, untrusted(l.op, fmt.Sprintf("page 1 has %d items but the list claims %d", firstLen, total))
	}
	return pages, nil
}

// readInTurn reads a list whose count is only a bound: pages 2 to pages
// one after another, up to the first that is short (last, the page
// before, held fewer than per items) or adds nothing. all holds the
// first page's new items.
func (l *lister[T]) readInTurn(ctx context.Context, all, first []T, pages, per int) ([]T, error) {
	last := first
	for p := 2; p <= pages && len(last) == per; p++ {
		items, _, err := l.fetch(ctx, p)
		if err != nil {
			return nil, err
		}
		added, ok := l.fresh(items)
		if !ok {
			return nil, untrusted(l.op, fmt.Sprintf("page %d repeats an item of another page", p))
		}
		if len(added) == 0 {
			break
		}
		all, last = append(all, added...), items
	}
	return all, nil
}

// readAtOnce reads pages 2 to pages of a list of total items
// concurrently (Config.Concurrency at a time, the first failure
// cancelling the others) and appends them, in order, to all, the first
// page's new items. The pages must add up to total.
func (l *lister[T]) readAtOnce(ctx context.Context, all []T, total, pages int) ([]T, error) {
	rest := make([][]T, pages)
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(l.c.cfg.Concurrency)
	for p := 2; p <= pages; p++ {
		g.Go(func() error {
			items, err := l.fetchCounted(gctx, p, total, pages)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			added, ok := l.fresh(items)
			if !ok {
				return untrusted(l.op, fmt.Sprintf("page %d repeats an item of another page (the list changed while it was read)", p))
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
	if len(all)+l.repeats != total {
		return nil, untrusted(l.op, fmt.Sprintf("read %d items but the list claims %d (it changed while it was read)", len(all)+l.repeats, total))
	}
	return all, nil
}

// fetchCounted reads page p of pages, failing when it is empty or its
// answer no longer claims total items.
func (l *lister[T]) fetchCounted(ctx context.Context, p, total, pages int) ([]T, error) {
	items, info, err := l.fetch(ctx, p)
	switch {
	case err != nil:
		return nil, err
	case !info.hasCount || info.totalCount != total:
		return nil, untrusted(l.op, fmt.Sprintf("the list changed while it was read (%d items, then %d)", total, info.totalCount))
	case len(items) == 0:
		return nil, untrusted(l.op, fmt.Sprintf("page %d of %d is empty", p, pages))
	}
	return items, nil
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
