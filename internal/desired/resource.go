package desired

import (
	"cmp"
	"fmt"
	"strings"
)

// ResourceKind says what a resource spec covers.
type ResourceKind int

const (
	// WholeAccount is the whole account ("All domains" in the dashboard):
	// "*" or "account:*". Only account-scoped roles go there.
	WholeAccount ResourceKind = iota
	// ZoneName is one zone named by its domain: "zone:example.com".
	ZoneName
	// ZoneKey is one zone named by its Cloudflare resource key:
	// "com.cloudflare.api.account.zone.<zone id>".
	ZoneKey
)

// ZoneKeyPrefix starts the Cloudflare resource key of a zone.
const ZoneKeyPrefix = "com.cloudflare.api.account.zone."

// Resource is a parsed entry of a role's resources.allow.
type Resource struct {
	Kind ResourceKind
	// Zone is the lower-case zone name (ZoneName) or the zone id (ZoneKey).
	Zone string
}

// String returns the canonical spelling: "account:*", "zone:<name>" or
// the raw zone key.
func (r Resource) String() string {
	switch r.Kind {
	case ZoneName:
		return "zone:" + r.Zone
	case ZoneKey:
		return ZoneKeyPrefix + r.Zone
	default:
		return "account:*"
	}
}

// Compare orders resources: the account first, then zones by name or id.
func (r Resource) Compare(o Resource) int {
	return cmp.Or(cmp.Compare(r.Kind, o.Kind), cmp.Compare(r.Zone, o.Zone))
}

// ParseResource parses one resource spec. The error says which forms are
// accepted.
func ParseResource(s string) (Resource, error) {
	switch {
	case s == "*" || s == "account:*":
		return Resource{Kind: WholeAccount}, nil
	case s == "zone:*":
		// Cloudflare has no "every zone" resource for domain-scoped roles:
		// no resource group key for it is documented or seen (a domain
		// group lists its zones), and account-scoped roles already cover
		// every zone, present and future.
		return Resource{}, fmt.Errorf("resource \"zone:*\": Cloudflare has no \"all zones\" resource; grant the account-scoped role on \"account:*\" (it covers every zone, including future ones), or list the zones (zone:<name>)")
	case strings.HasPrefix(s, "zone:"):
		name := strings.TrimSuffix(strings.ToLower(strings.TrimPrefix(s, "zone:")), ".")
		if err := checkZoneName(name); err != nil {
			return Resource{}, fmt.Errorf("resource %q: %w", s, err)
		}
		return Resource{Kind: ZoneName, Zone: name}, nil
	case strings.HasPrefix(s, ZoneKeyPrefix):
		id := strings.TrimPrefix(s, ZoneKeyPrefix)
		if !isHexID(id) {
			return Resource{}, fmt.Errorf("resource %q: a zone key ends in a 32-character hexadecimal zone id", s)
		}
		return Resource{Kind: ZoneKey, Zone: id}, nil
	}
	return Resource{}, fmt.Errorf("resource %q not understood: use \"account:*\" (or \"*\") for the whole account, \"zone:<name>\" for one zone, or %q followed by a zone id", s, ZoneKeyPrefix)
}

func checkZoneName(name string) error {
	if name == "" {
		return fmt.Errorf("zone name is empty")
	}
	if len(name) > 253 {
		return fmt.Errorf("zone name is longer than 253 characters")
	}
	labels := strings.Split(name, ".")
	if len(labels) < 2 {
		return fmt.Errorf("zone name %q has no dot: a zone is a domain such as example.com", name)
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return fmt.Errorf("zone name %q has an empty or over-long label", name)
		}
		for _, c := range l {
			ok := 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
			if !ok {
				return fmt.Errorf("zone name %q has the character %q: write internationalised names in punycode (xn--...)", name, c)
			}
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("zone name %q has a label starting or ending with '-'", name)
		}
	}
	return nil
}

// isHexID reports whether s is a 32-character lower-case hexadecimal id, the
// form of Cloudflare account, zone and member ids.
func isHexID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
