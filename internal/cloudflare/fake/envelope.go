package fake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// apiError is one entry of an envelope's errors.
type apiError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type resultInfo struct {
	Page       int `json:"page"`
	PerPage    int `json:"per_page"`
	Count      int `json:"count"`
	TotalCount int `json:"total_count"`
	TotalPages int `json:"total_pages"`
}

type envelope struct {
	Success    bool        `json:"success"`
	Errors     []apiError  `json:"errors"`
	Messages   []any       `json:"messages"`
	Result     any         `json:"result"`
	ResultInfo *resultInfo `json:"result_info,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeResult(w http.ResponseWriter, result any) {
	writeJSON(w, http.StatusOK, envelope{Success: true, Errors: []apiError{}, Messages: []any{}, Result: result})
}

func writeError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, envelope{Success: false, Errors: []apiError{{Code: code, Message: msg}}, Messages: []any{}, Result: nil})
}

// paginate serves one page of items the way Cloudflare does: page from 1,
// per_page 5..50 (default 20), and an empty result past the end.
func paginate[T any](w http.ResponseWriter, r *http.Request, items []T) {
	paginateFunc(w, r, len(items), func(start, end int) any {
		if start == end {
			return []T{}
		}
		return items[start:end]
	})
}

// paginateFunc serves one page of n items, rendering only that page's
// items with page(start, end).
func paginateFunc(w http.ResponseWriter, r *http.Request, n int, render func(start, end int) any) {
	paginateCounted(w, r, n, n, render)
}

// paginateCounted is paginateFunc with the total_count to report, which
// may count more than the n items served (see listZones).
func paginateCounted(w http.ResponseWriter, r *http.Request, n, total int, render func(start, end int) any) {
	paginateWith(w, r, n, total, memberPerPage, render)
}

// pageLimits are a list's page sizes: the default, and the range taken.
type pageLimits struct{ def, min, max int }

// memberPerPage is the page size of members and the catalogue lists: 20
// by default, 5 to 50.
var memberPerPage = pageLimits{def: 20, min: 5, max: 50}

// paginateLimited serves one page of items with the given page sizes.
func paginateLimited[T any](w http.ResponseWriter, r *http.Request, items []T, limits pageLimits) {
	paginateWith(w, r, len(items), len(items), limits, func(start, end int) any {
		if start == end {
			return []T{}
		}
		return items[start:end]
	})
}

func paginateWith(w http.ResponseWriter, r *http.Request, n, total int, limits pageLimits, render func(start, end int) any) {
	page, perPage := 1, limits.def
	q := r.URL.Query()
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, 1001, "page must be a positive integer")
			return
		}
		page = n
	}
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < limits.min || n > limits.max {
			writeError(w, http.StatusBadRequest, 1001, fmt.Sprintf("per_page must be between %d and %d", limits.min, limits.max))
			return
		}
		perPage = n
	}
	start := min((page-1)*perPage, n)
	end := min(start+perPage, n)
	writeJSON(w, http.StatusOK, envelope{
		Success: true, Errors: []apiError{}, Messages: []any{}, Result: render(start, end),
		ResultInfo: &resultInfo{Page: page, PerPage: perPage, Count: end - start, TotalCount: total,
			TotalPages: (total + perPage - 1) / perPage},
	})
}
