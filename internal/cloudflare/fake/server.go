package fake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cfaccess/reconciler/internal/cfroles"
)

// BasePath is where the API lives, as on api.cloudflare.com.
const BasePath = "/client/v4"

// Options configure a fake account.
type Options struct {
	AccountID   string // default a fixed 32-hex id
	AccountName string
	// Token is the API token accepted as "Authorization: Bearer"; APIKey
	// and Email the legacy pair. At least one must be set.
	Token         string
	APIKey, Email string
	// Owner is the email of the user owning the token, answered by
	// GET /user; empty means the token may not read it (403).
	Owner string
	// RateLimit requests per RatePeriod (default 1,200 per 5 minutes).
	RateLimit  int
	RatePeriod time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// InheritedPolicies makes member answers list the policies of the
	// member's user groups too, beside the member's own (see
	// memberJSONLocked): the API reference does not say which it does.
	InheritedPolicies bool
	// StrictPolicyIDs refuses, as the 2026 schema reads, a user-group
	// update whose policies lack an id (see checkPolicyIDsLocked).
	StrictPolicyIDs bool
	// OrganizationID, when set, puts the account in that organization
	// (GET /accounts/{id} managed_by.parent_org_id) and serves its members
	// at /organizations/{id}/members.
	OrganizationID string
	// AuditCursorsAfter serves the audit log's next cursor where
	// cloudflare-go reads it (result_info.cursors.after) instead of where
	// Cloudflare's docs show it (result_info.cursor).
	AuditCursorsAfter bool
}

// Server is an in-memory Cloudflare account behind the API v4. It is safe
// for concurrent use.
type Server struct {
	opts Options
	mux  *http.ServeMux // see routes

	mu         sync.Mutex
	permGroup  []permissionGroupRecord
	roles      []roleRecord
	rgroups    []ResourceGroup
	zones      []zoneRecord
	members    []*memberRecord
	byEmail    map[string]*memberRecord
	userGroups []*userGroupRecord
	orgMembers []orgMemberRecord
	seq        int
	window     []time.Time // request times within the rate period
	blocked    time.Time   // over the limit: every call refused until then
	latency    time.Duration
	failures   []*Failure
	before     func(r *http.Request)
	chaos      func(r *http.Request) *Failure
	log        []Request
	audit      []*AuditEntry
	auditSeq   int
	auditDelay time.Duration
	auditLose  int
	dashUser   string
	// auditLossRate of new audit entries go missing (auditRand draws).
	auditLossRate float64
	auditRand     *rand.Rand
	// others are the API tokens besides opts.Token (AddToken), by token.
	others map[string]tokenSpec
}

// tokenSpec is an API token besides the main one: its owner and name.
type tokenSpec struct{ owner, name string }

// Request is one logged request.
type Request struct {
	Method string
	Path   string // without BasePath
	Query  string
	Status int
	Body   []byte // request body, for writes
}

// Failure makes matching requests fail, Times times (0: until removed).
type Failure struct {
	Method string // "" matches any
	// Path matches the path without BasePath exactly, or as a prefix when
	// it ends in "*".
	Path string
	// Page matches the "page" query parameter (0: any page).
	Page   int
	Status int
	// RetryAfter sets the Retry-After header (for 429s).
	RetryAfter string
	// Reset closes the connection after sending part of a successful
	// body, instead of answering Status.
	Reset bool
	// AfterProcessing serves the request (the change happens), then
	// answers Status instead of the result: a response lost on the way.
	AfterProcessing bool
	// Ignored answers a write 200 with the resource as it was, changing
	// nothing: what Cloudflare does with a member PUT it silently drops
	// (Terraform provider PR 6581).
	Ignored bool
	// Mutate serves the request, then answers what Mutate makes of the
	// body (the status kept): answers that look fine but are wrong, for
	// adversarial tests.
	Mutate func(body []byte) []byte
	// Pad answers 200 with a valid envelope padded to about Pad bytes,
	// streamed: an answer too large to read whole.
	Pad   int64
	Times int
	used  int
}

