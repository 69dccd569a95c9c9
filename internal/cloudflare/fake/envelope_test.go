package fake

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPaginate(t *testing.T) {
	t.Parallel()
	items := make([]int, 51)
	for i := range items {
		items[i] = i
	}
	tests := []struct {
		query      string
		status     int
		wantCount  int
		wantFirst  int
		wantInfo   resultInfo
		wantErrMsg string
	}{
		{"", 200, 20, 0, resultInfo{Page: 1, PerPage: 20, Count: 20, TotalCount: 51, TotalPages: 3}, ""},
		{"?page=2&per_page=50", 200, 1, 50, resultInfo{Page: 2, PerPage: 50, Count: 1, TotalCount: 51, TotalPages: 2}, ""},
		{"?page=3&per_page=50", 200, 0, -1, resultInfo{Page: 3, PerPage: 50, Count: 0, TotalCount: 51, TotalPages: 2}, ""},
		{"?per_page=4", 400, 0, -1, resultInfo{}, "per_page must be between 5 and 50"},
		{"?per_page=51", 400, 0, -1, resultInfo{}, "per_page must be between 5 and 50"},
		{"?page=0", 400, 0, -1, resultInfo{}, "page must be a positive integer"},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			rec := httptest.NewRecorder()
			paginate(rec, httptest.NewRequest(http.MethodGet, "/x"+tc.query, nil), items)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d", rec.Code, tc.status)
			}
			var env struct {
				Success    bool        `json:"success"`
				Errors     []apiError  `json:"errors"`
				Result     []int       `json:"result"`
				ResultInfo *resultInfo `json:"result_info"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
				t.Fatal(err)
			}
			if tc.wantErrMsg != "" {
				if env.Success || len(env.Errors) != 1 || env.Errors[0].Message != tc.wantErrMsg || env.Errors[0].Code < 1000 {
					t.Errorf("errors = %+v, want %q", env.Errors, tc.wantErrMsg)
				}
				return
			}
			if env.Result == nil || len(env.Result) != tc.wantCount {
				t.Errorf("result = %v, want %d items (never null)", env.Result, tc.wantCount)
			}
			if tc.wantCount > 0 && env.Result[0] != tc.wantFirst {
				t.Errorf("first = %d, want %d", env.Result[0], tc.wantFirst)
			}
			if diff := cmp.Diff(tc.wantInfo, *env.ResultInfo); diff != "" {
				t.Errorf("result_info (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEnvelopes(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	writeResult(rec, map[string]string{"id": "x"})
	if want := `{"success":true,"errors":[],"messages":[],"result":{"id":"x"}}` + "\n"; rec.Body.String() != want || rec.Code != 200 {
		t.Errorf("writeResult = %d %s, want %s", rec.Code, rec.Body, want)
	}
	rec = httptest.NewRecorder()
	writeError(rec, http.StatusBadRequest, 1006, "invalid permission group")
	if want := `{"success":false,"errors":[{"code":1006,"message":"invalid permission group"}],"messages":[],"result":null}` + "\n"; rec.Body.String() != want || rec.Code != 400 {
		t.Errorf("writeError = %d %s, want %s", rec.Code, rec.Body, want)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
}
