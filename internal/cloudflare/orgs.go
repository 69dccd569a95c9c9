package cloudflare

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/cloudflare/cloudflare-go/v7/organizations"
)

// Organizations (Enterprise): every member of an account's organization is
// an Organization Super Administrator, with "implicit access to all
// accounts in your organization … you do not need explicit membership on
// each account" (developers.cloudflare.com fundamentals/organizations/
// manage-members). They hold the account without being in its member
// list, and cfaccess never writes them: it reports them.
//
// GET /organizations/{id}/members (cloudflare-go v7.9.0
// organizations/member.go) is paged by cursor: page_size (at most 1,000)
// and page_token, the answer's result_info.next_page_token absent on the
// last page (2026 schema PageTokenResultInfo). The SDK types the answer as
// a single page, so the pages are followed here. The operations take the
// Global API key only: with a token Cloudflare answers 403, code 10000
// (the Organizations limitations page).

// OrgMember is a member of the account's organization.
type OrgMember struct {
	Email, Status string
}

const orgPageSize = 1000

func (c *Client) readOrgMembers(ctx context.Context, orgID string) ([]OrgMember, *NotChecked, error) {
	op := "list members of organization " + orgID
	if err := checkIDs(op, orgID); err != nil {
		return nil, nil, err
	}
	var out []OrgMember
	seen := map[string]bool{}
	var token string
	for page := 1; ; page++ {
		if page > maxListPages {
			return nil, nil, untrusted(op, fmt.Sprintf("the list goes on past %d pages", maxListPages))
		}
		p := organizations.MemberListParams{}
		p.PageSize.Value, p.PageSize.Present = orgPageSize, true
		if token != "" {
			p.PageToken.Value, p.PageToken.Present = token, true
		}
		res, err := c.orgMembers.List(ctx, orgID, p)
		if err != nil {
			werr := c.wrap(op, err)
			if notPermitted(werr) {
				var ae *APIError
				errors.As(werr, &ae)
				return nil, &NotChecked{What: "organization members", Why: fmt.Sprintf("the credentials may not read them (%d %s): Cloudflare takes only the Global API key for them; its Super Administrators were not checked", ae.Status, http.StatusText(ae.Status))}, nil
			}
			return nil, nil, werr
		}
		for _, m := range res.Result {
			if m.ID == "" || seen[m.ID] {
				return nil, nil, untrusted(op, "a member is listed twice, or without an id")
			}
			seen[m.ID] = true
			email := strings.ToLower(strings.TrimSpace(m.User.Email))
			if email == "" {
				return nil, nil, untrusted(op, "member "+m.ID+" has no email")
			}
			if m.Status != organizations.OrganizationMemberStatusActive {
				// Pending, rejected or canceled: no access (yet, or any more).
				continue
			}
			out = append(out, OrgMember{Email: strings.Clone(email), Status: canon(string(m.Status))})
		}
		var info struct {
			NextPageToken string `json:"next_page_token"`
		}
		if raw := res.JSON.ExtraFields["result_info"].Raw(); raw != "" {
			_ = json.Unmarshal([]byte(raw), &info)
		}
		if info.NextPageToken == "" {
			return out, nil, nil
		}
		if info.NextPageToken == token || len(res.Result) == 0 {
			return nil, nil, untrusted(op, "the next page token does not move on")
		}
		token = info.NextPageToken
	}
}
