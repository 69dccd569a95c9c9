package cloudflare

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/cloudflare/cloudflare-go/v7/accounts"
	"github.com/cloudflare/cloudflare-go/v7/option"
	"github.com/cloudflare/cloudflare-go/v7/packages/pagination"
)

// The account's audit log (Audit Logs v2, GET /accounts/{id}/logs/audit,
// cloudflare-go v7.9.0 accounts.LogAuditService.List). Its token needs
// Account Settings Read. What is known of it, and how the client copes:
//   - since and before are required, "a date string 2019-04-30
//     (interpreted in UTC) or an absolute timestamp that conforms to
//     RFC3339" (SDK LogAuditListParams). The SDK encodes both as a date
//     only (format:"date"), which would drop the time of day: the client
//     sends RFC3339 itself.
//   - Paging is by cursor. Cloudflare's docs show it at
//     result_info.cursor, the SDK reads result_info.cursors.after: the
//     client reads both, stops at an empty cursor or an empty page, and
//     never reads more than MaxPages.
//   - Filters have ".not" variants, which are all the SDK can send. The
//     resource_product values of user-group changes are not documented,
//     so the client filters by product nowhere: it excludes its own
//     token and sorts the entries itself (AuditEntry.Kind).
//   - GET requests and 4xx answers are not logged (GA changelog,
//     2026-03-10); logs are kept 18 months; "there may be gaps or missing
//     entries" (beta changelog, 2025-03-27) and the ingestion delay is
//     not documented: the log can say that something changed, never
//     prove that nothing did.

// AuditKind sorts audit entries by what they changed.
type AuditKind string

// The kinds of entries cfaccess follows.
const (
	AuditMember    AuditKind = "member"
	AuditUserGroup AuditKind = "user_group"
)

// AuditEntry is an entry of an account's audit log.
type AuditEntry struct {
	ID   string
	Time time.Time
	// Action is the description ("Add Member"); ActionType create,
	// update, delete; Result success or failure.
	Action, ActionType, Result string
	// The actor: Email, Type (user, account, cloudflare_admin, system),
	// Context (dash, api_token, api_key, oauth, origin_ca_key), the API
	// token's id and name, and the IP address.
	ActorEmail, ActorType, ActorContext, TokenID, TokenName, IP string
	// The request: method, URI and user agent.
	Method, URI, UserAgent string
	// The resource changed.
	Product, ResourceType, ResourceID string
	// Kind is what the entry changed ("" for anything cfaccess does not
	// follow); MemberID or GroupID which one (from the URI or the
	// resource); Email the member's email, when the request or the answer
	// names it.
	Kind              AuditKind
	MemberID, GroupID string
	Email             string
	// Mentions are the emails and ids the request and the answer name
	// (the members a change of a user group's members is about).
	Mentions []string
	// GroupName is a user group's name, when the request or answer gives
	// it; GroupMembers marks a change of a group's members (…/members).
	GroupName    string
	GroupMembers bool
	// Origin is who made it, once judged (Journal.Judge).
	Origin Origin
	// Written is what a write asked for, when the log shows its request
	// body (nil otherwise).
	Written *Written
}

// Written is what a write asked for, from its request body as the audit
// log keeps it (resource.request): the policies it set, a member's or a
// user group's, by id; legacy roles; or the members it put in a user
// group (a bare array of {"id"}). Truncated says it held more than is
// read (maxWritten of each): not what cfaccess writes.
type Written struct {
	Policies  []WrittenPolicy
	Roles     []string
	Members   []string
	Truncated bool
}

// WrittenPolicy is a policy as a write sent it.
type WrittenPolicy struct {
	Deny                             bool
	PermissionGroups, ResourceGroups []string
	// Inline counts resource groups given by scope rather than by id
	// (cfaccess never sends them).
	Inline int
}

