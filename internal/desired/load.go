package desired

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/mail"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cfaccess/reconciler/internal/suggest"
)

// MaxFileSize is the largest declaration file accepted, in bytes.
const MaxFileSize = 1 << 20

// File is the content of one declaration file. Path is slash-separated and
// relative to the repository root; it is what positions name.
type File struct {
	Path string
	Data []byte
}

// Options tune loading.
type Options struct {
	// Roles, when set, is Cloudflare's role catalogue: an inherited name
	// outside it gets a warning with the closest names, a former name a
	// warning with the current one, and a role granted on a kind of
	// resource its scope does not fit an error (Repo.CheckScopes). The
	// account itself is the authority, at plan time.
	Roles Catalogue
	// StrictRoles makes a Cloudflare role name the catalogue does not know
	// an error instead of a warning (a typo would otherwise fail the
	// account at every reconcile).
	StrictRoles bool
	// UnicodeEmails accepts emails with characters outside ASCII (never
	// invisible or direction-changing ones); plans then flag lookalikes.
	UnicodeEmails bool
	// MaxBindings, when positive, bounds the bindings the repository may
	// make (members × Cloudflare roles × resources, over every grant):
	// past it the repository is refused at the grant that multiplies most,
	// rather than exhausting memory.
	MaxBindings int
}

