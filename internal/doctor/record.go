package doctor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// A recording is a folder of exchanges, one JSON file each, numbered in
// the order they ended. It is sanitized as it is written: every email
// (wherever it appears, whole or inside a text) becomes a placeholder of
// example.com, the same one for the same address; people's names, the
// account's and user groups' names become placeholders too; IP addresses
// become documentation addresses (RFC 5737); every secret given is cut
// out. Ids are kept: they name nothing outside Cloudflare, and a replay
// needs them. No request header is recorded.

// emailPattern finds emails in any text (lenient: what looks like one).
var emailPattern = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`)

// sanitizer replaces what identifies people consistently across a
// recording.
type sanitizer struct {
	secrets []string
	emails  map[string]string
	names   map[string]string
	ips     map[string]string
}

func newSanitizer(secrets []string) *sanitizer {
	var keep []string
	for _, s := range secrets {
		if len(s) >= 8 { // shorter is no secret worth the name, and would cut ordinary words
			keep = append(keep, s)
		}
	}
	return &sanitizer{secrets: keep, emails: map[string]string{}, names: map[string]string{}, ips: map[string]string{}}
}

func (s *sanitizer) email(e string) string {
	k := strings.ToLower(e)
	if p, ok := s.emails[k]; ok {
		return p
	}
	p := fmt.Sprintf("person%d@example.com", len(s.emails)+1)
	s.emails[k] = p
	return p
}

func (s *sanitizer) name(kind, n string) string {
	if n == "" {
		return ""
	}
	k := kind + "\x00" + n
	if p, ok := s.names[k]; ok {
		return p
	}
	p := fmt.Sprintf("%s %d", kind, len(s.names)+1)
	s.names[k] = p
	return p
}

func (s *sanitizer) ip(a string) string {
	if p, ok := s.ips[a]; ok {
		return p
	}
	p := fmt.Sprintf("192.0.2.%d", len(s.ips)%254+1)
	s.ips[a] = p
	return p
}

// text sanitizes free text: secrets cut, emails replaced.
func (s *sanitizer) text(t string) string {
	for _, sec := range s.secrets {
		t = strings.ReplaceAll(t, sec, "[secret]")
	}
	return emailPattern.ReplaceAllStringFunc(t, s.email)
}

// personKeys are the keys whose string value identifies a person: the
// placeholder's word ("" for an IP address).
var personKeys = map[string]string{"first_name": "First", "last_name": "Last", "ip": "", "ip_address": ""}

// value sanitizes a decoded JSON value; nameKind, when set, says that
// "name" is a user group's or an account's here, replaced by a
// placeholder of that word (a role's, a zone's or a resource group's is
// kept: the catalogue and the scopes need them).
func (s *sanitizer) value(v any, nameKind string) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			str, isStr := x.(string)
			switch kind, person := personKeys[k]; {
			case person && isStr && kind == "":
				v[k] = s.ip(str)
			case person && isStr:
				v[k] = s.name(kind, str)
			case k == "name" && isStr && nameKind != "":
				v[k] = s.name(nameKind, str)
			default:
				v[k] = s.value(x, nameKind)
			}
		}
		return v
	case []any:
		for i, x := range v {
			v[i] = s.value(x, nameKind)
		}
		return v
	case string:
		return s.text(v)
	}
	return v
}

// path sanitizes a request path and its query (an email in a filter).
func (s *sanitizer) path(p string) string {
	path, query, _ := strings.Cut(p, "?")
	if query == "" {
		return s.text(path)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return s.text(p)
	}
	for k, vs := range q {
		for i := range vs {
			vs[i] = s.text(vs[i])
		}
		q[k] = vs
	}
	return s.text(path) + "?" + q.Encode()
}

var (
	accountPath = regexp.MustCompile(`^/accounts/[^/]+$`)
	fileSlug    = regexp.MustCompile(`[^A-Za-z0-9]+`)
)

// nameKindOf says whose "name" fields an answer holds, by its path.
func nameKindOf(path string) string {
	path, _, _ = strings.Cut(path, "?")
	switch {
	case strings.Contains(path, "/iam/user_groups"):
		return "Group"
	case accountPath.MatchString(path):
		return "Account"
	}
	return ""
}

// Sanitize returns the exchanges with people's data replaced and the
// secrets cut out, as Record writes them. An account's or a user group's
// name is replaced wherever it appears (a zone names its account too).
func Sanitize(xs []Exchange, secrets ...string) ([]Exchange, error) {
	s := newSanitizer(secrets)
	out := make([]Exchange, len(xs))
	bodies := make([]any, len(xs))
	for i, x := range xs {
		if len(x.Body) == 0 {
			continue
		}
		d := json.NewDecoder(bytes.NewReader(x.Body))
		d.UseNumber()
		if err := d.Decode(&bodies[i]); err != nil {
			return nil, fmt.Errorf("exchange %d (%s %s): %w", i+1, x.Method, x.Path, err)
		}
		bodies[i] = s.value(bodies[i], nameKindOf(x.Path))
	}
	for i, x := range xs {
		x.Path = s.path(x.Path)
		x.Text = s.knownNames(s.text(x.Text)).(string)
		header := map[string]string{}
		for k, v := range x.Header {
			header[k] = s.text(v)
		}
		x.Header = header
		if bodies[i] != nil {
			b, err := json.Marshal(s.knownNames(bodies[i]))
			if err != nil {
				return nil, err
			}
			x.Body = b
		}
		out[i] = x
	}
	return out, nil
}

// knownNames replaces every string that is a name replaced before.
func (s *sanitizer) knownNames(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = s.knownNames(x)
		}
	case []any:
		for i, x := range v {
			v[i] = s.knownNames(x)
		}
	case string:
		for _, kind := range []string{"Account", "Group"} {
			if p, ok := s.names[kind+"\x00"+v]; ok {
				return p
			}
		}
	}
	return v
}

// Record writes the exchanges, sanitized, into dir (created if need be):
// one file each, 001-GET-accounts-_-members.json and so on.
func Record(dir string, xs []Exchange, secrets ...string) error {
	clean, err := Sanitize(xs, secrets...)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--record %s: %w", dir, err)
	}
	for i, x := range clean {
		path, _, _ := strings.Cut(x.Path, "?")
		name := fmt.Sprintf("%03d-%s-%s.json", i+1, x.Method, strings.Trim(fileSlug.ReplaceAllString(path, "-"), "-"))
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

// Load reads a recording.
func Load(dir string) ([]Exchange, error) {
	names, err := filepath.Glob(filepath.Join(dir, "[0-9][0-9][0-9]-*.json"))
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s holds no recording (NNN-METHOD-path.json files)", dir)
	}
	slices.Sort(names)
	var out []Exchange
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		var x Exchange
		if err := json.Unmarshal(b, &x); err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
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