// writtenIn reads a request body: nil when it says nothing of access.
func writtenIn(body any) *Written {
	truncated := false
	ids := func(v any) (out []string, inline int) {
		l := asList(v)
		truncated = truncated || len(l) > maxWritten
		for _, x := range l[:min(len(l), maxWritten)] {
			m, _ := x.(map[string]any)
			if id, ok := m["id"].(string); ok && id != "" {
				out = append(out, strings.Clone(truncate(id, 64)))
			} else {
				inline++
			}
		}
		return out, inline
	}
	switch b := body.(type) {
	case []any:
		members, _ := ids(b)
		if len(members) == 0 {
			return nil
		}
		return &Written{Members: members, Truncated: truncated}
	case map[string]any:
		var w Written
		policies := asList(b["policies"])
		w.Truncated = len(policies) > maxWritten
		for _, p := range policies[:min(len(policies), maxWritten)] {
			m, _ := p.(map[string]any)
			wp := WrittenPolicy{Deny: m["access"] != "allow"}
			wp.PermissionGroups, _ = ids(m["permission_groups"])
			wp.ResourceGroups, wp.Inline = ids(m["resource_groups"])
			w.Policies = append(w.Policies, wp)
		}
		roles := asList(b["roles"])
		w.Truncated = w.Truncated || len(roles) > maxWritten
		for _, r := range roles[:min(len(roles), maxWritten)] {
			if s, ok := r.(string); ok {
				w.Roles = append(w.Roles, strings.Clone(truncate(s, 64)))
			}
		}
		if _, set := b["policies"]; !set && len(w.Roles) == 0 {
			return nil
		}
		w.Truncated = w.Truncated || truncated
		return &w
	}
	return nil
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// Revision is the Git revision the request's User-Agent names
// ("cfaccess/v1.2.3 (revision <sha>)"), "" for none; modified when it says
// it was applied from a checkout with uncommitted changes ("(revision
// <sha>, modified)"). It is a claim, as the whole header is: anyone can
// send it. It says which revision to check the change against, and
// proves nothing (see Journal and evidence).
func (e AuditEntry) Revision() (sha string, modified bool) {
	if m := revisionInUA.FindStringSubmatch(e.UserAgent); m != nil && strings.HasPrefix(e.UserAgent, UserAgentPrefix) {
		return m[1], m[2] != ""
	}
	return "", false
}

// UserAgentPrefix starts the User-Agent of every request cfaccess makes.
const UserAgentPrefix = "cfaccess/"

var revisionInUA = regexp.MustCompile(`\(revision ([0-9a-f]{7,64})(, modified)?\)`)

// Actor describes who made the change, for people: "mallory@example.com
// in the dashboard", "token ci-bot over the API".
func (e AuditEntry) Actor() string {
	who := e.ActorEmail
	if e.ActorContext == "api_token" && e.TokenName != "" {
		who = "token " + e.TokenName
		if e.ActorEmail != "" {
			who += " of " + e.ActorEmail
		}
	}
	if who == "" {
		who = "a " + cmp.Or(e.ActorType, "unknown") + " actor"
	}
	return who
}

// ContextText says how the change was made, for people.
func ContextText(ctx string) string {
	switch ctx {
	case "dash":
		return "in the dashboard"
	case "api_token":
		return "with an API token"
	case "api_key":
		return "with the Global API key"
	case "oauth":
		return "through OAuth"
	case "":
		return ""
	}
	return "through " + ctx
}

// AuditQuery selects audit entries.
type AuditQuery struct {
	// Since (inclusive) and Before (exclusive) bound the entries' times.
	Since, Before time.Time
	// MaxPages bounds the read (1,000 entries a page): more is
	// Truncated (default 10).
	MaxPages int
	// MaxBytes bounds the answers' total size (default 64 MiB): a log of
	// huge entries is Truncated before it fills the memory (one answer is
	// at most maxResponseBody).
	MaxBytes int64
	// All keeps entries of every kind (a person's last activity), not
	// only members and user groups.
	All bool
	// ResourceIDs, when set, asks for the entries of these resources only
	// (resource_id, repeated: the API reference lists the filter; the SDK
	// sends only its .not variant). An API that ignored it would answer
	// every entry: the caller keeps only those it asked for.
	ResourceIDs []string
	// NewestFirst reads the newest entries first (direction desc): when
	// MaxPages runs out, the oldest are the ones left unread. Entries are
	// still returned oldest first.
	NewestFirst bool
}

// AuditResult is what an audit query found.
type AuditResult struct {
	// Entries are the entries of the kinds cfaccess follows (every entry
	// with AuditQuery.All), oldest first.
	Entries []AuditEntry
	// Others counts the entries about anything else (left out).
	Others int
	// Truncated is set when MaxPages or MaxBytes ran out before the end.
	Truncated bool
	// Bytes is the answers' total size.
	Bytes int64
	// Requests made.
	Requests int
}

const auditPageSize = 1000

// DefaultAuditMaxBytes bounds one audit-log query's answers: 64 MiB is
// tens of thousands of ordinary entries.
const DefaultAuditMaxBytes = 64 << 20

// maxMentions bounds the emails and ids kept of one entry's bodies;
// maxWritten the policies, ids and members read of one write (more is
// not a write of cfaccess's, and is told as not explained).
const (
	maxMentions = 64
	maxWritten  = 200
)

var (
	memberURI    = regexp.MustCompile(`/accounts/[^/]+/members(?:/([^/?]+))?`)
	userGroupURI = regexp.MustCompile(`/accounts/[^/]+/iam/user_groups(?:/([^/?]+))?`)
	// groupMembersURI names a change of a user group's members (and the
	// member, for one taken out).
	groupMembersURI = regexp.MustCompile(`/accounts/[^/]+/iam/user_groups/[^/?]+/members(?:/([^/?]+))?`)
)

// AuditLog reads the account's audit entries in q's window, oldest first.
func (c *Client) AuditLog(ctx context.Context, accountID string, q AuditQuery) (AuditResult, error) {
	op := "read the audit log of account " + accountID
	if err := checkIDs(op, accountID); err != nil {
		return AuditResult{}, err
	}
	r := &auditRead{accountID: accountID, q: q.withDefaults(), seen: map[string]bool{}}
	cursor := ""
	for range r.q.MaxPages {
		p, opts := r.request(cursor)
		res, err := c.audit.List(ctx, p, opts...)
		r.out.Requests++
		if err != nil {
			return r.out, c.wrap(op, err)
		}
		fresh, next := r.add(res)
		switch {
		case r.out.Bytes > r.q.MaxBytes && len(res.Result) > 0 && next != "":
			return r.result(true), nil
		case len(res.Result) == 0 || next == "":
			return r.result(false), nil
		case fresh == 0 || next == cursor:
			return r.out, &APIError{Op: op, Message: "the audit log repeats itself: a page added no new entry"}
		}
		cursor = next
	}
	return r.result(true), nil
}

// withDefaults returns q with its bounds set: 10 pages and
// DefaultAuditMaxBytes unless it says otherwise.
func (q AuditQuery) withDefaults() AuditQuery {
	if q.MaxPages <= 0 {
		q.MaxPages = 10
	}
	if q.MaxBytes <= 0 {
		q.MaxBytes = DefaultAuditMaxBytes
	}
	return q
}

// auditRead is one AuditLog query: what it asks for, and what its pages
// have given so far.
type auditRead struct {
	accountID string
	q         AuditQuery
	out       AuditResult
	// seen holds the ids of the entries read.
	seen map[string]bool
}

// request is the query of the page at cursor ("" for the first).
func (r *auditRead) request(cursor string) (accounts.LogAuditListParams, []option.RequestOption) {
	q := r.q
	var p accounts.LogAuditListParams
	p.AccountID.Value, p.AccountID.Present = r.accountID, true
	p.Since.Value, p.Since.Present = q.Since, true
	p.Before.Value, p.Before.Present = q.Before, true
	p.Limit.Value, p.Limit.Present = auditPageSize, true
	p.Direction.Value, p.Direction.Present = accounts.LogAuditListParamsDirectionAsc, true
	if q.NewestFirst {
		p.Direction.Value = accounts.LogAuditListParamsDirectionDesc
	}
	if cursor != "" {
		p.Cursor.Value, p.Cursor.Present = cursor, true
	}
	// Whole seconds, the window widened to them: the documented form
	// is RFC 3339, and nothing says fractions are accepted.
	opts := []option.RequestOption{
		option.WithQuery("since", q.Since.UTC().Truncate(time.Second).Format(time.RFC3339)),
		option.WithQuery("before", ceilSecond(q.Before).Format(time.RFC3339)),
	}
	for _, id := range q.ResourceIDs {
		opts = append(opts, option.WithQueryAdd("resource_id", id))
	}
	return p, opts
}

// add keeps a page's entries not read before (those of the kinds asked
// for; the others are counted), and returns how many were new and the
// cursor of the next page ("" at the end).
func (r *auditRead) add(res *pagination.CursorPaginationAfter[accounts.LogAuditListResponse]) (fresh int, next string) {
	raw := res.JSON.RawJSON()
	r.out.Bytes += int64(len(raw))
	for _, entry := range res.Result {
		if r.seen[entry.ID] {
			continue
		}
		r.seen[entry.ID] = true
		fresh++
		e := convertAudit(entry)
		if e.Kind == "" && !r.q.All {
			r.out.Others++
			continue
		}
		r.out.Entries = append(r.out.Entries, e)
	}
	return fresh, nextCursor(raw)
}

// nextCursor reads the cursor of the next page from an answer: Cloudflare's
// docs show it at result_info.cursor, the SDK reads
// result_info.cursors.after.
func nextCursor(raw string) string {
	var env struct {
		ResultInfo struct {
			Cursor  string `json:"cursor"`
			Cursors struct {
				After string `json:"after"`
			} `json:"cursors"`
		} `json:"result_info"`
	}
	_ = json.Unmarshal([]byte(raw), &env)
	return cmp.Or(env.ResultInfo.Cursor, env.ResultInfo.Cursors.After)
}

// result is what the query found, its entries oldest first; truncated
// says a bound ran out before the end.
func (r *auditRead) result(truncated bool) AuditResult {
	r.out.Truncated = truncated
	if r.q.NewestFirst {
		slices.Reverse(r.out.Entries)
	}
	return r.out
}

// ceilSecond rounds t up to a whole second, in UTC.
func ceilSecond(t time.Time) time.Time {
	t = t.UTC()
	if r := t.Truncate(time.Second); !r.Equal(t) {
		return r.Add(time.Second)
	}
	return t
}

// convertAudit reads an SDK entry. Every string kept is a copy, bounded:
// the SDK's point into the page's whole body, which one kept string would
// keep alive (pages of 30 MB made report hold gigabytes).
func convertAudit(r accounts.LogAuditListResponse) AuditEntry {
	c := func(s string) string { return strings.Clone(truncate(s, 1024)) }
	k := func(s string) string { return canon(truncate(s, 64)) } // a word of few values
	e := AuditEntry{ID: c(r.ID), Time: r.Action.Time, Action: c(r.Action.Description), ActionType: k(r.Action.Type),
		Result: k(r.Action.Result), ActorEmail: c(strings.ToLower(r.Actor.Email)), ActorType: k(string(r.Actor.Type)),
		ActorContext: k(string(r.Actor.Context)), TokenID: c(r.Actor.TokenID), TokenName: c(r.Actor.TokenName),
		IP: c(r.Actor.IPAddress), Method: k(r.Raw.Method), URI: c(r.Raw.URI), UserAgent: c(r.Raw.UserAgent),
		Product: k(r.Resource.Product), ResourceType: k(r.Resource.Type), ResourceID: c(r.Resource.ID)}
	switch {
	case strings.Contains(e.URI, "/iam/user_groups"):
		e.Kind = AuditUserGroup
		if m := userGroupURI.FindStringSubmatch(e.URI); m != nil {
			e.GroupID = m[1]
		}
		if m := groupMembersURI.FindStringSubmatch(e.URI); m != nil {
			e.GroupMembers, e.MemberID = true, m[1]
		}
	case memberURI.MatchString(e.URI) || e.Product == "members":
		e.Kind = AuditMember
		if m := memberURI.FindStringSubmatch(e.URI); m != nil {
			e.MemberID = m[1]
		}
		if e.MemberID == "" && IsID(e.ResourceID) {
			e.MemberID = e.ResourceID
		}
		// Whose member it is, by Cloudflare's answer: a request's body is
		// whatever its sender wrote ({"user": {"email": …}} beside another
		// member's id). Only an invitation's request names its member.
		e.Email = emailIn(r.Resource.Response)
		if e.Email == "" && e.ActionType == "create" {
			e.Email = emailIn(r.Resource.Request)
		}
	}
	if e.Kind == AuditUserGroup && e.GroupID == "" && IsID(e.ResourceID) {
		e.GroupID = e.ResourceID
	}
	if e.Kind != "" {
		e.Mentions = mentions(nil, r.Resource.Request, r.Resource.Response)
		if e.ActionType != "delete" {
			e.Written = writtenIn(r.Resource.Request)
		}
	}
	if e.Kind == AuditUserGroup && e.ResourceType != "user_group_member" {
		for _, b := range []any{r.Resource.Request, r.Resource.Response} {
			if m, ok := b.(map[string]any); ok {
				if n, ok := m["name"].(string); ok && e.GroupName == "" {
					e.GroupName = strings.Clone(truncate(n, 256))
				}
			}
		}
	}
	return e
}

// mentions collects the strings of bodies that are emails or ids.
func mentions(out []string, vs ...any) []string {
	for _, v := range vs {
		switch v := v.(type) {
		case string:
			if IsID(v) || strings.Contains(v, "@") && len(v) <= 254 {
				out = append(out, strings.Clone(strings.ToLower(v)))
			}
		case []any:
			out = mentions(out, v...)
		case map[string]any:
			for _, x := range v {
				out = mentions(out, x)
			}
		}
		if len(out) >= maxMentions {
			return out[:maxMentions]
		}
	}
	return out
}

// emailIn finds a member's email in a request or answer body: "email", or
// "user": {"email"}.
func emailIn(bodies ...any) string {
	for _, b := range bodies {
		m, _ := b.(map[string]any)
		if s, ok := m["email"].(string); ok && s != "" {
			return strings.Clone(strings.ToLower(truncate(s, 254)))
		}
		if u, ok := m["user"].(map[string]any); ok {
			if s, ok := u["email"].(string); ok && s != "" {
				return strings.Clone(strings.ToLower(truncate(s, 254)))
			}
		}
	}
	return ""
}

// Identity returns the credentials in use as the audit log names the
// actor of a change: an API token by its id (TokenID), the Global API key
// by its user's email.
func (c *Client) Identity(ctx context.Context, accountID string) (Identity, error) {
	if c.creds.Token == "" {
		return Identity{KeyEmail: strings.ToLower(c.creds.Email)}, nil
	}
	id, err := c.TokenID(ctx, accountID)
	return Identity{TokenID: id}, err
}

// Token is what Cloudflare says of the API token in use when it verifies
// it: its id, status (active, disabled or expired) and the instant it
// expires (zero: never).
type Token struct {
	ID        string
	Status    string
	ExpiresOn time.Time
}

// TokenID returns the id of the API token in use (VerifyToken), "" for
// the Global API key. The audit log names the token of each change by
// this id (actor.token_id, "the API token ID when the actor context is
// an api_token or oauth", cloudflare-go v7.9.0): the same id as the
// token's, by every SDK's description ("Token identifier tag") and shape,
// though no document says so in words. Were it not, every change of
// cfaccess's would read as someone else's: loud, never silent.
func (c *Client) TokenID(ctx context.Context, accountID string) (string, error) {
	t, err := c.VerifyToken(ctx, accountID)
	return t.ID, err
}

// VerifyToken verifies the API token in use (GET /user/tokens/verify, or
// for an account-owned token GET /accounts/{id}/tokens/verify, which the
// user endpoint does not know); the zero Token for the Global API key.
func (c *Client) VerifyToken(ctx context.Context, accountID string) (Token, error) {
	if c.creds.Token == "" {
		return Token{}, nil
	}
	res, err := c.users.Tokens.Verify(ctx)
	if err == nil {
		return Token{ID: res.ID, Status: string(res.Status), ExpiresOn: res.ExpiresOn}, nil
	}
	werr := c.wrap("verify the token", err)
	var ae *APIError
	if !errors.As(werr, &ae) || !(ae.Auth() || ae.Status == http.StatusNotFound) || accountID == "" {
		return Token{}, werr
	}
	var p accounts.TokenVerifyParams
	p.AccountID.Value, p.AccountID.Present = accountID, true
	ares, err := c.accts.Tokens.Verify(ctx, p)
	if err != nil {
		return Token{}, c.wrap(fmt.Sprintf("verify the token (account %s)", accountID), err)
	}
	return Token{ID: ares.ID, Status: string(ares.Status), ExpiresOn: ares.ExpiresOn}, nil
}
