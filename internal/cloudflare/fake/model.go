package fake

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Meta is the free-form "meta" object of permission and resource groups.
type Meta map[string]string

// Scope strings of permission groups' meta.scopes: a role applies to the
// whole account, or to domains ([developers.cloudflare.com
// fundamentals/manage-members/scope]; the recorded member response shows
// "com.cloudflare.api.account" on Super Administrator).
const (
	scopeAccount = "com.cloudflare.api.account"
	scopeDomain  = "com.cloudflare.api.account.zone"
)

// permissionGroupRecord is a named set of permissions; member policies use them.
// Their names are the role names ("DNS", "Domain DNS", ...).
type permissionGroupRecord struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Meta Meta   `json:"meta"`
}

// ScopeObject is one resource under a scope key ("*" for all).
type ScopeObject struct {
	Key string `json:"key"`
}

// Scope is a resource group's scope: a key and the objects under it.
type Scope struct {
	Key     string        `json:"key"`
	Objects []ScopeObject `json:"objects"`
}

// ResourceGroup is a named scope. Its scope is an object both in member
// responses (recorded-list-members.json) and in GET /iam/resource_groups
// (2026 schema iam_resource_group).
//
// Three shapes exist in accounts (cloudflare-api/README.md): the account
// group (key com.cloudflare.api.account.<account>, objects [*]); a domain
// group (the same key, objects are zone keys, one or more); and the
// dashboard's ad-hoc group for one domain (key
// com.cloudflare.api.account.zone.<zone>, objects [*]).
type ResourceGroup struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Meta  Meta   `json:"meta"`
	Scope Scope  `json:"scope"`
}

// roleRecord is a legacy account role (GET /accounts/{id}/roles); its id differs
// from the permission group of the same name.
type roleRecord struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	// Permissions is the real API's map of {read, edit} objects (the
	// published schema says an array of strings).
	Permissions map[string]map[string]bool `json:"permissions"`
}

// policyRecord is one allow or deny statement of a member.
type policyRecord struct {
	ID               string
	Access           string // allow or deny
	PermissionGroups []string
	ResourceGroups   []string
}

// memberRecord is an account member: accepted, or pending (invited).
type memberRecord struct {
	ID        string
	UserID    string
	Email     string
	FirstName string
	LastName  string
	TwoFactor bool
	Status    string // accepted or pending
	Policies  []policyRecord
	// Roles holds legacy role ids, for members created or updated with
	// roles instead of policies.
	Roles []string
}

// zoneRecord is a zone of the account.
type zoneRecord struct {
	ID   string
	Name string
}

// zoneKeyPrefix starts a zone's resource key.
const zoneKeyPrefix = "com.cloudflare.api.account.zone."

// groupKind is what a resource group's scope covers.
type groupKind int

const (
	groupOther   groupKind = iota // a shape cfaccess does not model
	groupAccount                  // the whole account
	groupDomains                  // one or more zones
)

// kindLocked classifies a scope and returns the zone ids it covers.
func (s *Server) kindLocked(sc Scope) (groupKind, []string) {
	acctKey := scopeAccount + "." + s.opts.AccountID
	if sc.Key == acctKey && len(sc.Objects) == 1 && sc.Objects[0].Key == "*" {
		return groupAccount, nil
	}
	if id, ok := strings.CutPrefix(sc.Key, zoneKeyPrefix); ok && s.zoneByIDLocked(id) != nil &&
		len(sc.Objects) == 1 && sc.Objects[0].Key == "*" {
		return groupDomains, []string{id}
	}
	if sc.Key != acctKey || len(sc.Objects) == 0 {
		return groupOther, nil
	}
	var zones []string
	for _, o := range sc.Objects {
		id, ok := strings.CutPrefix(o.Key, zoneKeyPrefix)
		if !ok || s.zoneByIDLocked(id) == nil {
			return groupOther, nil
		}
		zones = append(zones, id)
	}
	return groupDomains, zones
}

func (s *Server) zoneByIDLocked(id string) *zoneRecord {
	return find(s.zones, func(z *zoneRecord) bool { return z.ID == id })
}

// hexID derives a stable 32-character hexadecimal id from parts, so that a
// seeded account has the same ids on every run.
func hexID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}
