// Package cfroles knows Cloudflare's predefined account role names, as an
// offline hint for validation. The account being reconciled is the
// authority: names are resolved against it at plan time.
package cfroles

import (
	_ "embed"
	"strings"
)

//go:embed role-names.txt
var namesText string

// Names returns Cloudflare's predefined role names (78 as of 2026).
func Names() []string {
	return strings.Split(strings.TrimSpace(namesText), "\n")
}

// Renamed maps former role names to their current names.
func Renamed() map[string]string {
	return map[string]string{
		"Super Administrator": "Super Administrator - All Privileges",
		"Workers Admin":       "Workers Platform Admin",
	}
}
