package policy

import (
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/cfaccess/reconciler/internal/desired"
)

// Document is the guardrails' input document, opaque outside this package
// (it is built as OPA values).
type Document struct {
	obj ast.Object
}

// Input builds the guardrails' input document (docs/reference.md) from a
// repository at now, without "live" and "plan" (WithLive adds those after
// the accounts are read). Beyond the documented keys it carries, for rule authors:
// providers' "enabled" and "source", roles' "cloudflare_roles" (inherits
// with repository roles expanded) and "enabled", grants' "active". A
// binding has exactly the documented eight keys: eight fit OPA's smallest object,
// which keeps 100,000 bindings near 100 MB; its grant (reason, not_before) is
// the grant whose "source" is the same.
//
// The document is built as OPA values directly, with repeated strings
// shared: a repository of 10,000 grants has over 100,000 bindings, and
// converting Go maps to OPA values would double the work.
func Input(repo *desired.Repo, now time.Time) *Document {
	s := newInterner()
	providers := ast.NewObject()
	for id, pv := range repo.Providers {
		providers.Insert(s.str(id), ast.ObjectTerm(
			s.item("account_id", s.str(pv.AccountID)),
			s.item("enabled", ast.BooleanTerm(pv.Enabled)),
			s.item("prune", ast.BooleanTerm(pv.Prune)),
			s.item("protected", s.list(pv.Protected)),
			s.item("max_removals", ast.IntNumberTerm(pv.MaxRemovals)),
			s.item("source", s.str(pv.Pos.String())),
		))
	}
	roles := ast.NewObject()
	for id, r := range repo.Roles {
		allow := make([]*ast.Term, len(r.Resources))
		for i, res := range r.Resources {
			allow[i] = s.str(res.String())
		}
		roles.Insert(s.str(id), ast.ObjectTerm(
			s.item("inherits", s.list(r.Inherits)),
			s.item("cloudflare_roles", s.list(r.CloudflareRoles)),
			s.item("resources", ast.ObjectTerm(s.item("allow", ast.ArrayTerm(allow...)))),
			s.item("providers", s.list(r.Providers)),
			s.item("enabled", ast.BooleanTerm(r.Enabled)),
			s.item("max_duration", s.seconds(r.MaxDuration)),
			s.item("break_glass", s.breakGlass(r.BreakGlass)),
			s.item("source", s.str(r.Pos.String())),
		))
	}
	grants := make([]*ast.Term, len(repo.Grants))
	for i, g := range repo.Grants {
		grants[i] = ast.ObjectTerm(
			s.item("users", s.list(g.Users)),
			s.item("groups", s.list(g.Groups)),
			s.item("roles", s.list(g.Roles)),
			s.item("reason", s.str(g.Reason)),
			s.item("not_before", s.instant(g.NotBefore)),
			s.item("expires", s.instant(g.Expires)),
			s.item("review_after", s.instant(g.ReviewAfter)),
			s.item("break_glass", ast.BooleanTerm(g.BreakGlass)),
			s.item("active", ast.BooleanTerm(g.ActiveAt(now))),
			s.item("source", s.str(g.Pos.String())),
		)
	}
	all := repo.Bindings(now)
	bindings := make([]*ast.Term, len(all))
	for i, b := range all {
		bindings[i] = ast.ObjectTerm(
			s.item("provider", s.str(b.Provider)),
			s.item("email", s.str(b.Email)),
			s.item("role", s.str(b.Role)),
			s.item("cloudflare_role", s.str(b.Access.Role)),
			s.item("resource", s.str(b.Access.Resource.String())),
			s.item("active", ast.InternedTerm(b.Active)),
			s.item("expires", s.instant(b.Expires)),
			s.item("source", s.str(b.Source.String())),
		)
	}
	return &Document{obj: ast.NewObject(
		s.item("now", ast.StringTerm(now.UTC().Format(time.RFC3339))),
		s.item("providers", ast.NewTerm(providers)),
		s.item("roles", ast.NewTerm(roles)),
		s.item("grants", ast.ArrayTerm(grants...)),
		s.item("bindings", ast.ArrayTerm(bindings...)),
	)}
}

