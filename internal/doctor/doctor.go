package doctor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cfaccess/reconciler/internal/cfroles"
	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/desired"
)

// Mark is a check's result.
type Mark string

// The marks: fine; worth knowing before the first apply; in the way of
// cfaccess working (a non-zero exit).
const (
	OK   Mark = "ok"
	Warn Mark = "warn"
	Fail Mark = "fail"
)

// Symbol is how the terminal shows a mark.
func (m Mark) Symbol() string {
	switch m {
	case OK:
		return "✓"
	case Warn:
		return "!"
	}
	return "✗"
}

// Finding is one check's result: what was found, and the fix.
type Finding struct {
	// Account is the provider id the check is about ("" for the
	// repository and the traffic as a whole).
	Account string `json:"account,omitempty"`
	Check   string `json:"check"`
	Mark    Mark   `json:"result"`
	Detail  string `json:"detail"`
	Fix     string `json:"fix,omitempty"`
}

// Failed reports whether any finding is a failure.
func Failed(fs []Finding) bool {
	return slices.ContainsFunc(fs, func(f Finding) bool { return f.Mark == Fail })
}

// Target is an account to check, as a provider of the repository
// declares it.
type Target struct {
	Provider, AccountID string
	// Name is the provider's label in the repository ("" for none).
	Name           string
	OrganizationID string
	// Client reads the account; ClientErr says why there is none (the
	// credentials were not found).
	Client    *cloudflare.Client
	ClientErr error
	// Repo, when set, has the declarations whose roles and zones must
	// exist on the account.
	Repo *desired.Repo
}

// CheckAccount checks one account, reading only, and stops at the first
// failure later checks depend on.
func CheckAccount(ctx context.Context, t Target, now time.Time) []Finding {
	c := &checker{t: t}
	if t.ClientErr != nil {
		c.add("credentials", Fail, t.ClientErr.Error(), "set the token's variable (the provider's api_token_env, or CLOUDFLARE_API_TOKEN), or give --cloudflare-token-file")
		return c.out
	}
	if !c.credentials(ctx, now) || !c.account(ctx) {
		return c.out
	}
	acct, err := t.Client.ReadAccount(ctx, t.AccountID, cloudflare.ReadOptions{AllZones: true, OrganizationID: t.OrganizationID})
	if err != nil {
		c.add("members", Fail, "the account could not be read: "+err.Error(),
			"give the token Account Settings Read (Write, to apply) and Zone Read; if the answer is called untrustworthy, run doctor --record and send the recording with a bug report")
		return c.out
	}
	c.members(acct)
	c.permissionGroups(acct)
	c.catalogue(acct)
	c.declarations(acct)
	c.resourceGroups(ctx)
	c.userGroups(acct)
	c.auditLog(ctx, now)
	return c.out
}

type checker struct {
	t   Target
	out []Finding
}

func (c *checker) add(check string, m Mark, detail, fix string) {
	if m == OK {
		fix = ""
	}
	c.out = append(c.out, Finding{Account: c.t.Provider, Check: check, Mark: m, Detail: detail, Fix: fix})
}

// expiringSoon is how near a token's expiry is worth a warning.
const expiringSoon = 30 * 24 * time.Hour

// writeFix says what the token needs to write members, which no read can
// tell: Account Settings Write (or SCIM Provisioning) on the account, by
// the 2026 operations' x-api-token-group of POST, PUT and DELETE
// /accounts/{account_id}/members; their GETs accept Account Settings Read.
const writeFix = "give the token Account Settings Write on this account: reads pass with Account Settings Read, so no read can tell; the first apply reads back every write and stops at a refusal"

func (c *checker) credentials(ctx context.Context, now time.Time) bool {
	tok, err := c.t.Client.VerifyToken(ctx, c.t.AccountID)
	switch {
	case err != nil:
		c.add("credentials", Fail, "Cloudflare did not verify the token: "+err.Error(),
			"check the token's variable holds a current API token (not a Global API key in CLOUDFLARE_API_TOKEN); create one in the dashboard under My Profile, API Tokens")
		return false
	case tok.ID == "":
		c.add("credentials", Warn, "the Global API key: it can do anything its user can, in every account", "use an API token scoped to this account (Account Settings Write, Zone Read, Account Settings Read for the audit log)")
	case tok.Status != "active":
		c.add("credentials", Fail, fmt.Sprintf("API token %s is %s", tok.ID, tok.Status), "enable the token, or create a new one, and give it to cfaccess")
		return false
	case !tok.ExpiresOn.IsZero() && tok.ExpiresOn.Sub(now) < expiringSoon:
		c.add("credentials", Warn, fmt.Sprintf("API token %s is active, and expires %s", tok.ID, tok.ExpiresOn.UTC().Format(time.RFC3339)),
			"roll the token before it expires: cfaccess stops at the first refused request")
	default:
		expires := "never expires"
		if !tok.ExpiresOn.IsZero() {
			expires = "expires " + tok.ExpiresOn.UTC().Format(time.RFC3339)
		}
		c.add("credentials", OK, fmt.Sprintf("API token %s is active and %s", tok.ID, expires), "")
	}
	c.add("write members", Warn, "not checked: the doctor never writes", writeFix)
	return true
}

