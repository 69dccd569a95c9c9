package fake

import (
	"crypto/sha256"
	"encoding/hex"
)

// Meta is the free-form "meta" object of permission and resource groups.
type Meta map[string]string

// PermissionGroup is a named set of permissions; member policies use them.
// Their names are the role names ("DNS", "Administrator", ...).
type PermissionGroup struct {
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

// ResourceGroup is a named scope. GET /iam/resource_groups returns its
// scope as a list of one; member responses embed it as an object.
type ResourceGroup struct {
	ID    string
	Name  string
	Meta  Meta
	Scope Scope
}

// listJSON is the /iam/resource_groups form: scope as an array.
func (g ResourceGroup) listJSON() any {
	return struct {
		ID    string  `json:"id"`
		Name  string  `json:"name"`
		Meta  Meta    `json:"meta"`
		Scope []Scope `json:"scope"`
	}{g.ID, g.Name, g.Meta, []Scope{g.Scope}}
}

// memberJSON is the form inside a member's policy: scope as an object, as
// the real API answers (the published schema says array).
func (g ResourceGroup) memberJSON() any {
	return struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		Meta  Meta   `json:"meta"`
		Scope Scope  `json:"scope"`
	}{g.ID, g.Name, g.Meta, g.Scope}
}

// Role is a legacy account role (GET /accounts/{id}/roles); its id differs
// from the permission group of the same name.
type Role struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	// Permissions is the real API's map of {read, edit} objects (the
	// published schema says an array of strings).
	Permissions map[string]map[string]bool `json:"permissions"`
}

// Policy is one allow or deny statement of a member.
type Policy struct {
	ID               string
	Access           string // allow or deny
	PermissionGroups []string
	ResourceGroups   []string
}

// Member is an account member: accepted, or pending (invited).
type Member struct {
	ID        string
	UserID    string
	Email     string
	FirstName string
	LastName  string
	TwoFactor bool
	Status    string // accepted or pending
	Policies  []Policy
	// Roles holds legacy role ids, for members described by roles only.
	Roles []string
}

// Zone is a zone of the account.
type Zone struct {
	ID   string
	Name string
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
