package fake

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Routing. Every operation is one http.ServeMux pattern ("GET
// /accounts/{account_id}/members/{member_id}"), registered once by New and
// matched against the path without BasePath (see muxRequest). ServeMux
// answers what no pattern serves itself, in plain text — 404, or 405 when
// a pattern serves the path with another method — where Cloudflare
// answers in its envelope. So route asks the mux first (Handler names no
// pattern for either answer) and answers those requests 404, code 7003,
// itself. The paths the API writes answer another method 405, code 10405,
// with Allow naming the methods they serve: each has a pattern without a
// method, which takes only the methods no operation's pattern takes. A
// read-only path, and a user group's member, answer another method 404,
// as an unknown path: the fake always has, and nothing says what
// Cloudflare does.

// routes builds the router.
func (s *Server) routes() *http.ServeMux {
	const (
		account        = "/accounts/{account_id}"
		members        = account + "/members"
		member         = members + "/{member_id}"
		resourceGroups = account + "/iam/resource_groups"
		userGroups     = account + "/iam/user_groups"
		userGroup      = userGroups + "/{group_id}"
		groupMembers   = userGroup + "/members"
		groupMember    = groupMembers + "/{member_id}"
	)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /user", s.getUser)
	mux.HandleFunc("GET /user/tokens/verify", s.verifyToken)
	mux.HandleFunc("GET /zones", s.listZones)
	mux.HandleFunc("GET /organizations/{organization_id}/members", s.listOrgMembers)
	mux.HandleFunc("GET "+account, s.getAccount)
	mux.HandleFunc("GET "+account+"/tokens/verify", s.verifyToken)
	mux.HandleFunc("GET "+account+"/logs/audit", s.listAudit)
	mux.HandleFunc("GET "+account+"/roles", s.listRoles)
	mux.HandleFunc("GET "+account+"/iam/permission_groups", s.listPermissionGroups)
	mux.HandleFunc("GET "+resourceGroups, s.listResourceGroups)
	mux.HandleFunc("POST "+resourceGroups, s.createResourceGroup)
	mux.HandleFunc("GET "+members, s.listMembers)
	mux.HandleFunc("POST "+members, s.createMember)
	mux.HandleFunc("GET "+member, s.getMember)
	mux.HandleFunc("PUT "+member, s.updateMember)
	mux.HandleFunc("DELETE "+member, s.deleteMember)
	mux.HandleFunc("GET "+userGroups, s.listUserGroups)
	mux.HandleFunc("POST "+userGroups, s.createUserGroup)
	mux.HandleFunc("GET "+userGroup, s.getUserGroup)
	mux.HandleFunc("PUT "+userGroup, s.updateUserGroup)
	mux.HandleFunc("DELETE "+userGroup, s.deleteUserGroup)
	mux.HandleFunc("GET "+groupMembers, s.listUserGroupMembers)
	mux.HandleFunc("POST "+groupMembers, s.addUserGroupMembers)
	mux.HandleFunc("PUT "+groupMembers, s.replaceUserGroupMembers)
	mux.HandleFunc("GET "+groupMember, s.getUserGroupMember)
	mux.HandleFunc("DELETE "+groupMember, s.removeUserGroupMember)
	for _, p := range []string{resourceGroups, members, member, userGroups, userGroup, groupMembers} {
		mux.HandleFunc(p, s.methodNotAllowed)
		// ServeMux gives HEAD to a GET pattern; the fake serves no HEAD.
		mux.HandleFunc("HEAD "+p, s.methodNotAllowed)
	}
	return mux
}

// route serves a request with s.mux, after refusing other accounts, and
// answers in the envelope what no pattern serves.
func (s *Server) route(w http.ResponseWriter, r *http.Request, body []byte) {
	path := strings.TrimPrefix(r.URL.Path, BasePath)
	seg := strings.Split(strings.Trim(path, "/"), "/")
	if len(seg) >= 2 && seg[0] == "accounts" && seg[1] != s.opts.AccountID {
		writeError(w, http.StatusForbidden, 9109, "Unauthorized to access requested resource")
		return
	}
	req := muxRequest(r, path, seg, body)
	if req == nil || !s.serves(req) {
		notFound(w, path, seg)
		return
	}
	s.mux.ServeHTTP(w, req)
}

// muxRequest is r as s.mux matches it, its body given back, or nil when
// no pattern may match it. Account and organization paths are matched by
// their segments, as the fake always has: slashes around them do not
// count, and a segment such as ".." is an identifier like any other —
// ServeMux would clean it away and redirect, so dots are escaped (PathValue
// unescapes them). An empty segment inside the path cannot be escaped: no
// pattern matches it. Other paths (/user, /zones) must be exact.
func muxRequest(r *http.Request, path string, seg []string, body []byte) *http.Request {
	if seg[0] != "accounts" && seg[0] != "organizations" && path != "/"+strings.Join(seg, "/") {
		return nil
	}
	escaped := make([]string, len(seg))
	for i, x := range seg {
		if x == "" {
			return nil
		}
		escaped[i] = strings.ReplaceAll(url.PathEscape(x), ".", "%2E")
	}
	u := *r.URL
	u.Path, u.RawPath = "/"+strings.Join(seg, "/"), "/"+strings.Join(escaped, "/")
	req := r.WithContext(r.Context()) // a shallow copy: r is left as it is
	req.URL, req.Body = &u, io.NopCloser(bytes.NewReader(body))
	return req
}

// serves reports whether a pattern of s.mux serves r: Handler names none
// for ServeMux's own 404 and 405, and a GET pattern does not serve HEAD.
func (s *Server) serves(r *http.Request) bool {
	_, pattern := s.mux.Handler(r)
	return pattern != "" && !(r.Method == http.MethodHead && strings.HasPrefix(pattern, http.MethodGet+" "))
}

// requestBody is the body of a routed request, which ServeHTTP has read
// already (for the request log and the audit log): reading it again
// cannot fail.
func requestBody(r *http.Request) []byte {
	body, _ := io.ReadAll(r.Body)
	return body
}

// notFound answers a request no pattern serves: 404, code 7003, naming
// the path. Under the user groups the fake has always named it without
// its leading slash and the hint.
func notFound(w http.ResponseWriter, path string, seg []string) {
	if len(seg) >= 4 && seg[0] == "accounts" && seg[2] == "iam" && seg[3] == "user_groups" {
		writeError(w, http.StatusNotFound, 7003, "Could not route to "+strings.Join(seg, "/"))
		return
	}
	writeError(w, http.StatusNotFound, 7003, "Could not route to "+path+", perhaps your object identifier is invalid?")
}

// methodNotAllowed answers a method a written path does not serve, with
// the methods it serves in Allow.
func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host}
		if _, pattern := s.mux.Handler(probe); strings.HasPrefix(pattern, m+" ") {
			allow = append(allow, m)
		}
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeError(w, http.StatusMethodNotAllowed, 10405, "Method not allowed")
}

