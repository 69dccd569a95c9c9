package fake

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cfaccess/reconciler/internal/cfroles"
	"github.com/cfaccess/reconciler/internal/desired"
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
}

// Server is an in-memory Cloudflare account behind the API v4. It is safe
// for concurrent use.
type Server struct {
	opts Options

	mu        sync.Mutex
	permGroup []PermissionGroup
	roles     []Role
	rgroups   []ResourceGroup
	zones     []Zone
	members   []*Member
	byEmail   map[string]*Member
	seq       int
	window    []time.Time // request times within the rate period
	latency   time.Duration
	failures  []*Failure
	before    func(r *http.Request)
	chaos     func(r *http.Request) *Failure
	log       []Request
}

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
	Times           int
	used            int
}

// New returns a fake account seeded with Cloudflare's 78 roles, as
// permission groups and as legacy roles with distinct ids, and the
// account's own resource group.
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
	s := &Server{opts: opts}
	for _, name := range cfroles.Names() {
		scope := "com.cloudflare.api.account"
		if zoneCapable[name] {
			scope = "com.cloudflare.api.account.zone"
		}
		s.permGroup = append(s.permGroup, PermissionGroup{
			ID: hexID("permission-group", name), Name: name,
			Meta: Meta{"label": label(name), "scopes": scope},
		})
		s.roles = append(s.roles, Role{
			ID: hexID("role", name), Name: name, Description: name + " role",
			Permissions: map[string]map[string]bool{"analytics": {"read": true, "edit": false}},
		})
	}
	s.accountGroupLocked()
	return s
}

