// Package contract checks HTTP traffic against Cloudflare's published
// OpenAPI schema (the endpoints cfaccess uses), for tests: the requests our
// client sends and the responses the fake serves.
//
// # Which version each part comes from
//
// The schema is built by New from three files in one directory
// (internal/cloudflare/testdata), in this order:
//
//  1. The base: Cloudflare's official OpenAPI 3.0.3 schema of 2024-08-06
//     (github.com/cloudflare/api-schemas commit cca3064f), trimmed to our
//     operations and the components they use
//     (openapi-excerpt-2024-08-06.json). Whatever 2 and 3 do not replace
//     is 2024: the envelopes (iam_api-response-*, iam_response_*, zones_*),
//     iam_role and iam_schemas-role, permission groups, member policies'
//     list form, scope keys and objects, iam_create-scope,
//     iam_update-member-with-roles, iam_create-member-with-roles.
//  2. The nine component schemas of 2026-07-27 (api-schemas commit
//     c92b9b0f; components2026File) replace the 2024 ones of the same name,
//     or are added: iam_resource_group and iam_scope (scope an object),
//     iam_request_create_resource_group (name and scope required),
//     iam_member_with_policies (roles are iam_role),
//     iam_create-member-with-policies, iam_member-invitation-status,
//     iam_create_member_policy, iam_policy_identifier and
//     iam_update-member-with-policies.
//  3. The operations of 2026-07-27 (operations2026File): for every method
//     and path, the 2026 parameters, request body and responses (200 and
//     4XX) replace the 2024 ones. GET /accounts/{account_id}/tokens/verify,
//     absent from the 2024 excerpt, is added from 2026.
//     3b. The user-group operations and components of the same 2026
//     commit (userGroups2026Dir, transcribed from a documentation split
//     that quotes it), added whole: list, create, get and update a group;
//     list, add, get and remove its members.
//  4. SchemaFixes: substitutes for the components the 2026 data refers to
//     but neither version defines (three of the member operations', five
//     of the user groups'), and the defects of the schema itself that are
//     still there; each is listed with its reason.
//
// kin-openapi refuses what the schema refuses, with two limits worth
// knowing: query parameters an operation does not declare pass unchecked
// (page and per_page on GET /iam/resource_groups, which has neither in
// 2026), and so do body properties a schema does not declare, whatever
// their value (no schema here sets additionalProperties): status on PUT
// /members/{member_id}, which iam_update-member-with-policies lacks.
//
// Where the real API and the schema disagree, the real API wins; each such
// difference is listed in Differences with its reason, and the body (an
// answer's, or for the one difference in what a client may send, a
// request's: a policy added by a user-group update, without an id) is
// rewritten to the schema's form for that one point before validation.
// Nothing else is exempt.
package contract
