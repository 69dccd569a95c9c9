package contract

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// The 2026 data, read from the directory of the 2024 excerpt given to New.
const (
	// operations2026File holds the 13 operations cfaccess uses as defined
	// at github.com/cloudflare/api-schemas commit c92b9b0f (2026-07-27):
	// parameters, request bodies and response $refs.
	operations2026File = "operations-2026-07-27.json"
	// components2026File holds nine component schemas of the same commit
	// (its "schemas" key).
	components2026File = "components-2026-07-27.json"
	// userGroups2026Dir holds the user-group operations (ops/*.json: method,
	// path, op) and the components they define (components/*.json: name,
	// schema) of the same commit, transcribed from a documentation split
	// that quotes it (its README says which).
	userGroups2026Dir = "user-groups-2026-07-27"
)

// addedOperations are 2026 operations that the 2024 excerpt lacks; they
// are added whole (operationId, summary, parameters, body, responses).
// Any other 2026 operation must replace a 2024 one.
var addedOperations = []string{
	"GET /accounts/{account_id}/tokens/verify",
}

// SchemaFix is a change to the merged document that is not a plain
// overlay of the 2026 data: a substitute for a component neither version
// defines, or the correction of a defect of the schema itself.
type SchemaFix struct {
	Name, Reason string
	apply        func(doc map[string]any) error
}

// SchemaFixes are all such changes, applied after the 2026 overlay; each is
// listed with its reason, and nothing else is changed. A fix that no longer
// finds what it corrects fails New, so the list cannot go stale silently;
// TestSchemaFixesAreNeeded shows each one is needed.
var SchemaFixes = []SchemaFix{
	{
		Name: "iam_resource_group_identifier is a 32-character string",
		Reason: "the 2026 id parameter of GET /iam/resource_groups refs it; neither the 2026 components nor the " +
			"2024 excerpt define it; the 2024 parameter was a string of exactly 32 characters, so that is kept",
		apply: substitute("iam_resource_group_identifier", map[string]any{
			"description": "Resource group identifier (substitute: see SchemaFixes).",
			"type":        "string", "minLength": 32, "maxLength": 32,
		}),
	},
	{
		Name: "iam_response_single_account is the 2024 iam_response_single",
		Reason: "the 2026 200 answer of GET /accounts/{account_id} refs it; neither version defines it; the 2024 " +
			"200 answer of that operation (a success envelope whose result is an object) is kept",
		apply: substitute("iam_response_single_account", ref("iam_response_single")),
	},
	{
		Name: "iam_token_verify_response_single_segment is the 2024 iam_response_single_segment",
		Reason: "the 2026 200 answers of GET /user/tokens/verify and GET /accounts/{account_id}/tokens/verify ref it; " +
			"neither version defines it; the 2024 200 answer of GET /user/tokens/verify (result {id, status, " +
			"expires_on, not_before}, id and status required) is kept, and used for the account-token operation too",
		apply: substitute("iam_token_verify_response_single_segment", ref("iam_response_single_segment")),
	},
	{
		Name: "PUT /members/{member_id} takes the with-policies body",
		Reason: "the body is oneOf(iam_update-member-with-roles, iam_update-member-with-policies); with-roles is " +
			"iam_member, all optional, so a policies body without a readOnly property matches both and is refused; " +
			"cfaccess only sends policies (with the member's status, which with-roles refuses as readOnly)",
		apply: func(doc map[string]any) error {
			op, err := operation(doc, http.MethodPut, "/accounts/{account_id}/members/{member_id}")
			if err != nil {
				return err
			}
			mt := mapOf(mapOf(mapOf(op["requestBody"])["content"])["application/json"])
			oneOf := list(mapOf(mt["schema"])["oneOf"])
			want := []any{ref("iam_update-member-with-roles"), ref("iam_update-member-with-policies")}
			if !jsonEqual(oneOf, want) {
				return fmt.Errorf("PUT members body is no longer oneOf(with-roles, with-policies)")
			}
			mt["schema"] = ref("iam_update-member-with-policies")
			return nil
		},
	},
	{
		Name: "iam_user_group_identifier is a 32-character string",
		Reason: "the 2026 user-group operations ref it for {user_group_id}; the files do not define it; " +
			"cloudflare-go v7.9.0 takes it as a string (UserGroupService.Get userGroupID), and ids are 32 hex " +
			"characters like every other identifier of the schema (its example, f267e341f3dd4697bd3b9f71dd96247f)",
		apply: substitute("iam_user_group_identifier", map[string]any{
			"description": "User group identifier (substitute: see SchemaFixes).",
			"type":        "string", "minLength": 32, "maxLength": 32,
		}),
	},
	{
		Name: "iam_user_group_member_identifier is a 32-character string",
		Reason: "the 2026 user-group member operations ref it for {member_id} and in the add body; the files do not " +
			"define it; it is an account member's id (iam_user_group_member: \"Account member identifier\", " +
			"example 4f5f0c14a2a41d5063dd301b2f829f04), 32 hex characters",
		apply: substitute("iam_user_group_member_identifier", map[string]any{
			"description": "Account member identifier (substitute: see SchemaFixes).",
			"type":        "string", "minLength": 32, "maxLength": 32,
		}),
	},
	{
		Name: "iam_permission_group_ids and iam_resource_group_ids are arrays of {id}",
		Reason: "iam_user_group_policy_write_body refs them; the files do not define them; cloudflare-go v7.9.0 " +
			"sends each as an array of objects whose id is required (UserGroupNewParamsPoliciesPermissionGroup, " +
			"UserGroupNewParamsPoliciesResourceGroup), as member policies are written (iam_create_member_policy)",
		apply: func(doc map[string]any) error {
			ids := map[string]any{"type": "array", "items": map[string]any{"type": "object", "required": []any{"id"},
				"properties": map[string]any{"id": map[string]any{"type": "string"}}}}
			for _, name := range []string{"iam_permission_group_ids", "iam_resource_group_ids"} {
				if err := substitute(name, ids)(doc); err != nil {
					return err
				}
			}
			return nil
		},
	},
	{
		Name: "iam_user_groups is an array of iam_user_group",
		Reason: "the 2026 list operation's result refs it; the files do not define it; cloudflare-go v7.9.0 " +
			"lists []UserGroupListResponse, the fields of iam_user_group",
		apply: substitute("iam_user_groups", map[string]any{"type": "array", "items": ref("iam_user_group")}),
	},
	{
		Name:   "DELETE /members/{member_id} has no required body",
		Reason: "the schema requires an empty JSON body; the real API and the SDK send none",
		apply: func(doc map[string]any) error {
			op, err := operation(doc, http.MethodDelete, "/accounts/{account_id}/members/{member_id}")
			if err != nil {
				return err
			}
			body := mapOf(op["requestBody"])
			if body["required"] != true {
				return fmt.Errorf("DELETE members body is no longer required")
			}
			body["required"] = false
			return nil
		},
	},
}