// WithNow returns the input evaluated at now instead (only "now" changes:
// the grants' activity must be the same at both instants). doc itself is
// left as it is: the new document shares its terms.
func WithNow(doc *Document, now time.Time) *Document {
	input := doc.without("now")
	input.Insert(ast.StringTerm("now"), ast.StringTerm(now.UTC().Format(time.RFC3339)))
	return &Document{obj: input}
}

// without is a copy of the document's top object without keys; the
// values are shared.
func (d *Document) without(keys ...string) ast.Object {
	out := ast.NewObject()
	d.obj.Foreach(func(k, v *ast.Term) {
		if key, ok := k.Value.(ast.String); !ok || !slices.Contains(keys, string(key)) {
			out.Insert(k, v)
		}
	})
	return out
}

func (in *interner) item(key string, v *ast.Term) [2]*ast.Term {
	return ast.Item(in.str(key), v)
}

// interner shares one term per distinct string. OPA does not mutate input
// terms during evaluation.
type interner struct {
	terms map[string]*ast.Term
	times map[time.Time]*ast.Term
	lists map[string]*ast.Term
	pairs map[desired.Access]*ast.Term
	// bindings are the live bindings of direct access.
	bindings map[desired.Access]*ast.Term
}

func newInterner() *interner {
	return &interner{terms: map[string]*ast.Term{}, times: map[time.Time]*ast.Term{},
		lists: map[string]*ast.Term{}, pairs: map[desired.Access]*ast.Term{}, bindings: map[desired.Access]*ast.Term{}}
}

// direct is one {cloudflare_role, resource, via: "direct"} binding, shared
// between every member that has it: a large account has few distinct ones.
func (in *interner) direct(a desired.Access, make func(desired.Access, string) *ast.Term) *ast.Term {
	t, ok := in.bindings[a]
	if !ok {
		t = make(a, "direct")
		in.bindings[a] = t
	}
	return t
}

// access is one {cloudflare_role, resource} object, shared between every
// member that has it: a large account has few distinct ones.
func (in *interner) access(a desired.Access) *ast.Term {
	t, ok := in.pairs[a]
	if !ok {
		t = ast.ObjectTerm(in.item("cloudflare_role", in.str(a.Role)), in.item("resource", in.str(a.Resource.String())))
		in.pairs[a] = t
	}
	return t
}

func (in *interner) str(s string) *ast.Term {
	t, ok := in.terms[s]
	if !ok {
		t = ast.StringTerm(s)
		in.terms[s] = t
	}
	return t
}

// list returns an array term of strings, shared between equal lists (the
// roles of grants repeat).
func (in *interner) list(ss []string) *ast.Term {
	key := strings.Join(ss, "\x00")
	if t, ok := in.lists[key]; ok && len(ss) > 0 {
		return t
	}
	terms := make([]*ast.Term, len(ss))
	for i, s := range ss {
		terms[i] = in.str(s)
	}
	t := ast.ArrayTerm(terms...)
	in.lists[key] = t
	return t
}

// seconds is a duration as a number of seconds (0: unset).
func (in *interner) seconds(d time.Duration) *ast.Term {
	return ast.IntNumberTerm(int(d / time.Second))
}

// breakGlass is a role's break_glass: {"max_duration": seconds}, or null.
func (in *interner) breakGlass(bg *desired.BreakGlass) *ast.Term {
	if bg == nil {
		return ast.NullTerm()
	}
	return ast.ObjectTerm(in.item("max_duration", in.seconds(bg.MaxDuration)))
}

func (in *interner) instant(t time.Time) *ast.Term {
	if t.IsZero() {
		return in.str("")
	}
	term, ok := in.times[t]
	if !ok {
		term = in.str(t.UTC().Format(time.RFC3339))
		in.times[t] = term
	}
	return term
}

// LiveMember is a live member as guardrails see it.
type LiveMember struct {
	Email     string
	Status    string
	TwoFactor bool
	Access    []desired.Access // zones by name where known
	// Inherited is the access the member holds through user groups.
	Inherited []InheritedAccess
	// Protected is set for the members cfaccess never changes (protected
	// emails, the token's owner).
	Protected bool
}

// InheritedAccess is access held through a user group.
type InheritedAccess struct {
	Access desired.Access
	Group  string
}