// zoneCapable lists the roles that may be granted on single zones; the
// others are account-wide only (Cloudflare answers 400 code 1006).
var zoneCapable = map[string]bool{
	"Administrator": true, "Administrator Read Only": true, "Analytics": true, "Cache Purge": true,
	"DNS": true, "Firewall": true, "HTTP Applications": true, "HTTP Applications Read": true,
	"Load Balancer": true, "Page Shield": true, "Page Shield Read": true, "Log Share": true, "Log Share Reader": true,
	"SSL/TLS, Caching, Performance, Page Rules, and Customization": true,
	"Waiting Room Admin": true, "Waiting Room Read": true, "Zaraz Admin": true, "Zaraz Edit": true, "Zaraz Readonly": true,
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
	var body []byte
	if r.Body != nil && (r.Method == http.MethodPost || r.Method == http.MethodPut) {
		body, _ = readAllLimited(r, 1<<20)
	}
	defer func() {
		s.mu.Lock()
		s.log = append(s.log, Request{Method: r.Method, Path: strings.TrimPrefix(r.URL.Path, BasePath), Query: r.URL.RawQuery, Status: rec.status, Body: body})
		s.mu.Unlock()
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
	if retry, limited := s.rateLimited(); limited {
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
	if f == nil {
		s.route(rec, r, body)
		return
	}
	if f.Reset {
		resetMidBody(rec)
		return
	}
	if f.AfterProcessing {
		s.route(httptest.NewRecorder(), r, body)
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
		return ok && s.opts.Token != "" && tok == s.opts.Token
	}
	email, key := r.Header.Get("X-Auth-Email"), r.Header.Get("X-Auth-Key")
	return s.opts.APIKey != "" && key == s.opts.APIKey && strings.EqualFold(email, s.opts.Email)
}

// rateLimited counts the request against the window and reports whether it
// is over the limit, with the seconds to wait.
func (s *Server) rateLimited() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	cut := 0
	for cut < len(s.window) && now.Sub(s.window[cut]) >= s.opts.RatePeriod {
		cut++
	}
	s.window = s.window[cut:]
	if len(s.window) >= s.opts.RateLimit {
		wait := s.opts.RatePeriod - now.Sub(s.window[0])
		return max(1, int(math.Ceil(wait.Seconds()))), true
	}
	s.window = append(s.window, now)
	return 0, false
}

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

// route dispatches to the endpoint handlers.
func (s *Server) route(w http.ResponseWriter, r *http.Request, body []byte) {
	path := strings.TrimPrefix(r.URL.Path, BasePath)
	seg := strings.Split(strings.Trim(path, "/"), "/")
	acct := len(seg) >= 2 && seg[0] == "accounts"
	if acct && seg[1] != s.opts.AccountID {
		writeError(w, http.StatusForbidden, 9109, "Unauthorized to access requested resource")
		return
	}
	switch {
	case r.Method == http.MethodGet && path == "/user/tokens/verify",
		r.Method == http.MethodGet && acct && len(seg) == 4 && seg[2] == "tokens" && seg[3] == "verify":
		writeResult(w, map[string]any{"id": hexID("token", s.opts.Token), "status": "active"})
	case r.Method == http.MethodGet && path == "/user":
		if s.opts.Owner == "" {
			writeError(w, http.StatusForbidden, 9109, "Unauthorized to access requested resource")
			return
		}
		writeResult(w, map[string]any{"id": hexID("user", s.opts.Owner), "email": s.opts.Owner})
	case r.Method == http.MethodGet && path == "/zones":
		s.listZones(w, r)
	case acct && len(seg) == 2 && r.Method == http.MethodGet:
		writeResult(w, map[string]any{"id": s.opts.AccountID, "name": s.opts.AccountName, "type": "standard",
			"settings": map[string]any{"enforce_twofactor": false}, "created_on": "2020-01-01T00:00:00Z"})
	case acct && len(seg) == 3 && seg[2] == "roles" && r.Method == http.MethodGet:
		s.mu.Lock()
		roles := slices.Clone(s.roles)
		s.mu.Unlock()
		paginate(w, r, roles)
	case acct && len(seg) == 4 && seg[2] == "iam" && seg[3] == "permission_groups" && r.Method == http.MethodGet:
		s.listPermissionGroups(w, r)
	case acct && len(seg) == 4 && seg[2] == "iam" && seg[3] == "resource_groups":
		switch r.Method {
		case http.MethodGet:
			s.listResourceGroups(w, r)
		case http.MethodPost:
			s.createResourceGroup(w, body)
		default:
			methodNotAllowed(w)
		}
	case acct && len(seg) == 3 && seg[2] == "members":
		switch r.Method {
		case http.MethodGet:
			s.listMembers(w, r)
		case http.MethodPost:
			s.createMember(w, body)
		default:
			methodNotAllowed(w)
		}
	case acct && len(seg) == 4 && seg[2] == "members":
		switch r.Method {
		case http.MethodGet:
			s.getMember(w, seg[3])
		case http.MethodPut:
			s.updateMember(w, seg[3], body)
		case http.MethodDelete:
			s.deleteMember(w, seg[3])
		default:
			methodNotAllowed(w)
		}
	default:
		writeError(w, http.StatusNotFound, 7003, "Could not route to "+path+", perhaps your object identifier is invalid?")
	}
}

func methodNotAllowed(w http.ResponseWriter) {
	writeError(w, http.StatusMethodNotAllowed, 10405, "Method not allowed")
}

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
	s.mu.Unlock()
	paginate(w, r, out)
}

func (s *Server) listPermissionGroups(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	var out []PermissionGroup
	for _, g := range s.permGroup {
		if (q.Get("id") == "" || q.Get("id") == g.ID) && (q.Get("name") == "" || q.Get("name") == g.Name) && (q.Get("label") == "" || q.Get("label") == g.Meta["label"]) {
			out = append(out, g)
		}
	}
	s.mu.Unlock()
	paginate(w, r, out)
}

func (s *Server) listResourceGroups(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	var out []any
	for _, g := range s.rgroups {
		if (q.Get("id") == "" || q.Get("id") == g.ID) && (q.Get("name") == "" || q.Get("name") == g.Name) {
			out = append(out, g.listJSON())
		}
	}
	s.mu.Unlock()
	paginate(w, r, out)
}

