// Package cloudflare is cfaccess's adapter to Cloudflare's API v4, over the
// official SDK (github.com/cloudflare/cloudflare-go/v7). It reads an
// account's live state (members with their effective access, permission
// groups, resource groups, zones) and writes member changes.
//
// Every request passes a client-side limiter (1,200 per 5 minutes by
// default, a sliding window, so the account's real budget is never
// exceeded) and is counted and timed through Config.Observe. The SDK
// retries 429 (honouring Retry-After), 408, 409, 5xx and network errors
// with capped exponential backoff and jitter. A read that fails anywhere
// returns an error, never a partial account. Credentials never appear in
// errors: they name where the credential came from instead.
package cloudflare
