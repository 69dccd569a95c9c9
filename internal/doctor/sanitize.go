package doctor

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/cfaccess/reconciler/internal/cfroles"
	"github.com/cfaccess/reconciler/internal/cloudflare"
)

// A recording is sanitized as it is written, by rules that replace what
// they do not know to be harmless:
//   - every email, wherever it is (a value, a key, inside a text, a path or
//     a query, percent- or \u-escaped), becomes personN@example.com, the
//     same one for the same address;
//   - every IP address becomes a documentation address (RFC 5737, then
//     RFC 3849), the same one for the same address;
//   - people's names (first_name, last_name), token and organization
//     names, and every "name" that is not a Cloudflare role's, a zone's or
//     a resource group's become placeholders ("Name 3"); each such name is
//     replaced wherever else it appears too, whole or inside a text;
//   - every secret given (the token, the API key) is cut out.
//
// Ids are kept: they name nothing outside Cloudflare, and a replay needs
// them. Role names are kept (the catalogue is what a recording is for),
// zone names (public in DNS) and resource groups' names too. No request
// header is recorded.

// emailPattern finds what looks like an email in any text, escaped or
// not; lenient on purpose: replacing a little more is harmless.
var emailPattern = regexp.MustCompile(`[\p{L}\p{N}._%+'\-]+(?:@|%40|\\u0040)[\p{L}\p{N}\-]+(?:\.[\p{L}\p{N}\-]+)*`)

// accountPath is the path of an account (GET /accounts/{id}).
var accountPath = regexp.MustCompile(`^/accounts/[^/]+$`)

// ipv4Pattern and ipv6Candidate find IP addresses (candidates are parsed
// before they are replaced).
var (
	ipv4Pattern   = regexp.MustCompile(`\b(?:\d{1,3}\.){3}\d{1,3}\b`)
	ipv6Candidate = regexp.MustCompile(`[0-9A-Fa-f]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f.]*`)
)

// sanitizer replaces what identifies people consistently across a
// recording.
type sanitizer struct {
	secrets []string
	emails  map[string]string
	ips     map[string]string
	// names maps each name replaced to its placeholder; kept are the names
	// left as they are (roles, zones, resource groups).
	names map[string]string
	kept  map[string]bool
}

func newSanitizer(secrets []string) *sanitizer {
	s := &sanitizer{emails: map[string]string{}, ips: map[string]string{}, names: map[string]string{}, kept: map[string]bool{}}
	for _, sec := range secrets {
		if len(sec) >= 8 { // shorter is no secret worth the name, and would cut ordinary words
			s.secrets = append(s.secrets, sec)
		}
	}
	for _, n := range cfroles.Names() {
		s.kept[n] = true
	}
	return s
}

func (s *sanitizer) email(e string) string {
	k := strings.ToLower(strings.NewReplacer("%40", "@", `\u0040`, "@").Replace(e))
	if p, ok := s.emails[k]; ok {
		return p
	}
	p := fmt.Sprintf("person%d@example.com", len(s.emails)+1)
	s.emails[k] = p
	return p
}

// ipPlaceholder is the n-th documentation address (from 0): 192.0.2.1 …,
// 198.51.100.1 …, 203.0.113.1 …, then 2001:db8::1 ….
func ipPlaceholder(n int) string {
	for _, net := range []string{"192.0.2.", "198.51.100.", "203.0.113."} {
		if n < 254 {
			return net + fmt.Sprint(n+1)
		}
		n -= 254
	}
	return fmt.Sprintf("2001:db8::%x", n+1)
}

func (s *sanitizer) ip(a string) string {
	addr, err := netip.ParseAddr(a)
	if err != nil {
		return a // not an address: a time, a version
	}
	k := addr.Unmap().String()
	if p, ok := s.ips[k]; ok {
		return p
	}
	p := ipPlaceholder(len(s.ips))
	s.ips[k] = p
	return p
}

func (s *sanitizer) name(kind, n string) string {
	if n == "" || s.kept[n] {
		return n
	}
	if p, ok := s.names[n]; ok {
		return p
	}
	p := fmt.Sprintf("%s %d", kind, len(s.names)+1)
	s.names[n] = p
	return p
}

