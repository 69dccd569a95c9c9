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
	z := Zone{ID: hexID("zone", s.opts.AccountID, name), Name: name}
	s.zones = append(s.zones, z)
	return z.ID
}

// MemberSpec describes a member added or changed out of band.
type MemberSpec struct {
	Email     string
	Pending   bool
	TwoFactor bool
	// Access is granted as one allow policy per resource. Zones named are
	// created.
	Access []desired.Access
	// LegacyRoles, when set, describes the member by legacy roles (on the
	// whole account) instead of policies.
	LegacyRoles []string
}

// PutMember adds a member, or replaces one with the same email, as someone
// editing in the dashboard would. It returns the member id.
func (s *Server) PutMember(spec MemberSpec) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	email := strings.ToLower(spec.Email)
	m := s.memberByEmailLocked(email)
	if m == nil {
		s.seq++
		m = &Member{ID: hexID("member", strconv.Itoa(s.seq), email), UserID: hexID("user", email), Email: email}
		s.addMemberLocked(m)
	}
	m.Status = "accepted"
	if spec.Pending {
		m.Status = "pending"
	}
	m.TwoFactor = spec.TwoFactor
	m.Policies, m.Roles = nil, nil
	for _, name := range spec.LegacyRoles {
		r := s.roleByNameLocked(name)
		if r == nil {
			return "", fmt.Errorf("no role %q", name)
		}
		m.Roles = append(m.Roles, r.ID)
	}
	byResource := map[desired.Resource][]string{}
	var order []desired.Resource
	for _, a := range spec.Access {
		g := s.permGroupByNameLocked(a.Role)
		if g == nil {
			return "", fmt.Errorf("no permission group %q", a.Role)
		}
		if _, seen := byResource[a.Resource]; !seen {
			order = append(order, a.Resource)
		}
		byResource[a.Resource] = append(byResource[a.Resource], g.ID)
	}
	for _, res := range order {
		s.seq++
		rg := s.addGroupLocked(s.scopeLocked(res))
		m.Policies = append(m.Policies, Policy{ID: hexID("policy", strconv.Itoa(s.seq)), Access: "allow",
			PermissionGroups: byResource[res], ResourceGroups: []string{rg.ID}})
	}
	return m.ID, nil
}

// RemoveMember removes a member by email, out of band.
func (s *Server) RemoveMember(email string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, m := range s.members {
		if strings.EqualFold(m.Email, email) {
			s.deleteMemberLocked(i)
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

func (s *Server) scopeLocked(res desired.Resource) Scope {
	sc := Scope{Key: "com.cloudflare.api.account." + s.opts.AccountID}
	switch res.Kind {
	case desired.AllZones:
		sc.Objects = []ScopeObject{{Key: desired.ZoneKeyPrefix + "*"}}
	case desired.ZoneName:
		sc.Objects = []ScopeObject{{Key: desired.ZoneKeyPrefix + s.zoneIDLocked(res.Zone)}}
	case desired.ZoneKey:
		sc.Objects = []ScopeObject{{Key: desired.ZoneKeyPrefix + res.Zone}}
	default:
		sc.Objects = []ScopeObject{{Key: "*"}}
	}
	return sc
}

func (s *Server) permGroupByNameLocked(name string) *PermissionGroup {
	for i := range s.permGroup {
		if s.permGroup[i].Name == name {
			return &s.permGroup[i]
		}
	}
	return nil
}

func (s *Server) roleByNameLocked(name string) *Role {
	for i := range s.roles {
		if s.roles[i].Name == name {
			return &s.roles[i]
		}
	}
	return nil
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
				ms.Access = append(ms.Access, desired.Access{Role: r.Name, Resource: desired.Resource{Kind: desired.WholeAccount}})
			}
		}
		for _, p := range m.Policies {
			if p.Access == "deny" {
				ms.Denies++
				continue
			}
			for _, pg := range p.PermissionGroups {
				for _, rg := range p.ResourceGroups {
					g, r := s.permGroupLocked(pg), s.rgroupLocked(rg)
					if g == nil || r == nil {
						continue
					}
					for _, res := range s.resourcesLocked(r.Scope) {
						a := desired.Access{Role: g.Name, Resource: res}
						if !slices.Contains(ms.Access, a) {
							ms.Access = append(ms.Access, a)
						}
					}
				}
			}
		}
		slices.SortFunc(ms.Access, desired.Access.Compare)
		out = append(out, ms)
	}
	slices.SortFunc(out, func(a, b MemberState) int { return cmp.Compare(a.Email, b.Email) })
	return out
}

// resourcesLocked reads a scope back as resources, zones by name.
func (s *Server) resourcesLocked(sc Scope) []desired.Resource {
	var out []desired.Resource
	for _, o := range sc.Objects {
		switch {
		case o.Key == "*":
			out = append(out, desired.Resource{Kind: desired.WholeAccount})
		case o.Key == desired.ZoneKeyPrefix+"*":
			out = append(out, desired.Resource{Kind: desired.AllZones})
		case strings.HasPrefix(o.Key, desired.ZoneKeyPrefix):
			id := strings.TrimPrefix(o.Key, desired.ZoneKeyPrefix)
			res := desired.Resource{Kind: desired.ZoneKey, Zone: id}
			for _, z := range s.zones {
				if z.ID == id {
					res = desired.Resource{Kind: desired.ZoneName, Zone: z.Name}
				}
			}
			out = append(out, res)
		}
	}
	return out
}
