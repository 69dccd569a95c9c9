package cloudflare

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cloudflare/cloudflare-go/v7/accounts"
	"github.com/cloudflare/cloudflare-go/v7/iam"
	"github.com/cloudflare/cloudflare-go/v7/option"
	"github.com/cloudflare/cloudflare-go/v7/organizations"
	"github.com/cloudflare/cloudflare-go/v7/user"
	"github.com/cloudflare/cloudflare-go/v7/zones"
)

// DefaultBaseURL is Cloudflare's API v4.
const DefaultBaseURL = "https://api.cloudflare.com/client/v4"

// Config configures a Client. Zero values take the defaults noted.
type Config struct {
	// BaseURL of the API (DefaultBaseURL).
	BaseURL     string
	Credentials Credentials
	// HTTPClient carries the requests (a client with a 60 s timeout).
	HTTPClient *http.Client
	// Limit requests per Period (1,200 per 5 minutes, Cloudflare's global
	// limit per user).
	Limit  int
	Period time.Duration
	// MaxRetries of one request on 429, 5xx and network errors (4).
	MaxRetries int
	// Concurrency of list page fetches (10).
	Concurrency int
	// PerPage for lists (50, the API's maximum).
	PerPage int
	// Observe is told of every request attempt: method, endpoint template
	// (ids replaced by :id), HTTP status ("error" for a network error) and
	// duration. Used for metrics.
	Observe func(method, endpoint, code string, d time.Duration)
	// Now is the clock of the limiter (time.Now).
	Now func() time.Time
	// Limiter, when set, is shared with other clients of the same
	// credentials; Limit and Period are then ignored.
	Limiter *Limiter
	// UserAgent of every request: cfaccess's, "cfaccess/<version>
	// (revision <sha>)", by which its changes are known in the audit
	// log. Default UserAgentPrefix + "dev".
	UserAgent string
	// Journal, when set, records every write request before it is sent
	// (every attempt, retries included), to tell cfaccess's own changes
	// in the audit log.
	Journal *Journal
	// MaxRetryWait caps how long a request waits on Cloudflare's
	// Retry-After or used-up budget (60 s), and never past the HTTP
	// client's timeout or the context's deadline: a longer wait fails the
	// call as transient, saying when to try again. (The client's own
	// limiter, pacing it within Limit, waits as long as the context
	// allows.)
	MaxRetryWait time.Duration
	// WritesUntil, when set, fences writes (run --leader-elect): a write
	// request is sent only before the instant it returns (zero: none),
	// and abandoned at it. The instant is this replica's hold on the
	// lease; another replica can take it only later (leader.Elector).
	WritesUntil func() time.Time
}

// Client reads and writes account members. It is safe for concurrent use.
type Client struct {
	cfg     Config
	creds   Credentials
	limiter *window
	members *accounts.MemberService
	accts   *accounts.AccountService
	perms   *iam.PermissionGroupService
	groups  *iam.ResourceGroupService
	zones   *zones.ZoneService
	users   *user.UserService
	opts    []option.RequestOption

	userGroups       *iam.UserGroupService
	userGroupMembers *iam.UserGroupMemberService
	orgMembers       *organizations.MemberService
	audit            *accounts.LogAuditService
}

// New returns a client. It makes no request.
func New(cfg Config) *Client {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 60 * time.Second}
	}
	if cfg.Limit <= 0 {
		cfg.Limit = 1200
	}
	if cfg.Period <= 0 {
		cfg.Period = 5 * time.Minute
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = 4
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 10
	}
	if cfg.PerPage <= 0 {
		cfg.PerPage = 50
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxRetryWait <= 0 {
		cfg.MaxRetryWait = time.Minute
	}
	c := &Client{cfg: cfg, creds: cfg.Credentials, limiter: cfg.Limiter}
	if c.limiter == nil {
		c.limiter = newWindow(cfg.Limit, cfg.Period, cfg.Now)
	}
	// Every option is explicit: the SDK's NewClient would also read
	// CLOUDFLARE_* variables from the environment behind our back.
	opts := []option.RequestOption{
		option.WithBaseURL(strings.TrimSuffix(cfg.BaseURL, "/") + "/"),
		option.WithHTTPClient(cfg.HTTPClient),
		option.WithMaxRetries(max(cfg.MaxRetries, 0)),
		option.WithMiddleware(c.middleware),
		option.WithHeader("User-Agent", cmp.Or(cfg.UserAgent, UserAgentPrefix+"dev")),
	}
	if cfg.Credentials.Token != "" {
		opts = append(opts, option.WithAPIToken(cfg.Credentials.Token))
	} else {
		opts = append(opts, option.WithAPIKey(cfg.Credentials.APIKey), option.WithAPIEmail(cfg.Credentials.Email))
	}
	c.opts = opts
	c.members = accounts.NewMemberService(opts...)
	c.accts = accounts.NewAccountService(opts...)
	c.perms = iam.NewPermissionGroupService(opts...)
	c.groups = iam.NewResourceGroupService(opts...)
	c.zones = zones.NewZoneService(opts...)
	c.users = user.NewUserService(opts...)
	c.userGroups = iam.NewUserGroupService(opts...)
	c.userGroupMembers = iam.NewUserGroupMemberService(opts...)
	c.orgMembers = organizations.NewMemberService(opts...)
	c.audit = accounts.NewLogAuditService(opts...)
	return c
}