func (c *checker) account(ctx context.Context) bool {
	name, err := c.t.Client.Verify(ctx, c.t.AccountID)
	switch {
	case err != nil:
		c.add("account", Fail, err.Error(), "check the provider's account_id (the dashboard's URL has it), and that the token covers that account")
		return false
	}
	label := ""
	if c.t.Name != "" && !strings.EqualFold(c.t.Name, name) {
		label = fmt.Sprintf(" (the repository's label: %q)", c.t.Name)
	}
	c.add("account", OK, fmt.Sprintf("account %s answers as %q%s", c.t.AccountID, name, label), "")
	return true
}

// listed names at most a few of many.
func listed(names []string) string {
	const most = 8
	if len(names) <= most {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:most], ", ") + fmt.Sprintf(" and %d more", len(names)-most)
}

func (c *checker) members(acct *cloudflare.Account) {
	var pending int
	var odd, legacy []string
	for _, m := range acct.Members {
		if m.Status == "pending" {
			pending++
		}
		switch {
		case len(m.Unknown) > 0 || m.Denies > 0:
			odd = append(odd, m.Email)
		case m.Legacy:
			legacy = append(legacy, m.Email)
		}
	}
	detail := fmt.Sprintf("%d members (%d pending), each with an id, an email and access cfaccess reads", len(acct.Members), pending)
	switch {
	case len(odd) > 0:
		c.add("members", Warn, fmt.Sprintf("%d members; %d with deny policies or scopes cfaccess cannot express: %s", len(acct.Members), len(odd), listed(odd)),
			"cfaccess plans to replace their policies with what the repository declares: declare them, or list them under reconcile.protected")
	case len(legacy) > 0:
		c.add("members", Warn, fmt.Sprintf("%d members; %d described by legacy roles only: %s", len(acct.Members), len(legacy), listed(legacy)),
			"nothing to do: cfaccess reads legacy roles as access to the whole account, and writes policies at its first change to them")
	default:
		c.add("members", OK, detail, "")
	}
}

func (c *checker) permissionGroups(acct *cloudflare.Account) {
	var unscoped []string
	for _, pg := range acct.PermissionGroups {
		if pg.Scope == desired.ScopeUnknown {
			unscoped = append(unscoped, pg.Name)
		}
	}
	if len(unscoped) > 0 {
		c.add("permission groups", Warn, fmt.Sprintf("%d permission groups; %d without a meta.scopes cfaccess knows: %s", len(acct.PermissionGroups), len(unscoped), listed(unscoped)),
			"cfaccess cannot tell where these roles may be granted and refuses to declare them; send a recording (--record) with a bug report")
		return
	}
	c.add("permission groups", OK, fmt.Sprintf("%d permission groups, each with its scope (meta.scopes)", len(acct.PermissionGroups)), "")
}

// catalogue compares the account's roles with the release's: roles it
// does not know, roles it knows that the account lacks, and scopes that
// differ.
func (c *checker) catalogue(acct *cloudflare.Account) {
	known := map[string]bool{}
	for _, n := range cfroles.Names() {
		known[n] = true
	}
	has := map[string]bool{}
	var unknown, moved []string
	for _, pg := range acct.PermissionGroups {
		has[pg.Name] = true
		switch release := cfroles.ScopeOf(pg.Name); {
		case !known[pg.Name]:
			unknown = append(unknown, pg.Name)
		case pg.Scope != desired.ScopeUnknown && release != pg.Scope:
			moved = append(moved, fmt.Sprintf("%s (the account: %s; this release: %s)", pg.Name, pg.Scope, release))
		}
	}
	var missing []string
	for n := range known {
		if !has[n] {
			missing = append(missing, n)
		}
	}
	slices.Sort(unknown)
	slices.Sort(missing)
	var parts []string
	if len(unknown) > 0 {
		parts = append(parts, fmt.Sprintf("%d roles this release does not know: %s", len(unknown), listed(unknown)))
	}
	if len(missing) > 0 {
		parts = append(parts, fmt.Sprintf("%d roles this release knows that the account does not list: %s", len(missing), listed(missing)))
	}
	if len(moved) > 0 {
		parts = append(parts, fmt.Sprintf("%d roles whose scope differs: %s", len(moved), listed(moved)))
	}
	if len(parts) == 0 {
		c.add("role catalogue", OK, fmt.Sprintf("the account's %d roles are this release's, with the same scopes", len(acct.PermissionGroups)), "")
		return
	}
	c.add("role catalogue", Warn, strings.Join(parts, "; "),
		"the account decides at plan time: declaring a role it lacks fails there, and a role this release does not know needs --allow-unknown-roles (a newer release may know it); send a recording (--record) so that the catalogue can follow Cloudflare")
}

