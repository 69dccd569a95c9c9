package fake

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/cfaccess/reconciler/internal/desired"
)

// listMembers serves GET /accounts/{account_id}/members.
func (s *Server) listMembers(w http.ResponseWriter, r *http.Request) {
	status := r.URL.Query().Get("status")
	s.mu.Lock()
	defer s.mu.Unlock()
	var match []*memberRecord
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

// getMember serves GET /accounts/{account_id}/members/{member_id}.
func (s *Server) getMember(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.memberOr404Locked(w, r.PathValue("member_id"))
	if m == nil {
		return
	}
	writeResult(w, s.memberJSONLocked(m))
}

// memberOr404Locked returns the member, or answers 404 and returns nil.
func (s *Server) memberOr404Locked(w http.ResponseWriter, id string) *memberRecord {
	m := s.memberLocked(id)
	if m == nil {
		writeError(w, http.StatusNotFound, 1003, "Member not found")
	}
	return m
}

func (s *Server) memberLocked(id string) *memberRecord {
	for _, m := range s.members {
		if m.ID == id {
			return m
		}
	}
	return nil
}

// createMember serves POST /accounts/{account_id}/members: an invitation.
func (s *Server) createMember(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Email    string       `json:"email"`
		Policies []policyBody `json:"policies"`
		Roles    []string     `json:"roles"`
		Status   string       `json:"status"`
	}
	if err := strictDecode(requestBody(r), &req); err != nil {
		writeError(w, http.StatusBadRequest, 1001, "invalid request body: "+err.Error())
		return
	}
	// qontract-reconcile issue 5079 quotes this refusal.
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
		// baton-cloudflare user.go handles exactly this answer.
		writeError(w, http.StatusBadRequest, 1008, "Account member already exists for email address")
		return
	}
	m := &memberRecord{Email: email, Status: "pending"}
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
	// The create response may omit parts of the member (roles); clients
	// read the member back.
	out := s.memberJSONLocked(m)
	delete(out, "roles")
	writeResult(w, out)
}

func (s *Server) memberByEmailLocked(email string) *memberRecord {
	return s.byEmail[strings.ToLower(email)]
}

// addMemberLocked adds a member, keeping the email index.
func (s *Server) addMemberLocked(m *memberRecord) {
	if s.byEmail == nil {
		s.byEmail = map[string]*memberRecord{}
	}
	s.members = append(s.members, m)
	s.byEmail[strings.ToLower(m.Email)] = m
}

// deleteMemberLocked removes the member at index i.
func (s *Server) deleteMemberLocked(i int) {
	id := s.members[i].ID
	for _, g := range s.userGroups {
		g.Members = slices.DeleteFunc(g.Members, func(m string) bool { return m == id })
	}
	delete(s.byEmail, strings.ToLower(s.members[i].Email))
	s.members = slices.Delete(s.members, i, i+1)
}

// updateMember replaces a member's policies (or roles). The body must carry
// the member's current status: without it, or with another, Cloudflare
// answers 200 and silently drops the change (Terraform provider PR 6581,
// Cloudflare ticket ACCT-10961).
func (s *Server) updateMember(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Policies []policyBody `json:"policies"`
		Roles    []idBody     `json:"roles"`
		Status   string       `json:"status"`
		User     any          `json:"user"`
	}
	if err := strictDecode(requestBody(r), &req); err != nil {
		writeError(w, http.StatusBadRequest, 1001, "invalid request body: "+err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.memberOr404Locked(w, r.PathValue("member_id"))
	if m == nil {
		return
	}
	dropped := req.Status != m.Status
	switch {
	case req.Policies != nil:
		pols, apiErr := s.checkPoliciesLocked(req.Policies)
		if apiErr != nil {
			writeError(w, http.StatusBadRequest, apiErr.Code, apiErr.Message)
			return
		}
		if !dropped {
			m.Policies, m.Roles = pols, nil
		}
	case req.Roles != nil:
		var ids []string
		for _, role := range req.Roles {
			if s.roleLocked(role.ID) == nil {
				writeError(w, http.StatusBadRequest, 1006, "Invalid role "+role.ID)
				return
			}
			ids = append(ids, role.ID)
		}
		if !dropped {
			m.Roles, m.Policies = ids, nil
		}
	default:
		writeError(w, http.StatusBadRequest, 1001, "policies or roles are required")
		return
	}
	writeResult(w, s.memberJSONLocked(m))
}

// deleteMember serves DELETE /accounts/{account_id}/members/{member_id}.
func (s *Server) deleteMember(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("member_id")
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

// policyJSONLocked renders a policy as member and user group answers do:
// permission groups and resource groups whole, scopes as objects.
func (s *Server) policyJSONLocked(p policyRecord) map[string]any {
	pgs, rgs := []any{}, []any{}
	for _, id := range p.PermissionGroups {
		if g := s.permGroupLocked(id); g != nil {
			pgs = append(pgs, g)
		}
	}
	for _, id := range p.ResourceGroups {
		if g := s.rgroupLocked(id); g != nil {
			rgs = append(rgs, g)
		}
	}
	return map[string]any{"id": p.ID, "access": p.Access, "permission_groups": pgs, "resource_groups": rgs}
}

// memberJSONLocked renders a member in the real API's shape
// (recorded-list-members.json): the user's email in user.email — for a
// pending member too, whose user.id is still empty (baton-cloudflare
// invitation.go) — and both policies and roles. A member made with
// policies also lists the matching roles, and one made with roles the
// matching policies on the whole account (Terraform provider
// account_member tests); clients read effective access from the policies.
func (s *Server) memberJSONLocked(m *memberRecord) map[string]any {
	user := map[string]any{"id": m.UserID, "email": m.Email, "first_name": m.FirstName, "last_name": m.LastName,
		"two_factor_authentication_enabled": m.TwoFactor}
	if m.Status == "pending" {
		user["id"] = ""
	}
	policies := []any{}
	roles := []any{}
	addRole := func(r *roleRecord) {
		if r != nil && !slices.ContainsFunc(roles, func(x any) bool { return x.(*roleRecord).ID == r.ID }) {
			roles = append(roles, r)
		}
	}
	for _, p := range m.Policies {
		policies = append(policies, s.policyJSONLocked(p))
		if p.Access == "allow" {
			for _, id := range p.PermissionGroups {
				if g := s.permGroupLocked(id); g != nil {
					addRole(s.roleByNameLocked(g.Name))
				}
			}
		}
	}
	if s.opts.InheritedPolicies {
		// Listed with the member's own, under the group's policy ids: the
		// new member screen "shows all permission policies associated with
		// a member; including policies inherited from group associations"
		// (changelog 2025-10-30). The API reference does not say whether
		// its answers do; clients must read the same either way.
		for _, g := range s.groupsOfLocked(m.ID) {
			for _, p := range g.Policies {
				policies = append(policies, s.policyJSONLocked(p))
			}
		}
	}
	if len(m.Roles) > 0 {
		var pgs []any
		for _, id := range m.Roles {
			if r := s.roleLocked(id); r != nil {
				addRole(r)
				if g := s.permGroupByNameLocked(r.Name); g != nil {
					pgs = append(pgs, g)
				}
			}
		}
		policies = append(policies, map[string]any{"id": hexID("role-policy", m.ID), "access": "allow",
			"permission_groups": pgs, "resource_groups": []any{s.accountGroupLocked()}})
	}
	return map[string]any{"id": m.ID, "status": m.Status, "user": user,
		"policies": policies, "roles": roles, "api_access_enabled": nil}
}