// verifyToken serves GET /user/tokens/verify and its account form.
func (s *Server) verifyToken(w http.ResponseWriter, r *http.Request) {
	writeResult(w, map[string]any{"id": hexID("token", bearer(r)), "status": "active"})
}

// getUser serves GET /user: the token's owner, if it may read it.
func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	owner, _ := s.tokenOwner(r)
	if owner == "" {
		writeError(w, http.StatusForbidden, 9109, "Unauthorized to access requested resource")
		return
	}
	writeResult(w, map[string]any{"id": hexID("user", owner), "email": owner})
}

// getAccount serves GET /accounts/{account_id}.
func (s *Server) getAccount(w http.ResponseWriter, _ *http.Request) {
	a := map[string]any{"id": s.opts.AccountID, "name": s.opts.AccountName, "type": "standard",
		"settings": map[string]any{"enforce_twofactor": false}, "created_on": "2020-01-01T00:00:00Z"}
	if s.opts.OrganizationID != "" {
		// SDK accounts/account.go: managed_by.parent_org_id, "ID of the
		// parent Organization, if one exists".
		a["managed_by"] = map[string]any{"parent_org_id": s.opts.OrganizationID, "parent_org_name": s.opts.AccountName + " organization"}
	}
	writeResult(w, a)
}

// listRoles serves GET /accounts/{account_id}/roles, the legacy roles.
func (s *Server) listRoles(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	roles := slices.Clone(s.roles)
	s.mu.Unlock()
	paginate(w, r, roles)
}
