// Package contract checks HTTP traffic against Cloudflare's published
// OpenAPI schema (an excerpt of the endpoints cfaccess uses), for tests:
// the requests our client sends and the responses the fake serves.
//
// Where the real API and the schema disagree, the real API wins; each such
// difference is listed in Differences with its reason, and the body is
// rewritten to the schema's form for that one point before validation.
// Nothing else is exempt.
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
	// Rewrite turns a response body (decoded JSON) into the schema's form
	// for this point; it reports whether it changed anything.
	Rewrite func(op string, body any) bool
}

// Differences are the known real-versus-schema differences, each exempt
// and nothing else.
var Differences = []Difference{
	{
		Name: "member resource group scope is an object",
		Reason: "real member responses (recorded-list-members.json) give policies[].resource_groups[].scope as " +
			"{key, objects}; the schema says an array of such objects",
		Rewrite: func(op string, body any) bool {
			return forEachMember(body, func(m map[string]any) bool {
				changed := false
				for _, p := range list(m["policies"]) {
					for _, rg := range list(mapOf(p)["resource_groups"]) {
						if sc, ok := mapOf(rg)["scope"].(map[string]any); ok {
							mapOf(rg)["scope"] = []any{sc}
							changed = true
						}
					}
				}
				return changed
			})
		},
	},
	{
		Name:   "role permissions are a map",
		Reason: "real responses give roles[].permissions as a map of {read, edit} objects; the schema says an array of strings",
		Rewrite: func(op string, body any) bool {
			changed := false
			rewrite := func(r any) {
				if perms, ok := mapOf(r)["permissions"].(map[string]any); ok {
					keys := make([]any, 0, len(perms))
					for k := range perms {
						keys = append(keys, k)
					}
					mapOf(r)["permissions"] = keys
					changed = true
				}
			}
			forEachMember(body, func(m map[string]any) bool {
				for _, r := range list(m["roles"]) {
					rewrite(r)
				}
				return false
			})
			if op == "GET /accounts/{account_id}/roles" {
				for _, r := range list(mapOf(body)["result"]) {
					rewrite(r)
				}
			}
			return changed
		},
	},
}

// Unlisted are operations cfaccess uses that the excerpt does not define;
// they pass unchecked. GET /user reads the token's owner (SPEC §4).
var Unlisted = []struct{ Method, PathSuffix, Reason string }{
	{http.MethodGet, "/user", "the token owner, protected from changes (SPEC §4); not in the excerpt"},
	{http.MethodGet, "/tokens/verify", "account-scoped token verification; not in the excerpt"},
}

// unlisted reports whether req is one of Unlisted.
func (v *Validator) unlisted(req *http.Request) bool {
	for _, u := range Unlisted {
		if req.Method == u.Method && strings.HasSuffix(req.URL.Path, u.PathSuffix) && (u.PathSuffix != "/user" || req.URL.Path == v.base+"/user") {
			return true
		}
	}
	return false
}

// SchemaFixes are defects of the excerpt itself (contradictions, trimmed
// definitions), corrected before validating; each is listed with its
// reason, and nothing else is changed.
var SchemaFixes = []struct{ Name, Reason string }{
	{"account_id of GET /accounts/{account_id} is a string",
		"the excerpt's parameter schema (iam_schemas-identifier) is empty, which kin-openapi cannot decode"},
	{"PUT /members/{member_id} takes the with-policies body",
		"the oneOf of with-roles (all optional) and with-policies matches a policies body twice; cfaccess only sends policies"},
	{"DELETE /members/{member_id} has no required body",
		"the schema requires an empty JSON body; the real API and the SDK send none"},
	{"4XX answers are failure envelopes",
		"the schema's 4XX is allOf(a success-true envelope, a success-false envelope), which nothing can match"},
}