type scopeBody struct {
	Key     *string `json:"key"`
	Objects []struct {
		Key *string `json:"key"`
	} `json:"objects"`
}

func (s *Server) createResourceGroup(w http.ResponseWriter, body []byte) {
	var req struct {
		Scope *scopeBody      `json:"scope"`
		Meta  json.RawMessage `json:"meta"`
		Name  string          `json:"name"`
	}
	if err := strictDecode(body, &req); err != nil || req.Scope == nil || req.Scope.Key == nil || len(req.Scope.Objects) == 0 {
		writeError(w, http.StatusBadRequest, 1001, "invalid resource group: scope with a key and at least one object is required")
		return
	}
	scope := Scope{Key: *req.Scope.Key}
	for _, o := range req.Scope.Objects {
		if o.Key == nil {
			writeError(w, http.StatusBadRequest, 1001, "invalid resource group: every scope object needs a key")
			return
		}
		scope.Objects = append(scope.Objects, ScopeObject{Key: *o.Key})
	}
	if scope.Key != "com.cloudflare.api.account."+s.opts.AccountID {
		writeError(w, http.StatusBadRequest, 1006, "invalid resource group: scope key must be this account")
		return
	}
	s.mu.Lock()
	g := s.addGroupLocked(scope)
	s.mu.Unlock()
	writeResult(w, map[string]any{"id": g.ID, "name": g.Name, "meta": g.Meta, "scope": g.Scope})
}

// addGroupLocked returns the resource group with this scope, creating it.
func (s *Server) addGroupLocked(scope Scope) ResourceGroup {
	for _, g := range s.rgroups {
		if g.Scope.Key == scope.Key && slices.Equal(g.Scope.Objects, scope.Objects) {
			return g
		}
	}
	s.seq++
	name := scope.Key
	if len(scope.Objects) == 1 && scope.Objects[0].Key != "*" {
		name = scope.Objects[0].Key
	}
	g := ResourceGroup{ID: hexID("resource-group", strconv.Itoa(s.seq), name), Name: name, Meta: Meta{"editable": "false"}, Scope: scope}
	s.rgroups = append(s.rgroups, g)
	return g
}

func (s *Server) accountGroupLocked() ResourceGroup {
	return s.addGroupLocked(Scope{Key: "com.cloudflare.api.account." + s.opts.AccountID, Objects: []ScopeObject{{Key: "*"}}})
}

