package evidence

import (
	"context"
	"slices"
)

// PullRequest is how an approved change's commit reached the followed
// branch: the pull request that merged it (Number 0: pushed directly) and
// the people who approved it, its authors aside.
type PullRequest struct {
	Number    int
	URL       string
	Approvers []string
}

// WithReviews is a with the way each approved change's commit reached the
// branch, from look (the Git host's API): the pull request and its
// approvers, or why it counts as not reviewed — pushed directly, approved
// by no one but its authors, or unknown (the lookup failed: not reviewed
// as far as the evidence goes). a is not changed.
func WithReviews(ctx context.Context, a Account, look func(ctx context.Context, sha string) (PullRequest, error)) Account {
	out := a
	out.Changes = slices.Clone(a.Changes)
	out.Summary.Reviews, out.Summary.NotReviewed = true, 0
	seen := map[string]PullRequest{}
	failed := map[string]error{}
	for i := range out.Changes {
		c := &out.Changes[i]
		if c.Approval != Approved || c.Revision == "" {
			continue
		}
		pr, ok := seen[c.Revision]
		err := failed[c.Revision]
		if !ok && err == nil {
			if pr, err = look(ctx, c.Revision); err != nil {
				failed[c.Revision] = err
			} else {
				seen[c.Revision] = pr
			}
		}
		switch {
		case err != nil:
			c.NotReviewed = "unknown: " + err.Error()
		case pr.Number == 0:
			c.NotReviewed = "pushed to the branch directly, not through a pull request"
		default:
			c.PullRequest = &pr
			if len(pr.Approvers) == 0 {
				c.NotReviewed = "its pull request has no approving review by someone other than its authors"
			}
		}
		if c.NotReviewed != "" {
			out.Summary.NotReviewed++
		}
	}
	return out
}
