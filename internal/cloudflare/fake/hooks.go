package fake

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cfaccess/reconciler/internal/desired"
)

// Test hooks: what a test (or the demo) does to the account behind the
// API's back, and what it reads to check the outcome.

// SetClock replaces the fake's clock (Options.Now).
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.Now = now
}

// SetLatency delays every request by d.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// Fail makes matching requests fail (see Failure).
func (s *Server) Fail(f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, &f)
}

// BeforeRequest sets a function called before each authorised request is
// served (nil removes it), to change the account while a client is
// reading it. It must not call back into a request.
func (s *Server) BeforeRequest(f func(r *http.Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.before = f
}

// Chaos sets a function deciding, for each authorised request, whether it
// fails and how (nil: served normally); nil removes it. It runs after
// BeforeRequest and before the failures set with Fail, and must not call
// back into a request. Fault-injection tests use it for random faults.
func (s *Server) Chaos(f func(r *http.Request) *Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chaos = f
}

// ClearFailures removes every pending Failure.
func (s *Server) ClearFailures() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = nil
}

// Requests returns the requests served so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// ResetRequests clears the request log.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = nil
}

// AddZone adds a zone and returns its id.
func (s *Server) AddZone(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.zoneIDLocked(name)
}

func (s *Server) zoneIDLocked(name string) string {
	name = strings.ToLower(name)
	for _, z := range s.zones {
		if z.Name == name {
			return z.ID
		}
	}
	z := zoneRecord{ID: hexID("zone", s.opts.AccountID, name), Name: name}
	s.zones = append(s.zones, z)
	return z.ID
}

// AddResourceGroup makes a domain group listing zones (created when
// missing), as an administrator would in the dashboard or with another
// tool, and returns its id.
func (s *Server) AddResourceGroup(name string, zones ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := Scope{Key: scopeAccount + "." + s.opts.AccountID}
	for _, z := range zones {
		sc.Objects = append(sc.Objects, ScopeObject{Key: zoneKeyPrefix + s.zoneIDLocked(z)})
	}
	return s.newGroupLocked(name, sc).ID
}

// MemberSpec describes a member added or changed out of band.
type MemberSpec struct {
	Email     string
	Pending   bool
	TwoFactor bool
	// Access is granted as the dashboard does it: account-scoped roles on
	// the account group, domain-scoped roles on each zone's ad-hoc group
	// (one policy per resource). Zones named are created. A role on a
	// resource its scope does not fit is an error, as in the dashboard.
	Access []desired.Access
	// Policies are granted as written: roles on resource groups by id
	// (from AddResourceGroup), unchecked.
	Policies []PolicySpec
	// Deny, when set, adds a deny policy of these roles on the account.
	Deny []string
	// LegacyRoles, when set, describes the member by legacy roles (on the
	// whole account) instead of policies.
	LegacyRoles []string
}

// PolicySpec is an allow policy of roles (by name) on resource groups (by
// id).
type PolicySpec struct {
	Roles          []string
	ResourceGroups []string
}

// PutMember adds a member, or replaces one with the same email, as someone
// editing in the dashboard would. It returns the member id.
func (s *Server) PutMember(spec MemberSpec) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	email := strings.ToLower(spec.Email)
	var roleIDs []string
	for _, name := range spec.LegacyRoles {
		r := s.roleByNameLocked(name)
		if r == nil {
			return "", fmt.Errorf("no legacy role %q", name)
		}
		roleIDs = append(roleIDs, r.ID)
	}
	policies, err := s.specPoliciesLocked(spec.Access, spec.Policies, spec.Deny)
	if err != nil {
		return "", err
	}
	m := s.memberByEmailLocked(email)
	desc, typ := "Edit Member", "update"
	if m == nil {
		s.seq++
		m = &memberRecord{ID: hexID("member", strconv.Itoa(s.seq), email), UserID: hexID("user", email), Email: email}
		s.addMemberLocked(m)
		desc, typ = "Add Member", "create"
	}
	m.Status = "accepted"
	if spec.Pending {
		m.Status = "pending"
	}
	m.TwoFactor = spec.TwoFactor
	m.Policies, m.Roles = policies, roleIDs
	s.dashAuditLocked(auditProductMembers, "member", m.ID, desc, typ, map[string]any{"email": email})
	return m.ID, nil
}

