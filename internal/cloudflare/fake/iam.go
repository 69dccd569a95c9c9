package fake

import (
	"encoding/json"
	"net/http"
	"strconv"
)

func (s *Server) listPermissionGroups(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	var out []permissionGroupRecord
	for _, g := range s.permGroup {
		if (q.Get("id") == "" || q.Get("id") == g.ID) && (q.Get("name") == "" || q.Get("name") == g.Name) && (q.Get("label") == "" || q.Get("label") == g.Meta["label"]) {
			out = append(out, g)
		}
	}
	s.mu.Unlock()
	paginate(w, r, out)
}

// listResourceGroups answers the whole list in one response: the 2026
// operation has no page or per_page parameter and no result_info, and
// cloudflare-go v7 types it as a single page. Page parameters are ignored
// (cloudflare-typescript issue 2661: a client paging it loops forever, as
// every "page" is the same list).
func (s *Server) listResourceGroups(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	out := []ResourceGroup{}
	for _, g := range s.rgroups {
		if (q.Get("id") == "" || q.Get("id") == g.ID) && (q.Get("name") == "" || q.Get("name") == g.Name) {
			out = append(out, g)
		}
	}
	s.mu.Unlock()
	writeResult(w, out)
}

type scopeBody struct {
	Key     *string `json:"key"`
	Objects []struct {
		Key *string `json:"key"`
	} `json:"objects"`
}

// createResourceGroup makes a resource group. name is required (2026
// iam_request_create_resource_group; cloudflare-go v7.9.0
// ResourceGroupNewParams.Name is api:"required"). Every call makes a new
// group: nothing says Cloudflare merges groups of the same scope, so
// clients must look for an existing one first.
func (s *Server) createResourceGroup(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name  *string         `json:"name"`
		Scope *scopeBody      `json:"scope"`
		Meta  json.RawMessage `json:"meta"`
	}
	if err := strictDecode(requestBody(r), &req); err != nil {
		writeError(w, http.StatusBadRequest, 1001, "invalid request body: "+err.Error())
		return
	}
	if req.Name == nil || *req.Name == "" {
		writeError(w, http.StatusBadRequest, 1001, "invalid resource group: name is required")
		return
	}
	if req.Scope == nil || req.Scope.Key == nil || len(req.Scope.Objects) == 0 {
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
	s.mu.Lock()
	defer s.mu.Unlock()
	// Only the shapes the API is known to take: the account, or zones of
	// this account under the account key. (The dashboard's zone-keyed
	// groups are seeded by the dashboard hook; there is no evidence the
	// API makes them.)
	if kind, _ := s.kindLocked(scope); kind == groupOther || scope.Key != scopeAccount+"."+s.opts.AccountID {
		writeError(w, http.StatusBadRequest, 1006, "invalid resource group scope: use this account's key with \"*\" or zones of this account")
		return
	}
	g := s.newGroupLocked(*req.Name, scope)
	writeResult(w, g)
}

// newGroupLocked adds a resource group.
func (s *Server) newGroupLocked(name string, scope Scope) ResourceGroup {
	s.seq++
	g := ResourceGroup{ID: hexID("resource-group", strconv.Itoa(s.seq), name), Name: name, Meta: Meta{"editable": "true"}, Scope: scope}
	s.rgroups = append(s.rgroups, g)
	return g
}

// accountGroupLocked returns the account's own resource group, as every
// account has it (named after its key, not editable: the recorded member
// response), creating it on first use.
func (s *Server) accountGroupLocked() ResourceGroup {
	key := scopeAccount + "." + s.opts.AccountID
	return s.systemGroupLocked(Scope{Key: key, Objects: []ScopeObject{{Key: "*"}}})
}

// adHocGroupLocked returns the group the dashboard makes when a domain
// role is granted on one zone: keyed by the zone itself, objects [*]
// (cloudflare-api/README.md: TadaCloud MemberService; pulumi-cloudflare
// issue 1030).
func (s *Server) adHocGroupLocked(zoneID string) ResourceGroup {
	return s.systemGroupLocked(Scope{Key: zoneKeyPrefix + zoneID, Objects: []ScopeObject{{Key: "*"}}})
}