// PlanChange is a planned change as guardrails see it.
type PlanChange struct {
	Action      string // invite, update, remove, reinvite, leave_group
	Email       string
	Add, Remove []desired.Access
	Group       string // leave_group: the user group
	// Drift, when set, is who made the out-of-band change this change
	// corrects, from the account's audit log.
	Drift *ChangeDrift
}

// ChangeDrift is who made an out-of-band change: actor (email or
// "token <name>"), actor type, context (dash, api_token, …), when (RFC
// 3339).
type ChangeDrift struct {
	Actor, ActorType, Context, At string
}

// LiveAccount is one account's live members and plan.
type LiveAccount struct {
	Provider string
	Members  []LiveMember
	Changes  []PlanChange
	// OrgAdmins are the emails of the organization's Super
	// Administrators, who hold the account without being members.
	OrgAdmins []string
	// LosingAccess are the emails of the people the plan takes access
	// from, on any path (what max_removals counts).
	LosingAccess []string
}

// WithLive returns the input with the accounts' live members and plans
// added, as live.<provider> and plan.<provider> (every account read, at
// once). doc itself is left as it is: the new document shares its terms.
func WithLive(doc *Document, accounts []LiveAccount) *Document {
	input := doc.without("live", "plan")
	s := newInterner()
	// A binding says where it comes from: "direct" (the member's own
	// policies) or "user group <name>".
	binding := func(a desired.Access, via string) *ast.Term {
		return ast.ObjectTerm(s.item("cloudflare_role", s.str(a.Role)), s.item("resource", s.str(a.Resource.String())), s.item("via", s.str(via)))
	}
	direct := func(as []desired.Access) *ast.Term {
		terms := make([]*ast.Term, len(as))
		for i, a := range as {
			terms[i] = s.access(a)
		}
		return ast.ArrayTerm(terms...)
	}
	live, plan := ast.NewObject(), ast.NewObject()
	for _, acct := range accounts {
		ms := make([]*ast.Term, len(acct.Members))
		for i, m := range acct.Members {
			bs := make([]*ast.Term, 0, len(m.Access)+len(m.Inherited))
			for _, a := range m.Access {
				bs = append(bs, s.direct(a, binding))
			}
			for _, in := range m.Inherited {
				bs = append(bs, binding(in.Access, "user group "+in.Group))
			}
			ms[i] = ast.ObjectTerm(s.item("email", s.str(m.Email)), s.item("status", s.str(m.Status)),
				s.item("two_factor", ast.InternedTerm(m.TwoFactor)), s.item("protected", ast.InternedTerm(m.Protected)),
				s.item("bindings", ast.ArrayTerm(bs...)))
		}
		byAction := map[string][]*ast.Term{"invite": {}, "update": {}, "remove": {}, "reinvite": {}, "leave_group": {}}
		for _, c := range acct.Changes {
			items := [][2]*ast.Term{s.item("email", s.str(c.Email)), s.item("add", direct(c.Add)), s.item("remove", direct(c.Remove))}
			if c.Group != "" {
				items = append(items, s.item("user_group", s.str(c.Group)))
			}
			if d := c.Drift; d != nil {
				items = append(items, s.item("drift", ast.ObjectTerm(s.item("actor", s.str(d.Actor)), s.item("actor_type", s.str(d.ActorType)),
					s.item("context", s.str(d.Context)), s.item("at", s.str(d.At)))))
			}
			byAction[c.Action] = append(byAction[c.Action], ast.ObjectTerm(items...))
		}
		admins := make([]*ast.Term, len(acct.OrgAdmins))
		for i, e := range acct.OrgAdmins {
			admins[i] = s.str(e)
		}
		live.Insert(s.str(acct.Provider), ast.ObjectTerm(s.item("members", ast.ArrayTerm(ms...)),
			s.item("organization_super_admins", ast.ArrayTerm(admins...))))
		actions := ast.NewObject()
		for action, terms := range byAction {
			actions.Insert(s.str(action), ast.ArrayTerm(terms...))
		}
		actions.Insert(s.str("losing_access"), s.list(acct.LosingAccess))
		plan.Insert(s.str(acct.Provider), ast.NewTerm(actions))
	}
	input.Insert(ast.StringTerm("live"), ast.NewTerm(live))
	input.Insert(ast.StringTerm("plan"), ast.NewTerm(plan))
	return &Document{obj: input}
}