// specPoliciesLocked makes policies as the dashboard does: account-scoped
// roles on the account group, domain-scoped roles on each zone's ad-hoc
// group, one policy per resource group; then the given policies, and a
// deny policy of the deny roles on the account.
func (s *Server) specPoliciesLocked(access []desired.Access, specs []PolicySpec, deny []string) ([]policyRecord, error) {
	byGroup := map[string][]string{}
	var order []string
	for _, a := range access {
		g := s.permGroupByNameLocked(a.Role)
		if g == nil {
			return nil, fmt.Errorf("no permission group %q", a.Role)
		}
		var rg ResourceGroup
		switch {
		case a.Resource.Kind == desired.WholeAccount && g.Meta["scopes"] == scopeAccount:
			rg = s.accountGroupLocked()
		case a.Resource.Kind == desired.ZoneName && g.Meta["scopes"] == scopeDomain:
			rg = s.adHocGroupLocked(s.zoneIDLocked(a.Resource.Zone))
		case a.Resource.Kind == desired.ZoneKey && g.Meta["scopes"] == scopeDomain:
			rg = s.adHocGroupLocked(a.Resource.Zone)
		default:
			return nil, fmt.Errorf("%s is %s: not on %s (code 1006)", a.Role, g.Meta["scopes"], a.Resource)
		}
		if _, seen := byGroup[rg.ID]; !seen {
			order = append(order, rg.ID)
		}
		byGroup[rg.ID] = append(byGroup[rg.ID], g.ID)
	}
	var policies []policyRecord
	for _, rg := range order {
		s.seq++
		policies = append(policies, policyRecord{ID: hexID("policy", strconv.Itoa(s.seq)), Access: "allow",
			PermissionGroups: byGroup[rg], ResourceGroups: []string{rg}})
	}
	for _, p := range specs {
		pol := policyRecord{Access: "allow", ResourceGroups: p.ResourceGroups}
		for _, name := range p.Roles {
			g := s.permGroupByNameLocked(name)
			if g == nil {
				return nil, fmt.Errorf("no permission group %q", name)
			}
			pol.PermissionGroups = append(pol.PermissionGroups, g.ID)
		}
		for _, id := range p.ResourceGroups {
			if s.rgroupLocked(id) == nil {
				return nil, fmt.Errorf("no resource group %q", id)
			}
		}
		s.seq++
		pol.ID = hexID("policy", strconv.Itoa(s.seq))
		policies = append(policies, pol)
	}
	if len(deny) > 0 {
		pol := policyRecord{Access: "deny", ResourceGroups: []string{s.accountGroupLocked().ID}}
		for _, name := range deny {
			g := s.permGroupByNameLocked(name)
			if g == nil {
				return nil, fmt.Errorf("no permission group %q", name)
			}
			pol.PermissionGroups = append(pol.PermissionGroups, g.ID)
		}
		s.seq++
		pol.ID = hexID("policy", strconv.Itoa(s.seq))
		policies = append(policies, pol)
	}
	return policies, nil
}

// RemoveMember removes a member by email, out of band.
func (s *Server) RemoveMember(email string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, m := range s.members {
		if strings.EqualFold(m.Email, email) {
			s.deleteMemberLocked(i)
			s.dashAuditLocked(auditProductMembers, "member", m.ID, "Remove Member", "delete", nil)
			return true
		}
	}
	return false
}

// Accept marks a pending member as having accepted the invitation.
func (s *Server) Accept(email string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.memberByEmailLocked(email); m != nil {
		m.Status = "accepted"
		return true
	}
	return false
}

// MemberState is a member as a test sees it: effective access in the
// repository's terms (zones by name), allow policies only.
type MemberState struct {
	ID        string
	Email     string
	Status    string
	TwoFactor bool
	Access    []desired.Access
	Denies    int // deny policies, which cfaccess never writes
	// Groups are the names of the user groups the member belongs to
	// (their access is not in Access).
	Groups []string
}