// New returns a fake account seeded with Cloudflare's roles — the 78
// account-scoped and 13 domain-scoped ones as permission groups with
// meta.scopes, the account-scoped ones also as legacy roles with distinct
// ids — and the account's own resource group.
func New(opts Options) *Server {
	if opts.AccountID == "" {
		opts.AccountID = "023e105f4ecef8ad9ca31a8372d0c353"
	}
	if opts.AccountName == "" {
		opts.AccountName = "Example account"
	}
	if opts.RateLimit == 0 {
		opts.RateLimit = 1200
	}
	if opts.RatePeriod == 0 {
		opts.RatePeriod = 5 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, dashUser: DashboardUser}
	for _, name := range cfroles.Names() {
		scope := scopeAccount
		if slices.Contains(cfroles.DomainNames(), name) {
			scope = scopeDomain
		}
		s.permGroup = append(s.permGroup, permissionGroupRecord{
			ID: hexID("permission-group", name), Name: name,
			Meta: Meta{"label": label(name), "scopes": scope, "editable": "false"},
		})
		if scope == scopeAccount {
			// Legacy roles apply to the whole account only.
			s.roles = append(s.roles, roleRecord{
				ID: hexID("role", name), Name: name, Description: name + " role",
				Permissions: map[string]map[string]bool{"analytics": {"read": true, "edit": false}},
			})
		}
	}
	s.accountGroupLocked()
	s.mux = s.routes()
	return s
}

func label(name string) string {
	return strings.Trim(strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9':
			return r
		case 'A' <= r && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '_'
	}, name), "_")
}

// AccountID returns the account's id.
func (s *Server) AccountID() string { return s.opts.AccountID }

// ServeHTTP serves the API under BasePath.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	// Every answer is dated, by the account's clock (RFC 9110 §6.6.1: an
	// origin server with a clock must send Date); net/http keeps it.
	s.mu.Lock()
	now := s.opts.Now()
	s.mu.Unlock()
	w.Header().Set("Date", now.UTC().Format(http.TimeFormat))
	var body []byte
	if r.Body != nil && (r.Method == http.MethodPost || r.Method == http.MethodPut) {
		body, _ = readAllLimited(r, 1<<20)
	}
	logged := false
	logRequest := func() {
		s.mu.Lock()
		s.log = append(s.log, Request{Method: r.Method, Path: strings.TrimPrefix(r.URL.Path, BasePath), Query: r.URL.RawQuery, Status: rec.status, Body: body})
		s.mu.Unlock()
		logged = true
	}
	defer func() {
		if !logged {
			logRequest()
		}
	}()
	if d := s.currentLatency(); d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			rec.status = 499
			return
		}
	}
	if !s.authorized(r) {
		writeError(rec, http.StatusForbidden, 10000, "Authentication error")
		return
	}
	if retry, limited := s.rateLimited(rec.Header()); limited {
		rec.Header().Set("Retry-After", strconv.Itoa(retry))
		writeError(rec, http.StatusTooManyRequests, 10000, "Rate limited. Please wait and consider throttling your request speed")
		return
	}
	s.mu.Lock()
	before, chaos := s.before, s.chaos
	s.mu.Unlock()
	if before != nil {
		before(r)
	}
	var f *Failure
	if chaos != nil {
		f = chaos(r)
	}
	if f == nil {
		f = s.failureFor(r)
	}
	switch {
	case f == nil:
		s.routeAudited(rec, r, body)
		return
	case f.Reset:
		// Logged before the connection drops: the client sees the cut
		// only after the log has it.
		rec.status = http.StatusOK
		logRequest()
		resetMidBody(rec)
		return
	case f.Ignored:
		// Answer as a read of the same resource: 200, nothing changed.
		get := r.Clone(r.Context())
		get.Method = http.MethodGet
		s.route(rec, get, nil)
		return
	case f.Mutate != nil:
		inner := httptest.NewRecorder()
		s.routeAudited(inner, r, body)
		out := f.Mutate(inner.Body.Bytes())
		for k, v := range inner.Header() {
			rec.Header()[k] = v
		}
		rec.Header().Set("Content-Length", strconv.Itoa(len(out)))
		rec.WriteHeader(inner.Code)
		_, _ = rec.Write(out)
		return
	case f.Pad > 0:
		writePadded(rec, f.Pad)
		return
	case f.AfterProcessing:
		s.routeAudited(httptest.NewRecorder(), r, body)
	}
	if f.RetryAfter != "" {
		rec.Header().Set("Retry-After", f.RetryAfter)
	}
	writeError(rec, f.Status, 10000+f.Status, http.StatusText(f.Status))
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