func (s *Server) systemGroupLocked(scope Scope) ResourceGroup {
	for _, g := range s.rgroups {
		if g.Scope.Key == scope.Key && len(g.Scope.Objects) == 1 && g.Scope.Objects[0] == scope.Objects[0] && g.Meta["editable"] == "false" {
			return g
		}
	}
	s.seq++
	g := ResourceGroup{ID: hexID("resource-group", strconv.Itoa(s.seq), scope.Key), Name: scope.Key, Meta: Meta{"editable": "false"}, Scope: scope}
	s.rgroups = append(s.rgroups, g)
	return g
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
// permission and resource groups, and every role on a resource of its
// scope — account-scoped roles on the account group only, domain-scoped
// roles on domains only. Anything else is 400 code 1006 "invalid
// permission group and resource group combination" (Terraform provider
// PR 6352, issue 6347).
func (s *Server) checkPoliciesLocked(ps []policyBody) ([]policyRecord, *apiError) {
	if len(ps) == 0 {
		return nil, &apiError{1001, "policies must not be empty"}
	}
	var out []policyRecord
	for _, p := range ps {
		if p.Access != "allow" && p.Access != "deny" {
			return nil, &apiError{1001, "policy access must be allow or deny"}
		}
		if len(p.PermissionGroups) == 0 || len(p.ResourceGroups) == 0 {
			return nil, &apiError{1001, "a policy needs permission groups and resource groups"}
		}
		pol := policyRecord{ID: p.ID, Access: p.Access}
		var scopes []string
		for _, pg := range p.PermissionGroups {
			g := s.permGroupLocked(pg.ID)
			if g == nil {
				return nil, &apiError{1006, "Invalid permission group " + pg.ID}
			}
			scopes = append(scopes, g.Meta["scopes"])
			pol.PermissionGroups = append(pol.PermissionGroups, g.ID)
		}
		for _, rg := range p.ResourceGroups {
			g := s.rgroupLocked(rg.ID)
			if g == nil {
				return nil, &apiError{1006, "Invalid resource group " + rg.ID}
			}
			kind, _ := s.kindLocked(g.Scope)
			for _, sc := range scopes {
				if sc == scopeAccount && kind != groupAccount || sc == scopeDomain && kind != groupDomains {
					return nil, &apiError{1006, "invalid permission group and resource group combination"}
				}
			}
			pol.ResourceGroups = append(pol.ResourceGroups, g.ID)
		}
		// A new policy gets an id of Cloudflare's; one sent with the body
		// is not kept (only a user-group update names policies it keeps:
		// updateUserGroup).
		s.seq++
		pol.ID = hexID("policy", strconv.Itoa(s.seq))
		out = append(out, pol)
	}
	return out, nil
}

// find returns a pointer to the first element of xs that matches, or nil.
func find[T any](xs []T, match func(*T) bool) *T {
	for i := range xs {
		if match(&xs[i]) {
			return &xs[i]
		}
	}
	return nil
}

func (s *Server) permGroupLocked(id string) *permissionGroupRecord {
	return find(s.permGroup, func(g *permissionGroupRecord) bool { return g.ID == id })
}

func (s *Server) permGroupByNameLocked(name string) *permissionGroupRecord {
	return find(s.permGroup, func(g *permissionGroupRecord) bool { return g.Name == name })
}

func (s *Server) rgroupLocked(id string) *ResourceGroup {
	return find(s.rgroups, func(g *ResourceGroup) bool { return g.ID == id })
}

func (s *Server) roleLocked(id string) *roleRecord {
	return find(s.roles, func(r *roleRecord) bool { return r.ID == id })
}

func (s *Server) roleByNameLocked(name string) *roleRecord {
	return find(s.roles, func(r *roleRecord) bool { return r.Name == name })
}