// strictDecode decodes JSON, refusing unknown fields.
func strictDecode(body []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func (s *Server) listMembers(w http.ResponseWriter, r *http.Request) {
	status := r.URL.Query().Get("status")
	s.mu.Lock()
	defer s.mu.Unlock()
	var match []*Member
	for _, m := range s.members {
		if status == "" || status == m.Status {
			match = append(match, m)
		}
	}
	paginateFunc(w, r, len(match), func(start, end int) any {
		out := make([]any, 0, end-start)
		for _, m := range match[start:end] {
			out = append(out, s.memberJSONLocked(m))
		}
		return out
	})
}

func (s *Server) getMember(w http.ResponseWriter, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.memberLocked(id)
	if m == nil {
		writeError(w, http.StatusNotFound, 1003, "Member not found")
		return
	}
	writeResult(w, s.memberJSONLocked(m))
}

func (s *Server) memberLocked(id string) *Member {
	for _, m := range s.members {
		if m.ID == id {
			return m
		}
	}
	return nil
}

// policyBody is a policy as sent on create and update.
type policyBody struct {
	ID               string   `json:"id"`
	Access           string   `json:"access"`
	PermissionGroups []idBody `json:"permission_groups"`
	ResourceGroups   []idBody `json:"resource_groups"`
}

type idBody struct {
	ID string `json:"id"`
}

// checkPoliciesLocked validates policies as Cloudflare does: known
// permission and resource groups, and no account-only role on a zone.
func (s *Server) checkPoliciesLocked(ps []policyBody) ([]Policy, *apiError) {
	if len(ps) == 0 {
		return nil, &apiError{1001, "policies must not be empty"}
	}
	var out []Policy
	for _, p := range ps {
		if p.Access != "allow" && p.Access != "deny" {
			return nil, &apiError{1001, "policy access must be allow or deny"}
		}
		if len(p.PermissionGroups) == 0 || len(p.ResourceGroups) == 0 {
			return nil, &apiError{1001, "a policy needs permission groups and resource groups"}
		}
		pol := Policy{ID: p.ID, Access: p.Access}
		accountOnly := false
		for _, pg := range p.PermissionGroups {
			g := s.permGroupLocked(pg.ID)
			if g == nil {
				return nil, &apiError{1006, "Invalid permission group " + pg.ID}
			}
			accountOnly = accountOnly || g.Meta["scopes"] == "com.cloudflare.api.account"
			pol.PermissionGroups = append(pol.PermissionGroups, g.ID)
		}
		for _, rg := range p.ResourceGroups {
			g := s.rgroupLocked(rg.ID)
			if g == nil {
				return nil, &apiError{1006, "Invalid resource group " + rg.ID}
			}
			if accountOnly && !isAccountScope(g.Scope) {
				return nil, &apiError{1006, "Invalid combination of permission group and resource group: account-level permissions cannot apply to zones"}
			}
			pol.ResourceGroups = append(pol.ResourceGroups, g.ID)
		}
		if pol.ID == "" {
			s.seq++
			pol.ID = hexID("policy", strconv.Itoa(s.seq))
		}
		out = append(out, pol)
	}
	return out, nil
}

func isAccountScope(sc Scope) bool {
	return len(sc.Objects) == 1 && sc.Objects[0].Key == "*"
}

func (s *Server) permGroupLocked(id string) *PermissionGroup {
	for i := range s.permGroup {
		if s.permGroup[i].ID == id {
			return &s.permGroup[i]
		}
	}
	return nil
}

func (s *Server) rgroupLocked(id string) *ResourceGroup {
	for i := range s.rgroups {
		if s.rgroups[i].ID == id {
			return &s.rgroups[i]
		}
	}
	return nil
}

func (s *Server) roleLocked(id string) *Role {
	for i := range s.roles {
		if s.roles[i].ID == id {
			return &s.roles[i]
		}
	}
	return nil
}

func (s *Server) createMember(w http.ResponseWriter, body []byte) {
	var req struct {
		Email    string       `json:"email"`
		Policies []policyBody `json:"policies"`
		Roles    []string     `json:"roles"`
		Status   string       `json:"status"`
	}
	if err := strictDecode(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, 1001, "invalid request body: "+err.Error())
		return
	}
	if req.Status == "accepted" {
		writeError(w, http.StatusBadRequest, 1001, "automatic verification of new members is not allowed")
		return
	}
	email, err := desired.NormalizeEmail(req.Email)
	if err != nil {
		writeError(w, http.StatusBadRequest, 1001, "invalid email address")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.memberByEmailLocked(email) != nil {
		writeError(w, http.StatusBadRequest, 1001, "A member with this email address already exists in this account")
		return
	}
	m := &Member{Email: email, Status: "pending"}
	switch {
	case req.Policies != nil:
		pols, apiErr := s.checkPoliciesLocked(req.Policies)
		if apiErr != nil {
			writeError(w, http.StatusBadRequest, apiErr.Code, apiErr.Message)
			return
		}
		m.Policies = pols
	case req.Roles != nil:
		for _, id := range req.Roles {
			if s.roleLocked(id) == nil {
				writeError(w, http.StatusBadRequest, 1006, "Invalid role "+id)
				return
			}
		}
		m.Roles = req.Roles
	default:
		writeError(w, http.StatusBadRequest, 1001, "policies or roles are required")
		return
	}
	s.seq++
	m.ID = hexID("member", strconv.Itoa(s.seq), email)
	m.UserID = hexID("user", email)
	s.addMemberLocked(m)
	// Like the real API, the create response omits roles.
	out := s.memberJSONLocked(m)
	delete(out, "roles")
	writeResult(w, out)
}

func (s *Server) memberByEmailLocked(email string) *Member {
	return s.byEmail[strings.ToLower(email)]
}

// addMemberLocked adds a member, keeping the email index.
func (s *Server) addMemberLocked(m *Member) {
	if s.byEmail == nil {
		s.byEmail = map[string]*Member{}
	}
	s.members = append(s.members, m)
	s.byEmail[strings.ToLower(m.Email)] = m
}

// deleteMemberLocked removes the member at index i.
func (s *Server) deleteMemberLocked(i int) {
	delete(s.byEmail, strings.ToLower(s.members[i].Email))
	s.members = slices.Delete(s.members, i, i+1)
}

func (s *Server) updateMember(w http.ResponseWriter, id string, body []byte) {
	var req struct {
		Policies []policyBody `json:"policies"`
		Roles    []idBody     `json:"roles"`
		Status   string       `json:"status"`
		User     any          `json:"user"`
	}
	if err := strictDecode(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, 1001, "invalid request body: "+err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.memberLocked(id)
	if m == nil {
		writeError(w, http.StatusNotFound, 1003, "Member not found")
		return
	}
	// A status that differs from the member's makes Cloudflare silently
	// drop the permission change (as Terraform's provider found).
	silentlyDropped := req.Status != "" && req.Status != m.Status
	switch {
	case req.Policies != nil:
		pols, apiErr := s.checkPoliciesLocked(req.Policies)
		if apiErr != nil {
			writeError(w, http.StatusBadRequest, apiErr.Code, apiErr.Message)
			return
		}
		if !silentlyDropped {
			m.Policies, m.Roles = pols, nil
		}
	case req.Roles != nil:
		var ids []string
		for _, r := range req.Roles {
			if s.roleLocked(r.ID) == nil {
				writeError(w, http.StatusBadRequest, 1006, "Invalid role "+r.ID)
				return
			}
			ids = append(ids, r.ID)
		}
		if !silentlyDropped {
			m.Roles, m.Policies = ids, nil
		}
	default:
		writeError(w, http.StatusBadRequest, 1001, "policies or roles are required")
		return
	}
	writeResult(w, s.memberJSONLocked(m))
}

func (s *Server) deleteMember(w http.ResponseWriter, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, m := range s.members {
		if m.ID == id {
			s.deleteMemberLocked(i)
			writeResult(w, map[string]string{"id": id})
			return
		}
	}
	writeError(w, http.StatusNotFound, 1003, "Member not found")
}

// memberJSONLocked renders a member in the real API's shape. A pending
// member's email is given at the top level only (reported, unconfirmed,
// for the real API): clients must look in both places.
func (s *Server) memberJSONLocked(m *Member) map[string]any {
	user := map[string]any{"id": m.UserID, "email": m.Email, "first_name": m.FirstName, "last_name": m.LastName,
		"two_factor_authentication_enabled": m.TwoFactor}
	if m.Status == "pending" {
		user["email"] = ""
	}
	policies := []any{}
	for _, p := range m.Policies {
		var pgs, rgs []any
		for _, id := range p.PermissionGroups {
			if g := s.permGroupLocked(id); g != nil {
				pgs = append(pgs, g)
			}
		}
		for _, id := range p.ResourceGroups {
			if g := s.rgroupLocked(id); g != nil {
				rgs = append(rgs, g.memberJSON())
			}
		}
		policies = append(policies, map[string]any{"id": p.ID, "access": p.Access, "permission_groups": pgs, "resource_groups": rgs})
	}
	roles := []any{}
	for _, id := range m.Roles {
		if r := s.roleLocked(id); r != nil {
			roles = append(roles, r)
		}
	}
	return map[string]any{"id": m.ID, "email": m.Email, "status": m.Status, "user": user,
		"policies": policies, "roles": roles, "api_access_enabled": nil}
}