var (
	topKeys      = []string{"version", "providers", "roles", "groups", "grants"}
	providerKeys = []string{"name", "description", "provider", "enabled", "config", "reconcile"}
	configKeys   = []string{"account_id", "api_token_env", "organization_id"}
	reconKeys    = []string{"prune", "protected", "max_removals", "prune_user_groups", "scim"}
	roleKeys     = []string{"name", "description", "providers", "inherits", "resources", "enabled", "max_duration", "break_glass", "authenticators", "workflows", "scopes"}
	breakKeys    = []string{"max_duration"}
	resKeys      = []string{"allow"}
	groupKeys    = []string{"name", "description", "members", "cloudflare_user_group"}
	grantKeys    = []string{"users", "groups", "roles", "reason", "not_before", "expires", "review_after", "break_glass"}

	// credentialKeys are refused wherever they appear under config.
	credentialKeys = []string{"api_token", "api_key", "email", "token", "api_email", "password", "secret"}

	idPattern     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	envVarPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// KnownKeys lists, per object kind, the keys the loader accepts; the JSON
// Schema must agree with it (a test checks).
func KnownKeys() map[string][]string {
	return map[string][]string{
		"document": topKeys, "provider": providerKeys, "config": configKeys,
		"reconcile": reconKeys, "role": roleKeys, "resources": resKeys,
		"group": groupKeys, "grant": grantKeys,
	}
}

// loader accumulates a repository across files.
type loader struct {
	opts  Options
	repo  *Repo
	diags Diagnostics
	// The references as written, with their positions, resolved once
	// every file is read.
	roleProviders map[string][]item
	roleInherits  map[string][]item
	grantRefs     []grantRef
}

type grantRef struct {
	grant  *Grant
	roles  []item
	groups []item
}

// Load parses and validates the declaration files, in the order given, into
// a repository. It returns every problem found at once; the repository is
// nil when any diagnostic is an error.
func Load(files []File, opts Options) (*Repo, Diagnostics) {
	l := &loader{
		opts: opts,
		repo: &Repo{
			Providers: map[string]*Provider{},
			Roles:     map[string]*Role{},
			Groups:    map[string]*Group{},
		},
		roleProviders: map[string][]item{},
		roleInherits:  map[string][]item{},
	}
	for _, f := range files {
		l.repo.Files = append(l.repo.Files, f.Path)
		l.file(f)
	}
	l.crossCheck()
	if l.opts.Roles != nil {
		l.diags = append(l.diags, l.repo.CheckScopes(l.opts.Roles, "")...)
	}
	if l.opts.MaxBindings > 0 && len(l.diags.Errors()) == 0 {
		l.checkBindings()
	}
	l.diags.Sort()
	if len(l.diags.Errors()) > 0 {
		return nil, l.diags
	}
	return l.repo, l.diags
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (l *loader) file(f File) {
	p := &fileParser{file: f.Path, diags: &l.diags, unicodeEmails: l.opts.UnicodeEmails}
	if len(f.Data) > MaxFileSize {
		p.errorf(nil, "file is larger than %d bytes (1 MiB): split it into several files", MaxFileSize)
		return
	}
	defer func() {
		// The YAML parser is third-party code fed untrusted input: a panic
		// there becomes an error on this file, not a crash.
		if r := recover(); r != nil {
			p.errorf(nil, "invalid YAML: the parser failed on this file")
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(f.Data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			msg := err.Error()
			line := 0
			if m := yamlLine.FindStringSubmatch(msg); m != nil {
				line, _ = strconv.Atoi(m[1])
				msg = m[2]
				// The YAML parser (unlike its scanner) counts lines from 0.
				if strings.HasPrefix(msg, "did not find expected") {
					line++
				}
			} else {
				msg = strings.TrimPrefix(msg, "yaml: ")
			}
			l.diags = append(l.diags, Diagnostic{Pos: Pos{File: f.Path, Line: line}, Severity: Error, Message: "invalid YAML: " + msg})
			return
		}
		if len(doc.Content) == 0 {
			continue
		}
		l.document(p, doc.Content[0])
		if p.aliasBomb {
			return
		}
	}
}

func (l *loader) document(p *fileParser, n *yaml.Node) {
	pairs, ok := p.mapping(n, "a document")
	if !ok {
		return
	}
	if foreign := foreignDocument(pairs); foreign != "" {
		// Not a declaration at all: one error for the document, not one
		// per key, and the way out.
		p.errorf(n, "not a cfaccess declaration (%s): give --path the directory that holds the declarations, or move this file out of it", foreign)
		return
	}
	for _, pr := range pairs {
		switch pr.key {
		case "version":
			l.version(p, pr.value)
		case "providers":
			l.objects(p, pr.value, "providers", l.provider)
		case "roles":
			l.objects(p, pr.value, "roles", l.role)
		case "groups":
			l.objects(p, pr.value, "groups", l.group)
		case "grants":
			l.grants(p, pr.value)
		default:
			p.unknownKey(pr, "a document", topKeys)
		}
	}
}

// foreignDocument names what a document with none of the declarations'
// keys looks like when it is plainly something else: a Kubernetes object,
// a Helm chart, a CI workflow ("" otherwise).
func foreignDocument(pairs []pair) string {
	keys := map[string]bool{}
	for _, pr := range pairs {
		if slices.Contains(topKeys, pr.key) {
			return ""
		}
		keys[pr.key] = true
	}
	switch {
	case keys["apiVersion"] && keys["kind"]:
		return "apiVersion and kind: a Kubernetes object"
	case keys["on"] && keys["jobs"], keys["jobs"] && keys["name"]:
		return "jobs: a CI workflow"
	case keys["stages"] || keys["image"] && keys["script"]:
		return "a CI configuration"
	case keys["apiVersion"] && keys["name"] && keys["version"], keys["dependencies"] && keys["apiVersion"]:
		return "a Helm chart"
	}
	// Anything else is read as a declaration with mistakes: a typo gets
	// its "did you mean".
	return ""
}

func (l *loader) version(p *fileParser, n *yaml.Node) {
	v, ok := p.str(n, "version")
	if !ok {
		return
	}
	switch v {
	case "1", "1.0":
	default:
		p.errorf(n, "version %q is not supported: this reconciler reads version 1", v)
	}
}

// objects walks a map of id -> object, checking ids.
func (l *loader) objects(p *fileParser, n *yaml.Node, what string, each func(p *fileParser, id string, idNode, body *yaml.Node)) {
	pairs, ok := p.mapping(n, what)
	if !ok {
		return
	}
	for _, pr := range pairs {
		if !idPattern.MatchString(pr.key) || len(pr.key) > 128 {
			p.errorf(pr.keyN, "%s id %q: use letters, digits, '-', '_' and '.', starting with a letter or digit", strings.TrimSuffix(what, "s"), pr.key)
			continue
		}
		each(p, pr.key, pr.keyN, pr.value)
	}
}

func (l *loader) provider(p *fileParser, id string, idNode, body *yaml.Node) {
	what := fmt.Sprintf("provider %q", id)
	pv := &Provider{ID: id, Enabled: true, Prune: true, MaxRemovals: 5, Pos: p.pos(idNode)}
	pairs, ok := p.mapping(body, what)
	if !ok {
		return
	}
	kindSeen, configSeen := false, false
	for _, pr := range pairs {
		switch pr.key {
		case "name":
			pv.Name, _ = p.str(pr.value, what+": name")
		case "description":
			pv.Description, _ = p.str(pr.value, what+": description")
		case "provider":
			kindSeen = true
			if kind, ok := p.str(pr.value, what+": provider"); ok && kind != "cloudflare" {
				p.errorf(pr.value, "%s: provider %q is not supported: the only kind is \"cloudflare\"", what, kind)
			}
		case "enabled":
			pv.Enabled, _ = p.boolean(pr.value, what+": enabled")
		case "config":
			configSeen = true
			l.providerConfig(p, pv, pr.value, what)
		case "reconcile":
			l.providerReconcile(p, pv, pr.value, what)
		default:
			p.unknownKey(pr, what, providerKeys)
		}
	}
	if !kindSeen {
		p.errorf(idNode, "%s: provider: required (provider: cloudflare)", what)
	}
	if !configSeen {
		p.errorf(idNode, "%s: config.account_id: required", what)
	}
	define(p, l.repo.Providers, id, idNode, what, pv)
}

func (l *loader) providerConfig(p *fileParser, pv *Provider, n *yaml.Node, what string) {
	pairs, ok := p.mapping(n, what+": config")
	if !ok {
		return
	}
	accountSeen := false
	for _, pr := range pairs {
		switch {
		case pr.key == "account_id":
			accountSeen = true
			id, ok := p.str(pr.value, what+": config.account_id")
			if ok && !isHexID(id) {
				p.errorf(pr.value, "%s: config.account_id %q is not a Cloudflare account id (32 hexadecimal characters, from the dashboard URL)", what, id)
				continue
			}
			pv.AccountID = id
		case pr.key == "organization_id":
			id, ok := p.str(pr.value, what+": config.organization_id")
			if ok && !isHexID(id) {
				p.errorf(pr.value, "%s: config.organization_id %q is not a Cloudflare organization id (32 hexadecimal characters)", what, id)
				continue
			}
			pv.OrganizationID = id
		case pr.key == "api_token_env":
			env, ok := p.str(pr.value, what+": config.api_token_env")
			if !ok {
				continue
			}
			if !envVarPattern.MatchString(env) || looksLikeSecret(env) {
				// Never echo the value: it may be the token itself.
				p.errorf(pr.value, "%s: config.api_token_env must name an environment variable (such as CF_TOKEN_PROD), not hold a token", what)
				continue
			}
			pv.APITokenEnv = env
		case slices.Contains(credentialKeys, pr.key):
			// Never echo the value.
			p.errorf(pr.keyN, "%s: config.%s: credentials are never read from the repository; remove it (and rotate it: it is in Git history) and set CLOUDFLARE_API_TOKEN, config.api_token_env or --cloudflare-token-file instead", what, pr.key)
		default:
			p.unknownKey(pr, what+" config", configKeys)
		}
	}
	if !accountSeen {
		p.errorf(n, "%s: config.account_id: required", what)
	}
}

// looksLikeSecret reports whether s looks like a token rather than a name:
// long, and mixing lower case with digits.
func looksLikeSecret(s string) bool {
	if len(s) < 32 {
		return false
	}
	lower, digit := false, false
	for _, c := range s {
		lower = lower || 'a' <= c && c <= 'z'
		digit = digit || '0' <= c && c <= '9'
	}
	return lower && digit
}

func (l *loader) providerReconcile(p *fileParser, pv *Provider, n *yaml.Node, what string) {
	pairs, ok := p.mapping(n, what+": reconcile")
	if !ok {
		return
	}
	for _, pr := range pairs {
		switch pr.key {
		case "prune":
			pv.Prune, _ = p.boolean(pr.value, what+": reconcile.prune")
		case "prune_user_groups":
			pv.PruneUserGroups, _ = p.boolean(pr.value, what+": reconcile.prune_user_groups")
		case "scim":
			pv.SCIM, _ = p.boolean(pr.value, what+": reconcile.scim")
		case "protected":
			items, _ := p.list(pr.value, what+": reconcile.protected")
			pv.Protected = p.emails(items)
		case "max_removals":
			v, ok := p.integer(pr.value, what+": reconcile.max_removals")
			if ok && v < 0 {
				p.errorf(pr.value, "%s: reconcile.max_removals must be 0 or more", what)
				continue
			}
			if ok {
				pv.MaxRemovals = v
			}
		default:
			p.unknownKey(pr, what+" reconcile", reconKeys)
		}
	}
}

func (l *loader) role(p *fileParser, id string, idNode, body *yaml.Node) {
	what := fmt.Sprintf("role %q", id)
	r := &Role{ID: id, Enabled: true, Pos: p.pos(idNode)}
	pairs, ok := p.mapping(body, what)
	if !ok {
		return
	}
	var resourcesSeen bool
	for _, pr := range pairs {
		switch pr.key {
		case "name":
			r.Name, _ = p.str(pr.value, what+": name")
		case "description":
			r.Description, _ = p.str(pr.value, what+": description")
		case "enabled":
			r.Enabled, _ = p.boolean(pr.value, what+": enabled")
		case "providers":
			items, _ := p.list(pr.value, what+": providers")
			l.roleProviders[id] = items
			for _, it := range items {
				r.Providers = append(r.Providers, it.value)
			}
		case "inherits":
			items, _ := p.list(pr.value, what+": inherits")
			l.roleInherits[id] = items
			for _, it := range items {
				r.Inherits = append(r.Inherits, it.value)
				r.InheritsAt = append(r.InheritsAt, it.pos)
			}
		case "resources":
			resourcesSeen = true
			l.roleResources(p, r, pr.value, what)
		case "max_duration":
			r.MaxDuration, _ = p.duration(pr.value, what+": max_duration")
		case "break_glass":
			r.BreakGlass = l.breakGlass(p, pr.value, what+": break_glass")
		case "authenticators", "workflows", "scopes":
			p.warnf(pr.keyN, "%s: %s is used only by the thand agent and is ignored here", what, pr.key)
		default:
			p.unknownKey(pr, what, roleKeys)
		}
	}
	if len(r.Providers) == 0 {
		p.errorf(idNode, "%s: providers: name at least one provider", what)
	}
	if len(r.Inherits) == 0 {
		p.errorf(idNode, "%s: inherits: name at least one Cloudflare role (such as \"Administrator Read Only\")", what)
	}
	if !resourcesSeen {
		p.errorf(idNode, "%s: resources.allow: required (\"account:*\" for the whole account, \"zone:<name>\" for one zone)", what)
	}
	define(p, l.repo.Roles, id, idNode, what, r)
}

// breakGlass reads a role's break_glass: {max_duration: 1h}.
func (l *loader) breakGlass(p *fileParser, n *yaml.Node, what string) *BreakGlass {
	pairs, ok := p.mapping(n, what)
	if !ok {
		return nil
	}
	bg := &BreakGlass{}
	for _, pr := range pairs {
		switch pr.key {
		case "max_duration":
			bg.MaxDuration, _ = p.duration(pr.value, what+".max_duration")
		default:
			p.unknownKey(pr, what, breakKeys)
		}
	}
	if bg.MaxDuration == 0 {
		p.errorf(n, "%s: max_duration: required (break-glass access always ends: 1h, say)", what)
		return nil
	}
	return bg
}

func (l *loader) roleResources(p *fileParser, r *Role, n *yaml.Node, what string) {
	pairs, ok := p.mapping(n, what+": resources")
	if !ok {
		return
	}
	allowSeen := false
	for _, pr := range pairs {
		switch pr.key {
		case "allow":
			allowSeen = true
			items, _ := p.list(pr.value, what+": resources.allow")
			if len(items) == 0 {
				p.errorf(pr.value, "%s: resources.allow must not be empty", what)
			}
			for _, it := range items {
				res, err := ParseResource(it.value)
				if err != nil {
					p.errorf(it.node, "%s: %v", what, err)
					continue
				}
				if !slices.Contains(r.Resources, res) {
					r.Resources = append(r.Resources, res)
					r.ResourcesAt = append(r.ResourcesAt, it.pos)
				}
			}
		case "deny":
			p.errorf(pr.keyN, "%s: resources.deny is not supported: Cloudflare deny policies are not managed; narrow resources.allow instead", what)
		default:
			p.unknownKey(pr, what+" resources", resKeys)
		}
	}
	if !allowSeen {
		p.errorf(n, "%s: resources.allow: required", what)
	}
}

func (l *loader) group(p *fileParser, id string, idNode, body *yaml.Node) {
	what := fmt.Sprintf("group %q", id)
	g := &Group{ID: id, Pos: p.pos(idNode)}
	pairs, ok := p.mapping(body, what)
	if !ok {
		return
	}
	var userGroupNode *yaml.Node
	for _, pr := range pairs {
		switch pr.key {
		case "name":
			g.Name, _ = p.str(pr.value, what+": name")
		case "description":
			p.str(pr.value, what+": "+pr.key)
		case "members":
			items, _ := p.list(pr.value, what+": members")
			g.Members = p.emails(items)
		case "cloudflare_user_group":
			g.UserGroup, _ = p.boolean(pr.value, what+": cloudflare_user_group")
			userGroupNode = pr.value
		default:
			p.unknownKey(pr, what, groupKeys)
		}
	}
	// Cloudflare's rule for user group names (developers.cloudflare.com
	// fundamentals/manage-members/user-groups): they cannot start with
	// "CF", kept for the groups Cloudflare makes.
	if g.UserGroup && strings.HasPrefix(strings.ToUpper(g.CloudflareName()), "CF") {
		p.errorf(userGroupNode, "%s: the Cloudflare user group would be named %q, and Cloudflare refuses names starting with \"CF\": set name", what, g.CloudflareName())
	}
	define(p, l.repo.Groups, id, idNode, what, g)
}

func (l *loader) grants(p *fileParser, n *yaml.Node) {
	n = p.resolve(n)
	if n == nil || isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "grants must be a list, not %s", kindName(n))
		return
	}
	for _, e := range n.Content {
		l.grant(p, e)
	}
}

func (l *loader) grant(p *fileParser, n *yaml.Node) {
	const what = "grant"
	g := &Grant{Pos: p.pos(n)}
	pairs, ok := p.mapping(n, what)
	if !ok {
		return
	}
	ref := grantRef{grant: g}
	var nbNode, exNode, raNode *yaml.Node
	for _, pr := range pairs {
		switch pr.key {
		case "users":
			items, _ := p.list(pr.value, "grant: users")
			g.Users = p.emails(items)
		case "groups":
			ref.groups, _ = p.list(pr.value, "grant: groups")
			for _, it := range ref.groups {
				g.Groups = append(g.Groups, it.value)
			}
		case "roles":
			ref.roles, _ = p.list(pr.value, "grant: roles")
			for _, it := range ref.roles {
				g.Roles = append(g.Roles, it.value)
			}
		case "reason":
			g.Reason, _ = p.str(pr.value, "grant: reason")
		case "not_before":
			g.NotBefore, _ = p.instant(pr.value, "not_before")
			nbNode = pr.value
		case "expires":
			g.Expires, _ = p.instant(pr.value, "expires")
			exNode = pr.value
		case "review_after":
			g.ReviewAfter, _ = p.instant(pr.value, "review_after")
			raNode = pr.value
		case "break_glass":
			g.BreakGlass, _ = p.boolean(pr.value, "grant: break_glass")
		default:
			p.unknownKey(pr, what, grantKeys)
		}
	}
	if len(g.Roles) == 0 {
		p.errorf(n, "grant: roles: name at least one role")
	}
	if len(g.Users) == 0 && len(g.Groups) == 0 {
		p.errorf(n, "grant: name at least one user or group")
	}
	if !g.NotBefore.IsZero() && !g.Expires.IsZero() && !g.Expires.After(g.NotBefore) {
		p.errorf(exNode, "grant: expires (%s) must be after not_before (%s, line %d)",
			g.Expires.Format(time.RFC3339), g.NotBefore.Format(time.RFC3339), nbNode.Line)
	}
	if !g.ReviewAfter.IsZero() && !g.Expires.IsZero() && !g.ReviewAfter.Before(g.Expires) {
		// Not an error: the grant simply ends before anyone reviews it.
		p.warnf(raNode, "grant: review_after (%s) is not before expires (%s, line %d): the grant ends before its review; remove review_after, or review earlier",
			g.ReviewAfter.Format(time.RFC3339), g.Expires.Format(time.RFC3339), exNode.Line)
	}
	l.repo.Grants = append(l.repo.Grants, g)
	l.grantRefs = append(l.grantRefs, ref)
}

// define records an object under its id, or reports that the id is taken,
// naming both places.
func define[T interface{ position() Pos }](p *fileParser, objs map[string]T, id string, idNode *yaml.Node, what string, v T) {
	if prev, dup := objs[id]; dup {
		p.errorf(idNode, "%s already defined at %s", what, prev.position())
		return
	}
	objs[id] = v
}

// instant parses an RFC 3339 time, or a date meaning 00:00 UTC that day.
func (p *fileParser) instant(n *yaml.Node, what string) (time.Time, bool) {
	s, ok := p.str(n, "grant: "+what)
	if !ok || s == "" {
		if ok {
			p.errorf(n, "grant: %s is empty: give a time such as 2026-12-24T18:00:00Z, or remove the key", what)
		}
		return time.Time{}, false
	}
	t, err := ParseInstant(s)
	if err != nil {
		p.errorf(n, "grant: %s %q is not an RFC 3339 time (2026-12-24T18:00:00Z) or a date (2026-12-24)", what, s)
		return time.Time{}, false
	}
	return t, true
}

// duration reads a positive duration such as 8h, 30m or 1h30m.
func (p *fileParser) duration(n *yaml.Node, what string) (time.Duration, bool) {
	v, ok := p.str(n, what)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		p.errorf(n, "%s: %q is not a duration: give one such as 8h, 30m or 1h30m", what, v)
		return 0, false
	}
	return d, true
}