// middleware runs around every attempt the SDK makes, retries included:
// it waits for the limiter, then counts and times the request. It reads
// the whole response body: a connection cut mid-body is then an error of
// the attempt, which the SDK retries, rather than a truncated body it
// would fail to decode (the SDK retries only what fails before the body).
//
// It also keeps the SDK from waiting on Cloudflare's word alone: the SDK
// obeys any Retry-After, a day included, so a longer wait than this
// request may take (maxWait) stops the retries and fails the call as
// transient, saying when to try again; a shorter one pauses every request
// of these credentials until then. The Ratelimit header of every answer
// feeds the limiter.
func (c *Client) middleware(req *http.Request, next option.MiddlewareNext) (res *http.Response, err error) {
	maxWait := c.maxWait(req.Context())
	if err := c.limiter.Wait(req.Context(), maxWait); err != nil {
		var eb *errBudget
		if errors.As(err, &eb) {
			msg := fmt.Sprintf("not sent: Cloudflare's rate limit for these credentials is used up for %d s more",
				int(eb.until.Sub(c.cfg.Now()).Round(time.Second)/time.Second))
			return localAnswer(req, http.StatusTooManyRequests, msg, eb.until), nil
		}
		return nil, err
	}
	if fence := c.cfg.WritesUntil; fence != nil && writes(req.Method) {
		until := fence()
		if !c.cfg.Now().Before(until) {
			return localAnswer(req, http.StatusServiceUnavailable, "not sent: this replica does not hold the leader lease", time.Time{}), nil
		}
		ctx, cancel := context.WithDeadline(req.Context(), until)
		defer cancel()
		req = req.WithContext(ctx)
	}
	start := time.Now()
	if j := c.cfg.Journal; j != nil && writes(req.Method) {
		seq := j.record(req.Method, journalPath(req.URL.Path), req.Header.Get("User-Agent"))
		defer func() {
			status := 0
			if res != nil {
				status = res.StatusCode
			}
			j.done(seq, status)
		}()
	}
	res, err = next(req)
	if err == nil {
		body, rerr := io.ReadAll(io.LimitReader(res.Body, maxResponseBody+1))
		_ = res.Body.Close()
		switch {
		case rerr != nil:
			res, err = nil, fmt.Errorf("reading the response body: %w", rerr)
		case len(body) > maxResponseBody:
			// Not retried: the same request would bring the same answer.
			res = localAnswer(req, http.StatusBadGateway, fmt.Sprintf("the answer is larger than %d MiB: refused, nothing decided on it", maxResponseBody>>20), time.Time{})
		default:
			res.Body = io.NopCloser(bytes.NewReader(body))
		}
	}
	if c.cfg.Observe != nil {
		code := "error"
		if res != nil {
			code = strconv.Itoa(res.StatusCode)
		}
		c.cfg.Observe(req.Method, Endpoint(req.URL.Path), code, time.Since(start))
	}
	if res != nil {
		c.followRateHeaders(res, maxWait)
	}
	return res, err
}

// followRateHeaders applies an answer's Ratelimit and Retry-After headers.
func (c *Client) followRateHeaders(res *http.Response, maxWait time.Duration) {
	now := c.cfg.Now()
	if r, t, ok := ParseRatelimit(res.Header.Get("Ratelimit")); ok {
		c.limiter.observe(r, now.Add(t))
	}
	wait, ok := retryAfter(res.Header, now)
	if !ok {
		return
	}
	until := now.Add(wait)
	if res.StatusCode == http.StatusTooManyRequests {
		// Cloudflare blocks the user, not the request: hold every request
		// of these credentials back until then.
		c.limiter.pause(until)
	}
	if wait > maxWait {
		// The SDK would sleep that long: tell it not to retry, and say
		// when to (wrap reads it back).
		res.Header.Set("X-Should-Retry", "false")
		res.Header.Set(retryAtHeader, until.UTC().Format(time.RFC3339))
		return
	}
	// The same wait, exactly, in the form the SDK reads first.
	res.Header.Set("Retry-After-Ms", strconv.FormatInt(wait.Milliseconds(), 10))
}