// substitute defines a component that neither version defines; it fails
// if the component is defined after all.
func substitute(name string, schema map[string]any) func(map[string]any) error {
	return func(doc map[string]any) error {
		schemas := mapOf(mapOf(doc["components"])["schemas"])
		if _, ok := schemas[name]; ok {
			return fmt.Errorf("component %s is defined: the substitute is stale", name)
		}
		schemas[name] = schema
		return nil
	}
}

func ref(name string) map[string]any {
	return map[string]any{"$ref": "#/components/schemas/" + name}
}

func jsonEqual(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// operation returns the operation object of method and path.
func operation(doc map[string]any, method, path string) (map[string]any, error) {
	op, ok := mapOf(mapOf(doc["paths"])[path])[strings.ToLower(method)].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("schema has no %s %s", method, path)
	}
	return op, nil
}

// document builds the schema validated (see the package comment): the 2024
// excerpt at path, the 2026 components and operations next to it laid over
// it, then SchemaFixes except skip (for tests).
func document(path, skip string) ([]byte, error) {
	var doc, components, operations map[string]any
	dir := filepath.Dir(path)
	for _, f := range []struct {
		path string
		into *map[string]any
	}{
		{path, &doc},
		{filepath.Join(dir, components2026File), &components},
		{filepath.Join(dir, operations2026File), &operations},
	} {
		b, err := os.ReadFile(f.path)
		if err != nil {
			return nil, fmt.Errorf("load schema: %w", err)
		}
		if err := json.Unmarshal(b, f.into); err != nil {
			return nil, fmt.Errorf("load schema %s: %w", f.path, err)
		}
	}
	schemas, ok := mapOf(doc["components"])["schemas"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s has no components.schemas", path)
	}
	// 2. 2026 component schemas replace (or add to) the 2024 ones.
	newSchemas := mapOf(components["schemas"])
	if len(newSchemas) == 0 {
		return nil, fmt.Errorf("%s has no schemas", components2026File)
	}
	for name, s := range newSchemas {
		schemas[name] = s
	}
	// 3. 2026 operations replace parameters, body and responses.
	paths := mapOf(doc["paths"])
	newPaths := mapOf(operations["paths"])
	if len(newPaths) == 0 {
		return nil, fmt.Errorf("%s has no paths", operations2026File)
	}
	for p, item := range newPaths {
		for method, o := range mapOf(item) {
			newOp := mapOf(o)
			name := strings.ToUpper(method) + " " + p
			op, err := operation(doc, method, p)
			if err != nil {
				if !slices.Contains(addedOperations, name) {
					return nil, fmt.Errorf("2026 operation %s is not in the 2024 excerpt", name)
				}
				if paths[p] == nil {
					paths[p] = map[string]any{}
				}
				op = map[string]any{"operationId": newOp["operationId"], "summary": newOp["summary"]}
				mapOf(paths[p])[method] = op
			} else if slices.Contains(addedOperations, name) {
				return nil, fmt.Errorf("operation %s is in the 2024 excerpt after all", name)
			}
			for _, k := range []string{"parameters", "requestBody", "responses", "deprecated"} {
				if v, ok := newOp[k]; ok {
					op[k] = v
				} else {
					delete(op, k)
				}
			}
		}
	}
	// 3b. The user-group operations and components, added whole.
	if err := addUserGroups(doc, schemas, filepath.Join(dir, userGroups2026Dir)); err != nil {
		return nil, err
	}
	// 4. Fixes, then every $ref must resolve.
	for _, f := range SchemaFixes {
		if f.Name == skip {
			continue
		}
		if err := f.apply(doc); err != nil {
			return nil, fmt.Errorf("schema fix %q: %w", f.Name, err)
		}
	}
	if missing := unresolved(doc, schemas); len(missing) > 0 {
		return nil, fmt.Errorf("schema refers to components neither version defines (each needs a SchemaFix): %s",
			strings.Join(missing, ", "))
	}
	return json.Marshal(doc)
}