// text sanitizes free text: secrets cut, emails and IP addresses replaced.
func (s *sanitizer) text(t string) string {
	for _, sec := range s.secrets {
		t = strings.ReplaceAll(t, sec, "[secret]")
	}
	t = emailPattern.ReplaceAllStringFunc(t, s.email)
	t = ipv4Pattern.ReplaceAllStringFunc(t, s.ip)
	return ipv6Candidate.ReplaceAllStringFunc(t, s.ip)
}

// nameKeys are the keys whose string value names someone or something
// private, with the placeholder's word; "name" is decided by its object
// (keptName).
var nameKeys = map[string]string{"first_name": "First", "last_name": "Last", "token_name": "Token", "parent_org_name": "Organization",
	"organization_name": "Organization", "account_name": "Account"}

// keptName reports whether an object's "name" may stay: a Cloudflare
// role's (a permission group or a legacy role: it has meta or
// permissions), a resource group's (it has a scope), or a zone's (it has
// name servers, or is listed by /zones).
func keptName(obj map[string]any, zoneList bool) bool {
	for _, k := range []string{"meta", "permissions", "scope", "name_servers", "original_name_servers"} {
		if _, ok := obj[k]; ok {
			return true
		}
	}
	return zoneList
}

// value sanitizes a decoded JSON value; zoneList says v is an element of
// /zones's result.
func (s *sanitizer) value(v any, kind string, zoneList bool) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			str, isStr := x.(string)
			word, private := nameKeys[k]
			switch {
			case private && isStr:
				out[s.text(k)] = s.name(word, str)
			case k == "name" && isStr && !keptName(v, zoneList):
				out[k] = s.name(kind, str)
			case k == "name" && isStr:
				s.kept[str] = true
				out[k] = s.text(str)
			default:
				out[s.text(k)] = s.value(x, kind, false)
			}
		}
		return out
	case []any:
		for i, x := range v {
			v[i] = s.value(x, kind, zoneList)
		}
		return v
	case string:
		return s.text(v)
	}
	return v
}

// knownNames replaces each name replaced anywhere, wherever else it
// appears: whole, or inside a longer text (the longest names first). A
// role's, a zone's or a resource group's name is left whole, and so is an
// id (a group named "cafe" would otherwise break every id holding it).
func (s *sanitizer) knownNames(v any, order []string) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = s.knownNames(x, order)
		}
	case []any:
		for i, x := range v {
			v[i] = s.knownNames(x, order)
		}
	case string:
		if s.kept[v] || cloudflare.IsID(v) { // an id names nothing: a name inside it is chance
			return v
		}
		for _, n := range order {
			v = strings.ReplaceAll(v, n, s.names[n])
		}
		return v
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

// kindOf says whose "name" fields an answer holds, by its path.
func kindOf(path string) (kind string, zones bool) {
	path, _, _ = strings.Cut(path, "?")
	switch {
	case strings.Contains(path, "/iam/user_groups"):
		return "Group", false
	case accountPath.MatchString(path):
		return "Account", false
	case path == "/zones":
		return "Name", true
	}
	return "Name", false
}

// Sanitize returns the exchanges with people's data replaced and the
// secrets cut out, as Record writes them.
func Sanitize(xs []Exchange, secrets ...string) ([]Exchange, error) {
	s := newSanitizer(secrets)
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
		kind, zones := kindOf(x.Path)
		m, ok := bodies[i].(map[string]any)
		list, isList := m["result"].([]any)
		if !ok || !zones || !isList {
			bodies[i] = s.value(bodies[i], kind, false)
			continue
		}
		for j, z := range list { // each zone of /zones keeps its name
			list[j] = s.value(z, kind, true)
		}
		delete(m, "result")
		m = s.value(m, kind, false).(map[string]any)
		m["result"] = list
		bodies[i] = m
	}
	// Longest first, so that a name inside another is not cut apart.
	var order []string
	for n := range s.names {
		order = append(order, n)
	}
	slices.SortFunc(order, func(a, b string) int { return cmp.Or(len(b)-len(a), strings.Compare(a, b)) })
	out := make([]Exchange, len(xs))
	for i, x := range xs {
		x.Path = s.path(x.Path)
		x.Text = s.knownNames(s.text(x.Text), order).(string)
		header := map[string]string{}
		for k, v := range x.Header {
			header[k] = s.text(v)
		}
		x.Header = header
		if bodies[i] != nil {
			b, err := json.Marshal(s.knownNames(bodies[i], order))
			if err != nil {
				return nil, err
			}
			x.Body = b
		}
		out[i] = x
	}
	return out, nil
}
