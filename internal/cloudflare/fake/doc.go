// Package fake is an in-memory Cloudflare API v4 server for the endpoints
// cfaccess uses (see ../shared/cloudflare-api/README.md in the steering
// repository), faithful in the details the reconciler depends on:
// envelopes, page-number pagination with an empty page past the end, the
// real member shape (a resource group's scope as an object), validated
// request bodies, bearer and key+email auth, and the 1,200 requests per 5
// minutes limit. It serves tests (httptest) and the demo (a listener).
//
// Work in progress for issue 3: test hooks (latency, failures, request
// log, out-of-band changes) and the remaining endpoints come next.
package fake