// patchSchema applies SchemaFixes.
func patchSchema(doc *openapi3.T) error {
	get := func(path, method string) (*openapi3.Operation, error) {
		item := doc.Paths.Value(path)
		if item == nil || item.GetOperation(method) == nil {
			return nil, fmt.Errorf("schema has no %s %s", method, path)
		}
		return item.GetOperation(method), nil
	}
	acct, err := get("/accounts/{account_id}", http.MethodGet)
	if err != nil {
		return err
	}
	for _, p := range acct.Parameters {
		if p.Value.Name == "account_id" {
			p.Value.Schema = openapi3.NewStringSchema().NewRef()
		}
	}
	put, err := get("/accounts/{account_id}/members/{member_id}", http.MethodPut)
	if err != nil {
		return err
	}
	put.RequestBody.Value.Content["application/json"].Schema = doc.Components.Schemas["iam_update-member-with-policies"]
	del, err := get("/accounts/{account_id}/members/{member_id}", http.MethodDelete)
	if err != nil {
		return err
	}
	del.RequestBody.Value.Required = false
	failure := doc.Components.Schemas["iam_api-response-common-failure"]
	if failure == nil {
		return fmt.Errorf("schema has no iam_api-response-common-failure")
	}
	envelope := openapi3.NewObjectSchema()
	envelope.Required = []string{"success", "errors", "messages", "result"}
	envelope.Properties = openapi3.Schemas{
		"success":  failure.Value.Properties["success"],
		"errors":   failure.Value.Properties["errors"],
		"messages": failure.Value.Properties["messages"],
		"result":   &openapi3.SchemaRef{Value: &openapi3.Schema{Nullable: true}},
	}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			if r := op.Responses.Value("4XX"); r != nil && r.Value != nil {
				for _, mt := range r.Value.Content {
					mt.Schema = envelope.NewRef()
				}
			}
		}
	}
	return nil
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

// forEachMember calls f on each member of a member response (one or a
// list); it reports whether any call did.
func forEachMember(body any, f func(map[string]any) bool) bool {
	res := mapOf(body)["result"]
	changed := false
	switch r := res.(type) {
	case map[string]any:
		if _, isMember := r["policies"]; isMember {
			changed = f(r)
		}
	case []any:
		for _, m := range r {
			if mm := mapOf(m); mm["policies"] != nil || mm["roles"] != nil {
				changed = f(mm) || changed
			}
		}
	}
	return changed
}

// Validator checks requests and responses against the schema.
type Validator struct {
	router routers.Router
	base   string // path prefix of the server, "/client/v4"
}

// New loads the schema from path; base is the server URL traffic goes to
// (such as an httptest server's URL + "/client/v4").
func New(path, base string) (*Validator, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("load schema: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("schema invalid: %w", err)
	}
	if err := patchSchema(doc); err != nil {
		return nil, err
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
	r.Body = io.NopCloser(bytes.NewReader(body))
	return &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: options}, nil
}

// Operation names the operation a request is for, "GET /accounts/{account_id}".
func (v *Validator) Operation(req *http.Request) string {
	route, _, err := v.router.FindRoute(req)
	if err != nil {
		return ""
	}
	return req.Method + " " + route.Path
}

// CheckRequest validates a request and its body.
func (v *Validator) CheckRequest(req *http.Request, body []byte) error {
	if v.unlisted(req) {
		return nil
	}
	in, err := v.input(req, body)
	if err != nil {
		return err
	}
	if err := openapi3filter.ValidateRequest(req.Context(), in); err != nil {
		return fmt.Errorf("%s: request: %w", v.Operation(req), err)
	}
	return nil
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
	op := v.Operation(req)
	var applied []string
	if strings.HasPrefix(header.Get("Content-Type"), "application/json") {
		var doc any
		if err := json.Unmarshal(body, &doc); err != nil {
			return nil, fmt.Errorf("%s: response is not JSON: %w", op, err)
		}
		for _, d := range Differences {
			if d.Rewrite(op, doc) {
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
