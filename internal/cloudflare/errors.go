package cloudflare

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cloudflare/cloudflare-go/v7/accounts"
)

// APIError is a failed call, described without credentials or bodies that
// could hold them.
type APIError struct {
	Op      string // "list members of 023e…"
	Status  int    // HTTP status; 0 for a network error
	Code    int    // Cloudflare's first error code, when given
	Message string // Cloudflare's first error message, or the network error
	Source  string // where the credentials came from, for 401/403
	// RetryAt, when set, is when Cloudflare said the call may be tried
	// again, further away than the client waits.
	RetryAt time.Time
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	b.WriteString(": ")
	if e.Status == 0 {
		b.WriteString(e.Message)
	} else {
		fmt.Fprintf(&b, "%d %s", e.Status, http.StatusText(e.Status))
		if e.Message != "" {
			fmt.Fprintf(&b, ": %s", e.Message)
		}
		if e.Code != 0 {
			fmt.Fprintf(&b, " (code %d)", e.Code)
		}
	}
	if !e.RetryAt.IsZero() {
		fmt.Fprintf(&b, "; Cloudflare asks to wait until %s before trying again (longer than one request may wait): nothing was changed, try again then", e.RetryAt.UTC().Format(time.RFC3339))
	}
	switch {
	case e.Status == http.StatusForbidden && e.Code == codeUnauthorizedResource:
		// Cloudflare gives the same answer for an account id that is
		// wrong and for one the token may not reach: say both, the
		// account first (a typo is the common case).
		fmt.Fprintf(&b, "; Cloudflare gives this answer for an account the token cannot reach: check the account id first (config.account_id or --account-id: the 32 characters after dash.cloudflare.com/ in the dashboard's address), then that the token from %s has Account Settings Read and Account Members on that account", e.Source)
	case e.Auth():
		fmt.Fprintf(&b, "; check the token from %s: is it valid, and does it have Account Settings read and Account Members permissions on this account?", e.Source)
	}
	return b.String()
}

// codeUnauthorizedResource is Cloudflare's 9109, "Unauthorized to access
// requested resource": answered for an account id the token cannot reach,
// whether the account exists or not, so a typo cannot be told from a
// missing permission (favonia/cloudflare-ddns#692: "impossible to validate
// account IDs without more permissions"; cloudflare/workers-sdk#1422). The
// fake answers it for any other account id.
const codeUnauthorizedResource = 9109

// Auth reports whether the credentials were refused.
func (e *APIError) Auth() bool {
	return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
}

// Transient reports whether retrying later may succeed: rate limits,
// server errors, network errors.
func (e *APIError) Transient() bool {
	return e.Status == 0 || e.Status == http.StatusTooManyRequests || e.Status >= 500 || e.Status == http.StatusRequestTimeout
}

// IsTransient reports whether err is a failure worth retrying later (the
// daemon's backoff) rather than one a person must fix.
func IsTransient(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Transient()
}

// wrap turns an SDK error into an APIError for op.
func (c *Client) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, err)
	}
	ae := &APIError{Op: op, Source: c.creds.Source}
	var se *accounts.Error
	if errors.As(err, &se) {
		ae.Status = se.StatusCode
		if len(se.Errors) > 0 {
			ae.Code, ae.Message = int(se.Errors[0].Code), se.Errors[0].Message
		}
		if se.Response != nil {
			if at, perr := time.Parse(time.RFC3339, se.Response.Header.Get(retryAtHeader)); perr == nil {
				ae.RetryAt = at
			}
		}
		return ae
	}
	ae.Message = redact(err.Error(), c.creds)
	return ae
}

// redact removes credential values from a message, as a last line of
// defence: the SDK's transport errors name URLs, never headers.
func redact(msg string, creds Credentials) string {
	for _, secret := range []string{creds.Token, creds.APIKey} {
		if len(secret) >= 4 {
			msg = strings.ReplaceAll(msg, secret, "[REDACTED]")
		}
	}
	return msg
}