// accessLocked is what allow policies give, zones by name, sorted.
func (s *Server) accessLocked(ps []policyRecord) []desired.Access {
	var out []desired.Access
	for _, p := range ps {
		if p.Access == "deny" {
			continue
		}
		for _, pg := range p.PermissionGroups {
			for _, rg := range p.ResourceGroups {
				g, r := s.permGroupLocked(pg), s.rgroupLocked(rg)
				if g == nil || r == nil {
					continue
				}
				for _, res := range s.resourcesLocked(r.Scope) {
					if a := (desired.Access{Role: g.Name, Resource: res}); !slices.Contains(out, a) {
						out = append(out, a)
					}
				}
			}
		}
	}
	slices.SortFunc(out, desired.Access.Compare)
	return out
}

// Members returns every member, sorted by email.
func (s *Server) Members() []MemberState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]MemberState, 0, len(s.members))
	for _, m := range s.members {
		ms := MemberState{ID: m.ID, Email: m.Email, Status: m.Status, TwoFactor: m.TwoFactor}
		for _, id := range m.Roles {
			if r := s.roleLocked(id); r != nil {
				if a := (desired.Access{Role: r.Name, Resource: desired.Resource{Kind: desired.WholeAccount}}); !slices.Contains(ms.Access, a) {
					ms.Access = append(ms.Access, a)
				}
			}
		}
		for _, p := range m.Policies {
			if p.Access == "deny" {
				ms.Denies++
			}
		}
		for _, a := range s.accessLocked(m.Policies) {
			if !slices.Contains(ms.Access, a) {
				ms.Access = append(ms.Access, a)
			}
		}
		for _, g := range s.groupsOfLocked(m.ID) {
			ms.Groups = append(ms.Groups, g.Name)
		}
		slices.Sort(ms.Groups)
		slices.SortFunc(ms.Access, desired.Access.Compare)
		out = append(out, ms)
	}
	slices.SortFunc(out, func(a, b MemberState) int { return cmp.Compare(a.Email, b.Email) })
	return out
}

// resourcesLocked reads a scope back as resources, zones by name.
func (s *Server) resourcesLocked(sc Scope) []desired.Resource {
	kind, zones := s.kindLocked(sc)
	switch kind {
	case groupAccount:
		return []desired.Resource{{Kind: desired.WholeAccount}}
	case groupDomains:
		var out []desired.Resource
		for _, id := range zones {
			out = append(out, desired.Resource{Kind: desired.ZoneName, Zone: s.zoneByIDLocked(id).Name})
		}
		return out
	}
	return nil
}

// ResourceGroupState is a resource group as a test sees it.
type ResourceGroupState struct {
	ID, Name string
	// Account is set for the account's group; Zones lists the zone names
	// of a domain group (or an ad-hoc group, AdHoc set).
	Account bool
	AdHoc   bool
	Zones   []string
}

// ResourceGroups returns every resource group, in the order made.
func (s *Server) ResourceGroups() []ResourceGroupState {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ResourceGroupState
	for _, g := range s.rgroups {
		st := ResourceGroupState{ID: g.ID, Name: g.Name, AdHoc: strings.HasPrefix(g.Scope.Key, zoneKeyPrefix)}
		for _, r := range s.resourcesLocked(g.Scope) {
			if r.Kind == desired.WholeAccount {
				st.Account = true
			} else {
				st.Zones = append(st.Zones, r.Zone)
			}
		}
		out = append(out, st)
	}
	return out
}

// RenameRole renames a permission group (and the legacy role of the same
// name), as Cloudflare has renamed roles: "Super Administrator" became
// "Super Administrator - All Privileges", "Workers Admin" became "Workers
// Platform Admin" (the API contract's README). The id stays. It reports
// whether the role existed.
func (s *Server) RenameRole(from, to string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.permGroupByNameLocked(from)
	if g == nil {
		return false
	}
	g.Name, g.Meta["label"] = to, label(to)
	for i := range s.roles {
		if s.roles[i].Name == from {
			s.roles[i].Name, s.roles[i].Description = to, to+" role"
		}
	}
	return true
}