// writePadded streams a valid envelope of about n bytes, without holding it.
func writePadded(w http.ResponseWriter, n int64) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, `{"success":true,"errors":[],"messages":[],"result":[],"padding":"`)
	chunk := []byte(strings.Repeat("x", 64<<10))
	for written := int64(0); written < n; written += int64(len(chunk)) {
		if _, err := w.Write(chunk); err != nil {
			return // the client stopped reading
		}
	}
	_, _ = io.WriteString(w, `"}`)
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func readAllLimited(r *http.Request, limit int64) ([]byte, error) {
	b := make([]byte, 0, 512)
	buf := make([]byte, 4096)
	for int64(len(b)) <= limit {
		n, err := r.Body.Read(buf)
		b = append(b, buf[:n]...)
		if err != nil {
			break
		}
	}
	return b, nil
}

// resetMidBody sends headers and part of a body, then drops the
// connection, as a proxy or a network fault would.
func resetMidBody(w *statusRecorder) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "4096")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(`{"success":true,"errors":[],"messages":[],"result":[{"id":"`))
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	if hj, ok := w.ResponseWriter.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

func (s *Server) authorized(r *http.Request) bool {
	if auth := r.Header.Get("Authorization"); auth != "" {
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || tok == "" {
			return false
		}
		s.mu.Lock()
		_, other := s.others[tok]
		s.mu.Unlock()
		return tok == s.opts.Token || other
	}
	email, key := r.Header.Get("X-Auth-Email"), r.Header.Get("X-Auth-Key")
	return s.opts.APIKey != "" && key == s.opts.APIKey && strings.EqualFold(email, s.opts.Email)
}

// rateLimited counts the request against the window and reports whether it
// is refused, with the seconds to wait. Cloudflare allows 1,200 requests
// in 5 minutes per user; past that, "all API calls for the next five
// minutes will be blocked" [developers.cloudflare.com
// fundamentals/api/reference/limits]. Every answer carries the Ratelimit
// and Ratelimit-Policy headers that page documents ("default";r=50;t=30
// and "burst";q=100;w=60): the remaining quota and the seconds until the
// window resets.
func (s *Server) rateLimited(h http.Header) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	period := s.opts.RatePeriod
	h.Set("Ratelimit-Policy", fmt.Sprintf(`"default";q=%d;w=%d`, s.opts.RateLimit, int(math.Ceil(period.Seconds()))))
	if now.Before(s.blocked) {
		wait := ceilSeconds(s.blocked.Sub(now))
		h.Set("Ratelimit", fmt.Sprintf(`"default";r=0;t=%d`, wait))
		return wait, true
	}
	cut := 0
	for cut < len(s.window) && now.Sub(s.window[cut]) >= period {
		cut++
	}
	s.window = s.window[cut:]
	if len(s.window) >= s.opts.RateLimit {
		s.blocked = now.Add(period)
		wait := ceilSeconds(period)
		h.Set("Ratelimit", fmt.Sprintf(`"default";r=0;t=%d`, wait))
		return wait, true
	}
	s.window = append(s.window, now)
	reset := period
	if len(s.window) > 0 {
		reset = s.window[0].Add(period).Sub(now)
	}
	h.Set("Ratelimit", fmt.Sprintf(`"default";r=%d;t=%d`, s.opts.RateLimit-len(s.window), ceilSeconds(reset)))
	return 0, false
}

func ceilSeconds(d time.Duration) int { return max(1, int(math.Ceil(d.Seconds()))) }

func (s *Server) currentLatency() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latency
}

