package contract

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Difference is a known point where the real API differs from the schema.
type Difference struct {
	Name   string
	Reason string
	// Request marks a difference in what a client may send (the real
	// API takes it, the schema refuses it); the others are differences in
	// answers.
	Request bool
	// Rewrite turns a body (decoded JSON) into the schema's form for
	// this point; it reports whether it changed anything.
	Rewrite func(op string, body any) bool
}

// Differences are the known real-versus-schema differences, each exempt
// and nothing else. (Member responses need none: the 2026 member schema
// gives resource group scopes as objects, and member roles as iam_role,
// whose permissions are an object of per-area grants, as the real API
// answers.)
var Differences = []Difference{
	{
		Name: "role permissions are a map",
		Reason: "GET /roles answers roles[].permissions as a map of {read, edit} objects, like the roles of real " +
			"member responses (recorded-list-members.json) and the 2026 member schema's iam_role; its schema " +
			"(iam_collection_role_response, of which we have only the 2024 version) says iam_schemas-role, " +
			"whose permissions are an array of strings",
		Rewrite: func(op string, body any) bool {
			if op != "GET /accounts/{account_id}/roles" {
				return false
			}
			changed := false
			for _, r := range list(mapOf(body)["result"]) {
				if perms, ok := mapOf(r)["permissions"].(map[string]any); ok {
					keys := make([]any, 0, len(perms))
					for k := range perms {
						keys = append(keys, k)
					}
					mapOf(r)["permissions"] = keys
					changed = true
				}
			}
			return changed
		},
	},
	{
		Name: "a policy added by a user-group update has no id",
		Reason: "iam_update_user_group_body requires an id on every policy, the id of a policy of the group; nothing " +
			"says what id a policy the group did not have takes, and Cloudflare's own Terraform provider " +
			"(cloudflare_user_group v5.19+, acceptance test TestAccCloudflareUserGroup_UpdatePolicy) and the " +
			"user-groups docs' example send policies without one. cfaccess names the group's policies it keeps or " +
			"replaces, and sends only policies beyond the group's count without an id",
		Request: true,
		Rewrite: func(op string, body any) bool {
			if op != "PUT /accounts/{account_id}/iam/user_groups/{user_group_id}" {
				return false
			}
			changed := false
			for _, p := range list(mapOf(body)["policies"]) {
				if _, ok := mapOf(p)["id"]; !ok {
					mapOf(p)["id"] = "00000000000000000000000000000000"
					changed = true
				}
			}
			return changed
		},
	},
}

// unlistedOps are operations cfaccess uses that the schema files do not
// define; they pass unchecked here. GET /user reads the token's owner
// (SPEC §4). Organization members and the audit log are newer than the
// files: the fake's answers for them are checked against cloudflare-go
// v7.9.0's types instead (fake/*_test.go), and the requests are the SDK's
// own.
var unlistedOps = []struct{ Method, Path, Reason string }{
	{http.MethodGet, "/user", "the token owner, protected from changes (SPEC §4); not in the schema"},
	{http.MethodGet, "/organizations/*/members", "organization members (cloudflare-go v7.9.0 organizations.MemberService); not in the schema files"},
	{http.MethodGet, "/accounts/*/logs/audit", "the audit log (cloudflare-go v7.9.0 accounts.LogAuditService); not in the schema files"},
}

// unlisted reports whether req is one of unlistedOps: the method ("" any)
// and the path under the base, "*" matching one segment and a final "/**"
// any number.
func (v *Validator) unlisted(req *http.Request) bool {
	path := strings.TrimPrefix(req.URL.Path, v.base)
	for _, u := range unlistedOps {
		if (u.Method == "" || req.Method == u.Method) && pathMatches(u.Path, path) {
			return true
		}
	}
	return false
}

func pathMatches(pattern, path string) bool {
	prefix, rest := strings.CutSuffix(pattern, "/**")
	ps, xs := strings.Split(prefix, "/"), strings.Split(path, "/")
	if len(xs) < len(ps) || !rest && len(xs) != len(ps) {
		return false
	}
	for i, p := range ps {
		if p != "*" && p != xs[i] {
			return false
		}
	}
	return true
}

