package cloudflare

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
)

// MemberChange names a member the audit log says changed: its id, and
// whether the change was its removal.
type MemberChange struct {
	ID      string
	Removed bool
}

// ErrRefreshUnsafe says a partial refresh cannot be trusted: the account
// must be read whole.
var ErrRefreshUnsafe = errors.New("a partial refresh cannot be trusted")

// RefreshMembers reads the named members again and puts them in acct in
// place of what it held (GET /accounts/{id}/members/{member_id} each): the
// rest of acct stays as read. A member gone (404) is taken out only when
// the log said it was removed and acct held it; any other surprise — an
// id acct does not know answering 404, a removed member still there, a
// resource group whose scope the answer lacks — is ErrRefreshUnsafe, and
// acct is left as it was.
func (c *Client) RefreshMembers(ctx context.Context, acct *Account, changes []MemberChange) error {
	fresh := make([]*converted, len(changes))
	seen := &groupSet{byID: map[string]ResourceGroup{}}
	for i, ch := range changes {
		known := slices.ContainsFunc(acct.Members, func(m Member) bool { return m.ID == ch.ID })
		if err := checkIDs("refresh member of account "+acct.ID, acct.ID, ch.ID); err != nil {
			return err
		}
		m, err := c.members.Get(ctx, ch.ID, memberGetParams(acct.ID))
		var ae *APIError
		werr := c.wrap("read member "+ch.ID+" of account "+acct.ID, err)
		switch {
		case err == nil && ch.Removed:
			return fmt.Errorf("%w: member %s was removed, the log says, and is still there", ErrRefreshUnsafe, ch.ID)
		case err == nil:
		case errors.As(werr, &ae) && ae.Status == http.StatusNotFound && ch.Removed && known:
			continue // gone, as the log says
		case errors.As(werr, &ae) && ae.Status == http.StatusNotFound:
			return fmt.Errorf("%w: member %s is not found", ErrRefreshUnsafe, ch.ID)
		default:
			return werr
		}
		conv, err := convertMember(*m, acct.ID, seen)
		if err != nil {
			return err
		}
		if conv.unresolved() {
			return fmt.Errorf("%w: member %s has a resource group without its scope", ErrRefreshUnsafe, ch.ID)
		}
		fresh[i] = &conv
	}
	// Every read succeeded: only now is acct changed.
	for _, g := range seen.sorted() {
		if !slices.ContainsFunc(acct.ResourceGroups, func(x ResourceGroup) bool { return x.ID == g.ID }) {
			acct.ResourceGroups = append(acct.ResourceGroups, g)
		}
	}
	inherited := acct.inheritedPolicies()
	for i, ch := range changes {
		acct.Members = slices.DeleteFunc(acct.Members, func(m Member) bool { return m.ID == ch.ID })
		if fresh[i] == nil { // removed: out of its user groups too, as Cloudflare does
			for g := range acct.UserGroups {
				acct.UserGroups[g].Members = slices.DeleteFunc(acct.UserGroups[g].Members, func(m GroupMember) bool { return m.ID == ch.ID })
			}
		}
		if fresh[i] != nil {
			acct.Members = append(acct.Members, fresh[i].resolve(acct.ResourceGroups, inherited))
		}
	}
	slices.SortFunc(acct.Members, func(a, b Member) int { return cmp.Compare(a.Email, b.Email) })
	return nil
}