func (s *Server) failureFor(r *http.Request) *Failure {
	s.mu.Lock()
	defer s.mu.Unlock()
	path := strings.TrimPrefix(r.URL.Path, BasePath)
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	if page == 0 {
		page = 1
	}
	for i, f := range s.failures {
		if f.Method != "" && f.Method != r.Method {
			continue
		}
		if p, prefix := strings.CutSuffix(f.Path, "*"); prefix && !strings.HasPrefix(path, p) || !prefix && path != f.Path {
			continue
		}
		if f.Page != 0 && f.Page != page {
			continue
		}
		f.used++
		if f.Times > 0 && f.used >= f.Times {
			s.failures = slices.Delete(s.failures, i, i+1)
		}
		return f
	}
	return nil
}

// routeAudited routes a request and logs it in the audit log when it is a
// write.
func (s *Server) routeAudited(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Method == http.MethodGet {
		s.route(w, r, body)
		return
	}
	// The entry's time is when the change was made, before the answer:
	// a client that has its answer may already be on to the next thing.
	s.mu.Lock()
	at := s.opts.Now()
	s.mu.Unlock()
	tee := &teeRecorder{ResponseWriter: w, status: http.StatusOK}
	s.route(tee, r, body)
	s.apiAudit(r, at, tee.status, body, tee.body.Bytes())
}

// teeRecorder keeps the status and body of an answer.
type teeRecorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (t *teeRecorder) WriteHeader(code int) {
	t.status = code
	t.ResponseWriter.WriteHeader(code)
}

func (t *teeRecorder) Write(b []byte) (int, error) {
	t.body.Write(b)
	return t.ResponseWriter.Write(b)
}

// bearer is a request's API token, "" for the Global API key.
func bearer(r *http.Request) string {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return tok
}

// tokenOwner is the owner and name of a request's API token.
func (s *Server) tokenOwner(r *http.Request) (owner, name string) {
	tok := bearer(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := s.others[tok]; ok {
		return o.owner, o.name
	}
	return s.opts.Owner, tokenName
}

// AddToken accepts another API token, owned by owner and named name, with
// the same access as the main one: someone else's token on the account —
// an insider's, say. Its audit entries name it by its own id (TokenIDOf).
func (s *Server) AddToken(token, owner, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.others == nil {
		s.others = map[string]tokenSpec{}
	}
	s.others[token] = tokenSpec{owner: strings.ToLower(owner), name: name}
}

// tokenIDOf is the id of an API token (GET /user/tokens/verify, and the
// actor.token_id of its audit entries).
func tokenIDOf(token string) string { return hexID("token", token) }

// listZones serves GET /zones.
func (s *Server) listZones(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if id := q.Get("account.id"); id != "" && id != s.opts.AccountID {
		paginate(w, r, []any{})
		return
	}
	s.mu.Lock()
	var out []any
	for _, z := range s.zones {
		if name := q.Get("name"); name != "" && !strings.EqualFold(name, z.Name) {
			continue
		}
		out = append(out, map[string]any{"id": z.ID, "name": z.Name, "status": "active", "paused": false, "type": "full",
			"account":               map[string]any{"id": s.opts.AccountID, "name": s.opts.AccountName},
			"owner":                 map[string]any{"id": hexID("owner", s.opts.AccountID), "name": s.opts.AccountName, "type": "organization"},
			"meta":                  map[string]any{"cdn_only": false, "custom_certificate_quota": 0, "dns_only": false, "foundation_dns": false, "page_rule_quota": 3, "phishing_detected": false, "step": 2},
			"development_mode":      0,
			"name_servers":          []string{"ada.ns.cloudflare.com", "bob.ns.cloudflare.com"},
			"original_name_servers": nil, "original_registrar": nil, "original_dnshost": nil,
			"created_on": "2020-01-01T00:00:00Z", "modified_on": "2020-01-01T00:00:00Z", "activated_on": "2020-01-02T00:00:00Z"})
	}
	all := len(s.zones)
	s.mu.Unlock()
	// The schema documents total_count as "total results available
	// without any search parameters": a lookup by name may report every
	// zone of the account. Clients must read it as an upper bound.
	paginateCounted(w, r, len(out), all, func(start, end int) any {
		if start == end {
			return []any{}
		}
		return out[start:end]
	})
}

// strictDecode decodes JSON, refusing unknown fields.
func strictDecode(body []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