func mapOf(v any) map[string]any {
	m, _ := v.(map[string]any)
	if m == nil {
		return map[string]any{}
	}
	return m
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

// Validator checks requests and responses against the schema. It is safe
// for concurrent use: tests share one.
type Validator struct {
	router routers.Router
	base   string // path prefix of the server, "/client/v4"
}

// New builds the schema from the 2024 excerpt at path and the 2026 files
// (operations2026File, components2026File) in the same directory, as the
// package comment describes; base is the server URL traffic goes to (such
// as an httptest server's URL + "/client/v4"), or only its path
// ("/client/v4"): requests to any scheme and host are then matched by
// path, so that one Validator serves any number of test servers. Either
// way, what is checked of a request and its answer is the same.
func New(path, base string) (*Validator, error) {
	return newValidator(path, base, "")
}

// newValidator is New, leaving out the SchemaFix named skip (for tests).
func newValidator(path, base, skip string) (*Validator, error) {
	data, err := document(path, skip)
	if err != nil {
		return nil, err
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("load schema: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("schema invalid: %w", err)
	}
	doc.Servers = openapi3.Servers{{URL: base}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	return &Validator{router: router, base: u.Path}, nil
}

var options = &openapi3filter.Options{
	MultiError:         true,
	AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
}

func (v *Validator) input(req *http.Request, body []byte) (*openapi3filter.RequestValidationInput, error) {
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: not an operation of the schema: %w", req.Method, req.URL.Path, err)
	}
	r := req.Clone(req.Context())
	// The body given, which may be rewritten (Differences): kin-openapi
	// reads GetBody when it is set.
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: options}, nil
}

// operation names the operation a request is for, "GET /accounts/{account_id}".
func (v *Validator) operation(req *http.Request) string {
	route, _, err := v.router.FindRoute(req)
	if err != nil {
		return ""
	}
	return req.Method + " " + route.Path
}

// CheckRequest validates a request and its body, after rewriting the
// known differences in what a client may send.
func (v *Validator) CheckRequest(req *http.Request, body []byte) error {
	_, err := v.checkRequest(req, body)
	return err
}

func (v *Validator) checkRequest(req *http.Request, body []byte) ([]string, error) {
	if v.unlisted(req) {
		return nil, nil
	}
	op := v.operation(req)
	var applied []string
	if len(body) > 0 {
		var doc any
		if json.Unmarshal(body, &doc) == nil {
			for _, d := range Differences {
				if d.Request && d.Rewrite(op, doc) {
					applied = append(applied, d.Name)
				}
			}
			if len(applied) > 0 {
				body, _ = json.Marshal(doc)
			}
		}
	}
	in, err := v.input(req, body)
	if err != nil {
		return applied, err
	}
	if err := openapi3filter.ValidateRequest(req.Context(), in); err != nil {
		return applied, fmt.Errorf("%s: request: %w", op, err)
	}
	return applied, nil
}

// CheckResponse validates a response to req, after rewriting the known
// differences. It returns the names of the differences applied.
func (v *Validator) CheckResponse(req *http.Request, reqBody []byte, status int, header http.Header, body []byte) ([]string, error) {
	if v.unlisted(req) {
		return nil, nil
	}
	in, err := v.input(req, reqBody)
	if err != nil {
		return nil, err
	}
	op := v.operation(req)
	var applied []string
	if strings.HasPrefix(header.Get("Content-Type"), "application/json") {
		var doc any
		if err := json.Unmarshal(body, &doc); err != nil {
			return nil, fmt.Errorf("%s: response is not JSON: %w", op, err)
		}
		for _, d := range Differences {
			if !d.Request && d.Rewrite(op, doc) {
				applied = append(applied, d.Name)
			}
		}
		if body, err = json.Marshal(doc); err != nil {
			return nil, err
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header,
		Body: io.NopCloser(bytes.NewReader(body)), Options: options}
	if err := openapi3filter.ValidateResponse(req.Context(), out); err != nil {
		return applied, fmt.Errorf("%s: response %d: %w", op, status, err)
	}
	return applied, nil
}
