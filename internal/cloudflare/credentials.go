package cloudflare

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Credentials authenticate to the API: a token, or the legacy key and
// email. Source says where they came from, for messages; the values are
// never printed.
type Credentials struct {
	Token  string
	APIKey string
	Email  string
	Source string
}

// String names the source, never the value, so that a Credentials printed
// by mistake leaks nothing.
func (c Credentials) String() string { return "credentials from " + c.Source }

// GoString is String, for %#v.
func (c Credentials) GoString() string { return c.String() }

// errNoCredentials means no credential was found anywhere.
var errNoCredentials = errors.New("no Cloudflare credentials: set CLOUDFLARE_API_TOKEN (or the variable named by the provider's config.api_token_env), pass --cloudflare-token-file, or set CLOUDFLARE_API_KEY with CLOUDFLARE_EMAIL")

// findCredentials resolves credentials in the order of SPEC §2: a token
// file (tokenFile), the provider's own variable (tokenEnv), then
// CLOUDFLARE_API_TOKEN, then CLOUDFLARE_API_KEY with CLOUDFLARE_EMAIL.
func findCredentials(getenv func(string) string, tokenEnv, tokenFile string) (Credentials, error) {
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return Credentials{}, fmt.Errorf("read --cloudflare-token-file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return Credentials{}, fmt.Errorf("--cloudflare-token-file %s is empty", tokenFile)
		}
		return Credentials{Token: tok, Source: "file " + tokenFile}, nil
	}
	if tokenEnv != "" {
		if tok := strings.TrimSpace(getenv(tokenEnv)); tok != "" {
			return Credentials{Token: tok, Source: "environment variable " + tokenEnv}, nil
		}
		return Credentials{}, fmt.Errorf("environment variable %s (the provider's config.api_token_env) is not set", tokenEnv)
	}
	if tok := strings.TrimSpace(getenv("CLOUDFLARE_API_TOKEN")); tok != "" {
		return Credentials{Token: tok, Source: "environment variable CLOUDFLARE_API_TOKEN"}, nil
	}
	key, email := strings.TrimSpace(getenv("CLOUDFLARE_API_KEY")), strings.TrimSpace(getenv("CLOUDFLARE_EMAIL"))
	switch {
	case key != "" && email != "":
		return Credentials{APIKey: key, Email: email, Source: "environment variables CLOUDFLARE_API_KEY and CLOUDFLARE_EMAIL"}, nil
	case key != "":
		return Credentials{}, errors.New("CLOUDFLARE_API_KEY is set but CLOUDFLARE_EMAIL is not: the legacy key needs its account email")
	}
	return Credentials{}, errNoCredentials
}
