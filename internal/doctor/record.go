package doctor

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// fileSlug is what a path becomes in a file name.
var fileSlug = regexp.MustCompile(`[^A-Za-z0-9]+`)

// Record writes the exchanges, sanitized, into dir, which must be empty or
// not exist (a recording mixed with an older one would not replay): one
// file each, 0001-GET-accounts-….json and so on.
func Record(dir string, xs []Exchange, secrets ...string) error {
	clean, err := Sanitize(xs, secrets...)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--record %s: %w", dir, err)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) > 0 {
		return fmt.Errorf("--record %s: give an empty or new folder (%d entries in it, %v)", dir, len(entries), err)
	}
	for i, x := range clean {
		path, _, _ := strings.Cut(x.Path, "?")
		name := fmt.Sprintf("%04d-%s-%s.json", i+1, x.Method, strings.Trim(fileSlug.ReplaceAllString(path, "-"), "-"))
		b, err := json.MarshalIndent(x, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("--record %s: %w", dir, err)
		}
	}
	return nil
}

// recordedFile is a recording's file name: its number, the method, the
// path.
var recordedFile = regexp.MustCompile(`^(\d+)-[A-Z]+-.*\.json$`)

// Load reads a recording, in the order of its numbers.
func Load(dir string) ([]Exchange, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	type numbered struct {
		n    int
		name string
	}
	var files []numbered
	for _, e := range entries {
		if m := recordedFile.FindStringSubmatch(e.Name()); m != nil && e.Type().IsRegular() {
			n, _ := strconv.Atoi(m[1])
			files = append(files, numbered{n, e.Name()})
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s holds no recording (NNNN-METHOD-path.json files)", dir)
	}
	slices.SortFunc(files, func(a, b numbered) int { return cmp.Compare(a.n, b.n) })
	var out []Exchange
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil {
			return nil, err
		}
		var x Exchange
		if err := json.Unmarshal(b, &x); err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		out = append(out, x)
	}
	return out, nil
}

// Replay serves a recording: each request gets the recorded answer of the
// same method, path and query (the query's order aside), in turn when it
// was asked more than once, the last one again after that. A request the
// recording lacks gets 404 with Cloudflare's envelope.
func Replay(xs []Exchange, base string) http.RoundTripper {
	r := &replay{base: strings.TrimSuffix(base, "/"), answers: map[string][]Exchange{}, served: map[string]int{}}
	for _, x := range xs {
		k := x.Method + " " + canonicalPath(x.Path)
		r.answers[k] = append(r.answers[k], x)
	}
	return r
}

type replay struct {
	base    string
	answers map[string][]Exchange

	mu     sync.Mutex
	served map[string]int
}

func canonicalPath(p string) string {
	path, query, _ := strings.Cut(p, "?")
	q, err := url.ParseQuery(query)
	if err != nil || query == "" {
		return p
	}
	return path + "?" + q.Encode() // Encode sorts by key
}

func (r *replay) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	path := strings.TrimPrefix(req.URL.Path, r.base)
	if req.URL.RawQuery != "" {
		path += "?" + req.URL.RawQuery
	}
	k := req.Method + " " + canonicalPath(path)
	xs := r.answers[k]
	if len(xs) == 0 {
		body := fmt.Sprintf(`{"success":false,"errors":[{"code":7003,"message":%q}],"messages":[],"result":null}`, "not in the recording: "+k)
		return &http.Response{StatusCode: http.StatusNotFound, Status: "404 Not Found", Request: req, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body))}, nil
	}
	r.mu.Lock()
	i := min(r.served[k], len(xs)-1)
	r.served[k]++
	r.mu.Unlock()
	x := xs[i]
	body := []byte(x.Body)
	if len(body) == 0 {
		body = []byte(x.Text)
	}
	h := http.Header{}
	for k, v := range x.Header {
		h.Set(k, v)
	}
	return &http.Response{StatusCode: x.Status, Status: fmt.Sprintf("%d %s", x.Status, http.StatusText(x.Status)), Request: req, Header: h,
		Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body))}, nil
}
