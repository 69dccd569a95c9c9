package desired

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Pos is a position in the access repository: a slash-separated path
// relative to the repository root, and a 1-based line (0 when unknown).
type Pos struct {
	File string
	Line int
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return p.File + ":" + strconv.Itoa(p.Line)
}

// ParsePos reads the "file:line" form that Pos.String writes. A string
// without a line gives Line 0.
func ParsePos(s string) Pos {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return Pos{File: s}
	}
	n, err := strconv.Atoi(s[i+1:])
	if err != nil || n < 0 {
		return Pos{File: s}
	}
	return Pos{File: s[:i], Line: n}
}

// Severity says whether a diagnostic blocks (Error) or is only shown
// (Warning).
type Severity int

const (
	// Error makes the repository invalid.
	Error Severity = iota
	// Warning is shown and counted but does not block.
	Warning
)

func (s Severity) String() string {
	if s == Warning {
		return "warning"
	}
	return "error"
}

// Diagnostic is one finding about the repository, at a position.
type Diagnostic struct {
	Pos      Pos
	Severity Severity
	Message  string
}

func (d Diagnostic) String() string {
	return d.Pos.String() + ": " + d.Message
}

// Diagnostics is a list of findings in the order they were found.
type Diagnostics []Diagnostic

// Errors returns the diagnostics of severity Error.
func (ds Diagnostics) Errors() Diagnostics { return ds.filter(Error) }

// Warnings returns the diagnostics of severity Warning.
func (ds Diagnostics) Warnings() Diagnostics { return ds.filter(Warning) }

func (ds Diagnostics) filter(s Severity) Diagnostics {
	var out Diagnostics
	for _, d := range ds {
		if d.Severity == s {
			out = append(out, d)
		}
	}
	return out
}

// Sort orders the diagnostics by file, then line, keeping the order of
// those at one line.
func (ds Diagnostics) Sort() {
	slices.SortStableFunc(ds, func(a, b Diagnostic) int {
		return cmp.Or(cmp.Compare(a.Pos.File, b.Pos.File), cmp.Compare(a.Pos.Line, b.Pos.Line))
	})
}

// Err joins the errors into one error, or returns nil when there is none.
func (ds Diagnostics) Err() error {
	var errs []error
	for _, d := range ds.Errors() {
		errs = append(errs, errors.New(d.String()))
	}
	return errors.Join(errs...)
}

// Repo is a loaded, validated access repository.
type Repo struct {
	Providers map[string]*Provider
	Roles     map[string]*Role
	Groups    map[string]*Group
	Grants    []*Grant
	// Files lists the declaration files read, in the order read.
	Files []string
}

// Provider is one Cloudflare account under management.
type Provider struct {
	ID          string
	Name        string
	Description string
	Enabled     bool
	AccountID   string
	// APITokenEnv names the environment variable holding this account's
	// token; empty means the global credentials.
	APITokenEnv string
	Prune       bool
	Protected   []string
	MaxRemovals int
	// PruneUserGroups takes declared members out of the user groups that
	// give them access the repository does not declare for them.
	PruneUserGroups bool
	// SCIM says an identity provider provisions the account (Cloudflare's
	// dashboard SCIM): it owns the user groups and their members, which
	// cfaccess then reports rather than writes, and members whose only
	// access is Minimal Account Access (what SCIM gives) are unmanaged
	// rather than pruned.
	SCIM bool
	// OrganizationID is the organization the account belongs to, whose
	// Super Administrators are read (and reported) too.
	OrganizationID string
	Pos            Pos
}

// Role is a named set of Cloudflare roles on a set of resources.
type Role struct {
	ID          string
	Name        string
	Description string
	Providers   []string
	// Inherits lists the role's entries as written: Cloudflare role names,
	// or ids of other roles of the repository.
	Inherits []string
	// CloudflareRoles is Inherits with repository roles expanded: the
	// Cloudflare role names this role grants, sorted and unique.
	CloudflareRoles []string
	// Resources are the resources.allow entries, without duplicates. The
	// zones of a role are one domain group in Cloudflare.
	Resources []Resource
	// InheritsAt and ResourcesAt are the positions of the Inherits and
	// Resources entries, for diagnostics that point at one entry.
	InheritsAt  []Pos
	ResourcesAt []Pos
	Enabled     bool
	// MaxDuration, when set (YAML max_duration), bounds every grant of
	// the role: it must expire within that long of its not_before, or of
	// the moment it is checked when it has none (Repo.LimitDiagnostics).
	MaxDuration time.Duration
	// BreakGlass, when set, lets grants marked break_glass give the role
	// without review, for at most BreakGlass.MaxDuration.
	BreakGlass *BreakGlass
	Pos        Pos
}

// BreakGlass is a role's allowance for break-glass grants: applied before
// anyone reviews them, loudly, and never longer than MaxDuration.
type BreakGlass struct {
	MaxDuration time.Duration
}

// Group is a named list of members.
type Group struct {
	ID      string
	Name    string
	Members []string
	// UserGroup mirrors the group as a Cloudflare user group (YAML
	// cloudflare_user_group: true): the roles granted to the group become
	// the user group's policies, and its members the user group's members.
	UserGroup bool
	Pos       Pos
}

// CloudflareName is the name of the group's Cloudflare user group: its
// name, or its id.
func (g *Group) CloudflareName() string {
	if g.Name != "" {
		return g.Name
	}
	return g.ID
}

// Grant gives roles to users and groups, optionally for a window of time.
type Grant struct {
	Users     []string
	Groups    []string
	Roles     []string
	Reason    string
	NotBefore time.Time // zero when unset
	Expires   time.Time // zero when unset
	// ReviewAfter is when the grant is due for an access review (YAML
	// review_after); zero when unset. It changes no access: a built-in
	// guardrail warns once it has passed, and `reconciler review` marks
	// the grant overdue.
	ReviewAfter time.Time
	// BreakGlass marks a grant applied without review (YAML break_glass),
	// allowed only for roles with break_glass and never longer than
	// their limit; reviewed afterwards.
	BreakGlass bool
	Pos        Pos
}

// ReviewDue reports whether the grant is due for review at now: it has a
// review_after, now is at or past it, and the grant has not expired.
func (g *Grant) ReviewDue(now time.Time) bool {
	if g.ReviewAfter.IsZero() || now.Before(g.ReviewAfter) {
		return false
	}
	return g.Expires.IsZero() || now.Before(g.Expires)
}

// ActiveAt reports whether the grant is in force at now:
// not_before <= now < expires.
func (g *Grant) ActiveAt(now time.Time) bool {
	if !g.NotBefore.IsZero() && now.Before(g.NotBefore) {
		return false
	}
	if !g.Expires.IsZero() && !now.Before(g.Expires) {
		return false
	}
	return true
}

func (g *Grant) String() string {
	return fmt.Sprintf("grant at %s", g.Pos)
}

func (p *Provider) position() Pos { return p.Pos }
func (r *Role) position() Pos     { return r.Pos }
func (g *Group) position() Pos    { return g.Pos }