// declarations checks the roles and zones the repository declares for
// the account exist on it, with the scopes declared.
func (c *checker) declarations(acct *cloudflare.Account) {
	repo := c.t.Repo
	if repo == nil {
		return
	}
	var problems []string
	for _, d := range repo.CheckScopes(acct.Catalogue(), c.t.Provider) {
		problems = append(problems, d.String())
	}
	for _, r := range repo.Roles {
		if !slices.Contains(r.Providers, c.t.Provider) {
			continue
		}
		for _, name := range r.CloudflareRoles {
			if _, err := acct.PermissionGroup(name); err != nil {
				problems = append(problems, fmt.Sprintf("%s: role %s: %v", r.Pos, r.ID, err))
			}
		}
		for _, res := range r.Resources {
			if res.Kind == desired.ZoneName && acct.ZoneIDs[res.Zone] == "" {
				problems = append(problems, fmt.Sprintf("%s: role %s names zone %s, which the account does not have", r.Pos, r.ID, res.Zone))
			}
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		problems = slices.Compact(problems)
		c.add("declarations", Fail, strings.Join(problems, "; "), "correct the roles named, or the provider's account_id; reconciler roles list shows the account's role names")
		return
	}
	c.add("declarations", OK, "every role and zone the repository declares for this account exists on it, with the scope declared", "")
}

func (c *checker) resourceGroups(ctx context.Context) {
	groups, err := c.t.Client.ResourceGroups(ctx, c.t.AccountID)
	var ae *cloudflare.APIError
	switch {
	case err != nil && errors.As(err, &ae) && (ae.Auth() || ae.Status == http.StatusNotFound):
		// Cloudflare: resource groups "may be unavailable on some plans";
		// a read tolerates that, and writes with the groups members use.
		c.add("resource groups", Warn, "not listed: "+err.Error(),
			"nothing to do if the plan has none: cfaccess then grants zones through the groups members already use, and the dashboard's own; otherwise give the token Account Settings Read")
		return
	case err != nil:
		c.add("resource groups", Fail, "could not be read: "+err.Error(), "run again; if it persists, send a recording (--record) with a bug report")
		return
	}
	var expressible int
	for _, g := range groups {
		if len(g.Resources) > 0 {
			expressible++
		}
	}
	c.add("resource groups", OK, fmt.Sprintf("%d resource groups in one unpaged list, %d of them on the account or on zones (what cfaccess writes)", len(groups), expressible), "")
}

func (c *checker) userGroups(acct *cloudflare.Account) {
	notChecked := acct.NotChecked
	for _, nc := range notChecked {
		c.add(nc.What, Warn, "not checked: "+nc.Why, "give the token the permission to read them (Account Settings Read; Organization Read for an organization), or accept that plans cannot see access given through them")
	}
	if !slices.ContainsFunc(notChecked, func(nc cloudflare.NotChecked) bool { return nc.What == "user groups" }) {
		var members int
		for _, g := range acct.UserGroups {
			members += len(g.Members)
		}
		c.add("user groups", OK, fmt.Sprintf("%d user groups with %d members in all", len(acct.UserGroups), members), "")
	}
	if c.t.OrganizationID != "" && !slices.ContainsFunc(notChecked, func(nc cloudflare.NotChecked) bool { return nc.What == "organization members" }) {
		c.add("organization members", OK, fmt.Sprintf("%d Super Administrators of organization %s", len(acct.OrgAdmins), c.t.OrganizationID), "")
	}
}

func (c *checker) auditLog(ctx context.Context, now time.Time) {
	res, err := c.t.Client.AuditLog(ctx, c.t.AccountID, cloudflare.AuditQuery{Since: now.Add(-24 * time.Hour), Before: now.Add(time.Minute), MaxPages: 2, NewestFirst: true})
	var ae *cloudflare.APIError
	switch {
	case err != nil && errors.As(err, &ae) && ae.Auth():
		c.add("audit log", Warn, "not readable with this token: "+err.Error(),
			"give the token Account Settings Read: without the audit log every reconcile reads the whole account, and nobody is named for drift")
	case err != nil:
		c.add("audit log", Warn, "could not be read: "+err.Error(),
			"cfaccess works without it (reading whole accounts, naming nobody for drift); if it persists, send a recording (--record) with a bug report")
	default:
		more := ""
		if res.Truncated {
			more = " (and more)"
		}
		c.add("audit log", OK, fmt.Sprintf("%d member and user-group entries in the last 24 hours%s, %d of other kinds", len(res.Entries), more, res.Others), "")
	}
}

// Thresholds of the traffic checks.
const (
	lowBudget = 200              // requests left in Cloudflare's window
	skewWarn  = 10 * time.Second // the clock against Cloudflare's Date
	skewFail  = 2 * time.Minute
)

// CheckTraffic checks what every answer said: the rate-limit budget left
// (the Ratelimit header), and the local clock against the Date header,
// which the audit log's watermark depends on.
func CheckTraffic(xs []Exchange) []Finding {
	if len(xs) == 0 {
		return nil // nothing was said
	}
	var out []Finding
	add := func(check string, m Mark, detail, fix string) {
		out = append(out, Finding{Check: check, Mark: m, Detail: detail, Fix: fix})
	}
	remaining, reset, seen := 0, time.Duration(0), false
	var skew time.Duration
	dated := 0
	for _, x := range xs {
		if r, t, ok := cloudflare.ParseRatelimit(x.Header["Ratelimit"]); ok {
			remaining, reset, seen = r, t, true // the last answer's
		}
		d, err := time.Parse(time.RFC1123, x.Header["Date"])
		if err != nil {
			continue
		}
		dated++
		// Date has whole seconds, written between sending and receiving.
		var off time.Duration
		switch {
		case d.Before(x.Sent.Add(-time.Second)):
			off = x.Sent.Sub(d) - time.Second
		case d.After(x.Received):
			off = -d.Sub(x.Received)
		}
		if off.Abs() > skew.Abs() {
			skew = off
		}
	}
	window := 0 // Cloudflare's quota per window, from Ratelimit-Policy
	if len(xs) > 0 {
		window, _, _ = cloudflare.ParseRatelimitPolicy(xs[len(xs)-1].Header["Ratelimit-Policy"])
	}
	others := window - remaining - len(xs) // spent in the window by something else
	switch {
	case !seen:
		add("rate limit", OK, "no Ratelimit header; cfaccess paces itself within --cloudflare-rate-limit (1,200 requests per 5 minutes)", "")
	case window > 0 && others > window/5, window == 0 && remaining < lowBudget:
		add("rate limit", Warn, fmt.Sprintf("%d requests left in Cloudflare's window (resets in %s), of which this doctor spent %d: something else spends this user's budget", remaining, reset, len(xs)),
			"find what else uses the token's user (Terraform, scripts), or lower --cloudflare-rate-limit to leave them room")
	default:
		add("rate limit", OK, fmt.Sprintf("%d requests left in Cloudflare's window (resets in %s); this doctor sent %d", remaining, reset, len(xs)), "")
	}
	ahead := "ahead of"
	if skew < 0 {
		ahead = "behind"
	}
	fix := "synchronise the clock (NTP): the audit log is read from a watermark on this clock, and JIT grants expire by it"
	switch {
	case dated == 0:
		add("clock", Warn, "no answer had a Date header to compare the clock with", fix)
	case skew.Abs() > skewFail:
		add("clock", Fail, fmt.Sprintf("this machine's clock is %s %s Cloudflare's", skew.Abs().Round(time.Second), ahead), fix)
	case skew.Abs() > skewWarn:
		add("clock", Warn, fmt.Sprintf("this machine's clock is %s %s Cloudflare's", skew.Abs().Round(time.Second), ahead), fix)
	default:
		add("clock", OK, fmt.Sprintf("within %s of Cloudflare's (Date headers of %d answers)", cmp.Or(skew.Abs().Round(time.Second), 0)+time.Second, dated), "")
	}
	return out
}