// retryAtHeader carries, from the middleware to wrap, when a call refused
// for too long a wait may be tried again.
const retryAtHeader = "X-Cfaccess-Retry-At"

// maxWait is how long a request may wait for Cloudflare's budget:
// MaxRetryWait, and never past the per-attempt timeout or the context's
// deadline.
func (c *Client) maxWait(ctx context.Context) time.Duration {
	w := c.cfg.MaxRetryWait
	if t := c.cfg.HTTPClient.Timeout; t > 0 && t < w {
		w = t
	}
	if d, ok := ctx.Deadline(); ok {
		// Leave the retry itself a second.
		w = min(w, time.Until(d)-time.Second)
	}
	return max(w, 0)
}

// retryAfter reads Retry-After-Ms or Retry-After (seconds or an HTTP date),
// as the SDK does.
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms >= 0 {
			return time.Duration(ms * float64(time.Millisecond)), true
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Duration(max(s, 0) * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// maxResponseBody is the largest answer read (32 MiB): a page of 50
// members is a few hundred KiB, and a larger answer is refused rather than
// read whole.
const maxResponseBody = 32 << 20

// localAnswer is an answer the middleware gives in Cloudflare's place — a
// call not sent because the budget is used up (429), an answer refused
// (502) — that the SDK does not retry. retryAt, when set, is when to try
// again.
func localAnswer(req *http.Request, status int, msg string, retryAt time.Time) *http.Response {
	body, _ := json.Marshal(map[string]any{"success": false, "messages": []any{}, "result": nil,
		"errors": []any{map[string]any{"code": 10000, "message": msg}}})
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("X-Should-Retry", "false")
	if !retryAt.IsZero() {
		h.Set(retryAtHeader, retryAt.UTC().Format(time.RFC3339))
	}
	return &http.Response{StatusCode: status, Status: fmt.Sprintf("%d %s", status, http.StatusText(status)), Header: h,
		Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: req,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
}

// Endpoint turns a request path into a low-cardinality label: the API
// prefix dropped and 32-character hex ids replaced by ":id".
func Endpoint(path string) string {
	if i := strings.Index(path, "/client/v4"); i >= 0 {
		path = path[i+len("/client/v4"):]
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i, s := range segs {
		if IsID(s) {
			segs[i] = ":id"
		}
	}
	return "/" + strings.Join(segs, "/")
}

// IsID reports whether s has the shape of a Cloudflare id: 32 lower-case
// hexadecimal characters.
func IsID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Verify checks the credentials against the account: it reads the
// account, which a token without access to it cannot.
func (c *Client) Verify(ctx context.Context, accountID string) (name string, err error) {
	name, _, err = c.account(ctx, accountID)
	return name, err
}

// account reads the account's name and the organization it belongs to
// ("" for none: managed_by.parent_org_id, "ID of the parent Organization,
// if one exists", cloudflare-go v7.9.0 accounts/account.go).
func (c *Client) account(ctx context.Context, accountID string) (name, org string, err error) {
	if err := checkIDs("read account "+accountID, accountID); err != nil {
		return "", "", err
	}
	var p accounts.AccountGetParams
	p.AccountID.Value, p.AccountID.Present = accountID, true
	acct, err := c.accts.Get(ctx, p)
	if err != nil {
		return "", "", c.wrap("read account "+accountID, err)
	}
	return acct.Name, strings.Clone(acct.ManagedBy.ParentOrgID), nil
}

// Owner returns the email of the user the token belongs to, from GET /user.
// A scoped token that may not read it has no owner to protect: that gives
// "" and no error.
func (c *Client) Owner(ctx context.Context) (string, error) {
	u, err := c.users.Get(ctx)
	if err != nil {
		werr := c.wrap("read the token's user", err)
		var ae *APIError
		if errors.As(werr, &ae) && ae.Auth() {
			return "", nil
		}
		return "", werr
	}
	return strings.ToLower(u.Email), nil
}

// Key identifies credentials without holding them: a hash, for sharing a
// Limiter between clients of the same user.
func (c Credentials) Key() string {
	h := sha256.Sum256([]byte(c.Token + "\x00" + c.APIKey + "\x00" + c.Email))
	return hex.EncodeToString(h[:8])
}