// addUserGroups adds the user-group operations and components of dir: each
// operation must be new to the document, and each component too.
func addUserGroups(doc, schemas map[string]any, dir string) error {
	comps, err := filepath.Glob(filepath.Join(dir, "components", "*.json"))
	if err != nil || len(comps) == 0 {
		return fmt.Errorf("load schema: no user-group components in %s", dir)
	}
	for _, f := range comps {
		var c struct {
			Name   string         `json:"name"`
			Schema map[string]any `json:"schema"`
		}
		if err := readJSON(f, &c); err != nil {
			return err
		}
		if c.Name == "" || c.Schema == nil {
			return fmt.Errorf("load schema %s: no name or schema", f)
		}
		if _, ok := schemas[c.Name]; ok {
			return fmt.Errorf("load schema %s: component %s is defined already", f, c.Name)
		}
		schemas[c.Name] = c.Schema
	}
	ops, err := filepath.Glob(filepath.Join(dir, "ops", "*.json"))
	if err != nil || len(ops) == 0 {
		return fmt.Errorf("load schema: no user-group operations in %s", dir)
	}
	paths := mapOf(doc["paths"])
	for _, f := range ops {
		var o struct {
			Method string         `json:"method"`
			Path   string         `json:"path"`
			Op     map[string]any `json:"op"`
		}
		if err := readJSON(f, &o); err != nil {
			return err
		}
		if _, err := operation(doc, o.Method, o.Path); err == nil {
			return fmt.Errorf("load schema %s: %s %s is defined already", f, o.Method, o.Path)
		}
		if paths[o.Path] == nil {
			paths[o.Path] = map[string]any{}
		}
		mapOf(paths[o.Path])[strings.ToLower(o.Method)] = o.Op
	}
	return nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("load schema: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("load schema %s: %w", path, err)
	}
	return nil
}

// unresolved lists the component schemas referred to but not defined.
func unresolved(doc, schemas map[string]any) []string {
	set := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if r, ok := v["$ref"].(string); ok {
				name, isSchema := strings.CutPrefix(r, "#/components/schemas/")
				if !isSchema || schemas[name] == nil {
					set[r] = true
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc["paths"])
	walk(schemas)
	var out []string
	for r := range set {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}