// ParseInstant parses an RFC 3339 time, or a date (YYYY-MM-DD) meaning
// 00:00 UTC of that day. The result is in UTC.
func ParseInstant(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// emails normalises a list of emails to lower case, reporting malformed
// ones and those that could pass for another address, and dropping
// duplicates (in linear time: a group may list thousands).
func (p *fileParser) emails(items []item) []string {
	var out []string
	seen := make(map[string]bool, len(items))
	for _, it := range items {
		if problem := emailProblem(it.value, p.unicodeEmails); problem != "" {
			p.errorf(it.node, "%+q %s", it.value, problem)
			continue
		}
		e, err := NormalizeEmail(it.value)
		if err != nil {
			p.errorf(it.node, "%v", err)
			continue
		}
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	return out
}

// NormalizeEmail checks that s is a bare email address and returns it in
// lower case.
func NormalizeEmail(s string) (string, error) {
	a, err := mail.ParseAddress(s)
	at := strings.LastIndexByte(s, '@')
	if err != nil || a.Address != s || a.Name != "" || at < 1 || !strings.Contains(s[at+1:], ".") || len(s) > 254 {
		return "", fmt.Errorf("%q is not a valid email address (write a bare address such as alice@example.com)", s)
	}
	return strings.ToLower(s), nil
}

// crossCheck resolves references between objects once every file is read.
func (l *loader) crossCheck() {
	providerIDs := slices.Sorted(maps.Keys(l.repo.Providers))
	roleIDs := slices.Sorted(maps.Keys(l.repo.Roles))
	groupIDs := slices.Sorted(maps.Keys(l.repo.Groups))

	// Mirrored groups are found in Cloudflare by name: two of one name
	// would be one user group holding both.
	userGroups := map[string]*Group{}
	for _, id := range groupIDs {
		g := l.repo.Groups[id]
		if !g.UserGroup {
			continue
		}
		key := strings.ToLower(g.CloudflareName())
		if other, dup := userGroups[key]; dup {
			l.errorAt(g.Pos, "group %q mirrors the Cloudflare user group %q, as group %q does (%s): give each a name of its own", id, g.CloudflareName(), other.ID, other.Pos)
			continue
		}
		userGroups[key] = g
	}

	accountIDs := map[string]*Provider{}
	for _, id := range providerIDs {
		pv := l.repo.Providers[id]
		if pv.AccountID == "" {
			continue
		}
		if other, dup := accountIDs[pv.AccountID]; dup {
			l.errorAt(pv.Pos, "provider %q manages the same account as provider %q (%s): one account, one provider", id, other.ID, other.Pos)
			continue
		}
		accountIDs[pv.AccountID] = pv
	}
	for _, id := range roleIDs {
		for _, it := range l.roleProviders[id] {
			if _, ok := l.repo.Providers[it.value]; !ok {
				l.errorAt(it.pos, "role %q: provider %q not defined%s", id, it.value, suggest.Hint(it.value, providerIDs))
			}
		}
	}
	for _, id := range roleIDs {
		r := l.repo.Roles[id]
		names, err := l.expand(id, nil)
		if err != nil {
			l.errorAt(r.Pos, "%v", err)
			continue
		}
		r.CloudflareRoles = names
	}
	for _, ref := range l.grantRefs {
		for _, it := range ref.roles {
			r, ok := l.repo.Roles[it.value]
			if !ok {
				l.errorAt(it.pos, "grant: role %q not defined%s", it.value, suggest.Hint(it.value, roleIDs))
				continue
			}
			l.checkLimits(ref.grant, r, it.pos)
		}
		for _, it := range ref.groups {
			if _, ok := l.repo.Groups[it.value]; !ok {
				l.errorAt(it.pos, "grant: group %q not defined%s", it.value, suggest.Hint(it.value, groupIDs))
			}
		}
	}
}

// checkLimits checks what a grant must be to give a role with limits,
// whatever the time: an expiry when the role bounds its grants' length,
// and break-glass only where the role allows it, always with an expiry.
// How long a grant with not_before lasts is checked here too; one without
// counts from the time it is checked (Repo.LimitDiagnostics).
func (l *loader) checkLimits(g *Grant, r *Role, at Pos) {
	switch {
	case g.BreakGlass && r.BreakGlass == nil:
		l.errorAt(at, "grant: break_glass: role %q does not allow break-glass grants (give the role break_glass: {max_duration: …}, or drop break_glass and have the grant reviewed)", r.ID)
	case g.BreakGlass && g.Expires.IsZero():
		l.errorAt(at, "grant: break_glass: a break-glass grant of role %q needs expires, at most %s after it starts", r.ID, formatDuration(r.BreakGlass.MaxDuration))
	case r.MaxDuration > 0 && g.Expires.IsZero():
		l.errorAt(at, "grant: role %q has max_duration %s: a standing grant of it is refused; give expires, at most %s after not_before (or after it is first applied)", r.ID, formatDuration(r.MaxDuration), formatDuration(r.MaxDuration))
	case !g.NotBefore.IsZero():
		// Its length does not depend on the time: checked once, here.
		for _, d := range g.durationDiagnostics(map[string]*Role{r.ID: r}, time.Time{}) {
			l.errorAt(d.Pos, "%s", d.Message)
		}
	}
}

// expand returns the Cloudflare role names a role grants: its inherits,
// with the ids of other repository roles replaced by their own names.
func (l *loader) expand(id string, path []string) ([]string, error) {
	if slices.Contains(path, id) {
		return nil, fmt.Errorf("role %q inherits itself: %s", path[0], strings.Join(append(path, id), " -> "))
	}
	r := l.repo.Roles[id]
	var out []string
	for _, it := range l.roleInherits[id] {
		name := it.value
		if _, isRole := l.repo.Roles[name]; isRole {
			sub, err := l.expand(name, append(path, id))
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
			continue
		}
		if len(path) == 0 {
			l.checkRoleName(r, it)
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return slices.Compact(out), nil
}

// checkRoleName warns about a Cloudflare role name that is not among the
// known ones. The account has the last word, at plan time.
func (l *loader) checkRoleName(r *Role, it item) {
	pos := it.pos
	cat := l.opts.Roles
	if cat == nil {
		return
	}
	if now := cat.Renamed(it.value); now != "" {
		l.diags = append(l.diags, Diagnostic{Pos: pos, Severity: Warning,
			Message: fmt.Sprintf("role %q: Cloudflare renamed %q to %q", r.ID, it.value, now)})
		return
	}
	if cat.Scope(it.value) != ScopeUnknown {
		return
	}
	d := Diagnostic{Pos: pos, Severity: Warning,
		Message: fmt.Sprintf("role %q: %q is neither a role of this repository nor a known Cloudflare role%s", r.ID, it.value, suggest.Hint(it.value, cat.Names()))}
	if l.opts.StrictRoles {
		d.Severity = Error
		d.Message += "; a role Cloudflare added after this release is accepted with --allow-unknown-roles"
	}
	l.diags = append(l.diags, d)
}

// checkBindings refuses a repository that makes more than MaxBindings
// bindings, at the grant that makes the most.
func (l *loader) checkBindings() {
	total, worst, worstN := 0, (*Grant)(nil), 0
	for _, g := range l.repo.Grants {
		n := l.repo.grantBindings(g)
		total += n
		if n > worstN {
			worst, worstN = g, n
		}
	}
	if total <= l.opts.MaxBindings {
		return
	}
	l.errorAt(worst.Pos, "the repository makes %d bindings (members × Cloudflare roles × resources), more than %d; this grant makes %d of them: split it, or narrow its roles' resources", total, l.opts.MaxBindings, worstN)
}

func (l *loader) errorAt(pos Pos, format string, args ...any) {
	l.diags = append(l.diags, Diagnostic{Pos: pos, Severity: Error, Message: fmt.Sprintf(format, args...)})
}
