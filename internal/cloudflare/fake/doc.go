// Package fake is an in-memory Cloudflare API v4 server for the endpoints
// cfaccess uses. It is our model of Cloudflare, not Cloudflare: every
// behaviour here is taken from evidence — Cloudflare's documentation, the
// official schema (2024 excerpt and 2026 operations and components), the
// SDK's types, recorded responses, or bug reports of peer projects — and
// cited where it is not obvious. Where evidence is thin it does what is
// harmless either way. The contract tests validate every request and
// response against the schema.
//
// Faithful by default: envelopes; page-number pagination with an empty
// page past the end; GET /iam/resource_groups as one unpaged list; a
// resource group's scope as an object; role scopes (account-scoped roles
// on the account group only, domain-scoped roles on domains only, 400 code
// 1006 otherwise); resource groups created only with a name; the pending
// member shape (user.email set, user.id empty); roles listed beside
// policies; 1008 for an email that is already a member; a member PUT
// without the member's current status answered 200 and dropped; bearer
// and key+email auth; 1,200 requests per 5 minutes, then every call
// blocked for 5 minutes, with the Ratelimit headers.
//
// Test hooks (hooks.go) change the account behind the API's back as the
// dashboard would (ad-hoc groups for one domain), inject failures, and
// read the outcome. It is an http.Handler: tests reach it in-process
// (testkit.Transport) or over TCP (httptest), the demo over a listener.
package fake
