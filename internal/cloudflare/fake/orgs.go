package fake

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Organizations (Enterprise): an Organization Super Administrator has
// "implicit access to all accounts in your organization … you do not need
// explicit membership on each account" (developers.cloudflare.com
// fundamentals/organizations/manage-members), so the account's member list
// does not show them. The organization's members are
// GET /organizations/{id}/members (cloudflare-go v7.9.0
// organizations/member.go): each {id, create_time, update_time, status,
// meta, user: {id, email, name, two_factor_authentication_enabled}},
// status active, pending, rejected or canceled; paged by cursor —
// page_size (10 by default, 1,000 at most) and page_token, the answer's
// result_info {next_page_token, total_size} with no token on the last
// page (2026 schema PageTokenResultInfo). The operations accept only the
// Global API key (X-Auth-Email and X-Auth-Key): with a token the API
// answers 403, code 10000, as the Organizations limitations page says.

// orgMemberRecord is a member of the account's organization.
type orgMemberRecord struct {
	ID, Email, Status string
}

// AddOrgMember adds a member (a Super Administrator) to the account's
// organization.
func (s *Server) AddOrgMember(email, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	s.orgMembers = append(s.orgMembers, orgMemberRecord{ID: hexID("org-member", strconv.Itoa(s.seq), email), Email: strings.ToLower(email), Status: status})
}

// listOrgMembers serves GET /organizations/{organization_id}/members.
func (s *Server) listOrgMembers(w http.ResponseWriter, r *http.Request) {
	if orgID := r.PathValue("organization_id"); s.opts.OrganizationID == "" || orgID != s.opts.OrganizationID {
		writeError(w, http.StatusNotFound, 1003, "Organization not found")
		return
	}
	if r.Header.Get("X-Auth-Key") == "" {
		writeError(w, http.StatusForbidden, 10000, "Authentication error")
		return
	}
	q := r.URL.Query()
	size := 10
	if v := q.Get("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, 1001, "page_size must be between 1 and 1000")
			return
		}
		size = n
	}
	start := 0
	if tok := q.Get("page_token"); tok != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(tok, "after-"))
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, 1001, "invalid page_token")
			return
		}
		start = n
	}
	s.mu.Lock()
	members := slices.Clone(s.orgMembers)
	s.mu.Unlock()
	start = min(start, len(members))
	end := min(start+size, len(members))
	out := []any{}
	for _, m := range members[start:end] {
		out = append(out, map[string]any{"id": m.ID, "status": m.Status, "meta": map[string]any{},
			"create_time": "2026-01-01T00:00:00Z", "update_time": time.Time{}.Format(time.RFC3339),
			"user": map[string]any{"id": hexID("user", m.Email), "email": m.Email, "name": m.Email, "two_factor_authentication_enabled": true}})
	}
	info := map[string]any{"total_size": len(members)}
	if end < len(members) {
		info["next_page_token"] = "after-" + strconv.Itoa(end)
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "errors": []any{}, "messages": []any{}, "result": out, "result_info": info})
}
