package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cfaccess/reconciler/internal/cloudflare"
	"github.com/cfaccess/reconciler/internal/evidence"
	"github.com/cfaccess/reconciler/internal/gitsource"
)

// EvidenceFormats are the formats of `reconciler report`.
var EvidenceFormats = []string{"markdown", "json", "csv"}

// Evidence renders the change evidence of a period. Every format renders
// the same EvidenceDoc.
func Evidence(w io.Writer, format string, r *evidence.Report) error {
	if err := CheckFormat(format, EvidenceFormats); err != nil {
		return err
	}
	doc := evidenceDoc(r)
	switch format {
	case "json":
		return WriteJSON(w, doc)
	case "csv":
		return evidenceCSV(w, doc)
	}
	return evidenceMarkdown(w, doc)
}

// EvidenceDoc is a report as every format shows it, and its JSON form;
// fields tagged json:"-" are what markdown says beyond it.
type EvidenceDoc struct {
	Since    time.Time            `json:"since"`
	Until    time.Time            `json:"until"`
	Accounts []EvidenceAccountDoc `json:"accounts"`
}

type EvidenceAccountDoc struct {
	Account   string `json:"account"`
	AccountID string `json:"account_id"`
	// Credentials says how cfaccess's token was known; NoApproval why
	// nothing could be approved.
	Credentials string              `json:"cfaccess_credentials,omitempty"`
	NoApproval  string              `json:"no_approval,omitempty"`
	Doubt       string              `json:"credentials_doubt,omitempty"`
	Error       string              `json:"error,omitempty"`
	Truncated   bool                `json:"truncated,omitempty"`
	Changes     []EvidenceChangeDoc `json:"changes"`
	Summary     EvidenceSummaryDoc  `json:"summary"`
}

type EvidenceChangeDoc struct {
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`
	Subject string    `json:"subject"`
	Action  string    `json:"action"`
	Type    string    `json:"type"`
	// Approval is "git" (approved through Git: made with cfaccess's
	// token, from a revision on the followed branch that explains it),
	// "unverified" (made with cfaccess's token, a check failed) or
	// "out_of_band"; Unapproved says why a change made with cfaccess's
	// token, or claiming to be cfaccess's, is not approved.
	Approval   string   `json:"approval"`
	Unapproved string   `json:"unapproved,omitempty"`
	Revision   string   `json:"revision,omitempty"`
	Author     string   `json:"commit_author,omitempty"`
	Title      string   `json:"commit_title,omitempty"`
	Grants     []string `json:"grants,omitempty"`
	Actor      string   `json:"actor"`
	Context    string   `json:"context"`
	IP         string   `json:"ip,omitempty"`
	// Corrected is when cfaccess reverted an out-of-band change, and
	// CorrectionSeconds how long it stood; StillPresent when not reverted
	// within the period.
	Corrected         *time.Time `json:"corrected_at,omitempty"`
	CorrectionSeconds *int64     `json:"time_to_correction_seconds,omitempty"`
	StillPresent      bool       `json:"still_present,omitempty"`
	// PullRequest is how an approved change's commit reached the branch
	// and who approved it; NotReviewed why it counts as not reviewed
	// (both only when reviews were looked up: a GitHub token).
	PullRequest *PullRequestDoc `json:"pull_request,omitempty"`
	NotReviewed string          `json:"not_reviewed,omitempty"`
	// BreakGlass: a break-glass grant explains the change, applied
	// before anyone reviewed it.
	BreakGlass bool `json:"break_glass,omitempty"`
	// Correction is how long the change stood until reverted.
	Correction time.Duration `json:"-"`
}

// PullRequestDoc is the pull request that merged a commit.
type PullRequestDoc struct {
	Number    int      `json:"number"`
	URL       string   `json:"url"`
	Approvers []string `json:"approvers"`
}

type EvidenceSummaryDoc struct {
	Changes             int   `json:"changes"`
	ApprovedThroughGit  int   `json:"approved_through_git"`
	Unverified          int   `json:"unverified"`
	OutOfBand           int   `json:"out_of_band"`
	Corrected           int   `json:"corrected"`
	StillPresent        int   `json:"still_present"`
	MedianCorrectionSec int64 `json:"median_time_to_correction_seconds"`
	MaxCorrectionSec    int64 `json:"max_time_to_correction_seconds"`
	// NotReviewed counts the approved changes not reviewed (nil when
	// reviews were not looked up).
	NotReviewed *int `json:"not_reviewed,omitempty"`
	// BreakGlass counts the changes of break-glass grants.
	BreakGlass int `json:"break_glass,omitempty"`
	// MedianCorrection and MaxCorrection are the times to correction.
	MedianCorrection time.Duration `json:"-"`
	MaxCorrection    time.Duration `json:"-"`
}

// evidenceDoc builds the document of a report.
func evidenceDoc(r *evidence.Report) EvidenceDoc {
	doc := EvidenceDoc{Since: r.Since.UTC(), Until: r.Until.UTC(), Accounts: []EvidenceAccountDoc{}}
	for _, a := range r.Accounts {
		ad := EvidenceAccountDoc{Account: a.Provider, AccountID: a.AccountID, Credentials: a.Credentials, NoApproval: a.NoApproval, Doubt: a.Doubt,
			Error: a.Error, Truncated: a.Truncated, Changes: []EvidenceChangeDoc{},
			Summary: EvidenceSummaryDoc{Changes: a.Summary.Changes, ApprovedThroughGit: a.Summary.Approved, Unverified: a.Summary.Unverified, OutOfBand: a.Summary.OutOfBand,
				Corrected: a.Summary.Corrected, StillPresent: a.Summary.StillPresent,
				MedianCorrectionSec: int64(a.Summary.MedianCorrection.Seconds()), MaxCorrectionSec: int64(a.Summary.MaxCorrection.Seconds()),
				MedianCorrection: a.Summary.MedianCorrection, MaxCorrection: a.Summary.MaxCorrection}}
		ad.Summary.BreakGlass = a.Summary.BreakGlass
		if a.Summary.Reviews {
			n := a.Summary.NotReviewed
			ad.Summary.NotReviewed = &n
		}
		for _, c := range a.Changes {
			cd := EvidenceChangeDoc{At: c.At, Kind: c.Kind, Subject: c.Subject, Action: c.Action, Type: c.Type, Approval: string(c.Approval),
				Unapproved: c.Why, Actor: c.Actor, Context: c.Context, IP: c.IP, Revision: c.Revision, Author: c.Author, Title: c.Title, Grants: c.Grants,
				NotReviewed: c.NotReviewed, BreakGlass: c.BreakGlass}
			if pr := c.PullRequest; pr != nil {
				cd.PullRequest = &PullRequestDoc{Number: pr.Number, URL: pr.URL, Approvers: append([]string{}, pr.Approvers...)}
			}
			switch {
			case c.Approval == evidence.Approved:
			case c.Corrected.IsZero():
				cd.StillPresent = true
			default:
				at, d := c.Corrected, c.TimeToCorrection()
				secs := int64(d.Seconds())
				cd.Corrected, cd.CorrectionSeconds, cd.Correction = &at, &secs, d
			}
			ad.Changes = append(ad.Changes, cd)
		}
		doc.Accounts = append(doc.Accounts, ad)
	}
	return doc
}

func evidenceCSV(w io.Writer, doc EvidenceDoc) error {
	cw := csv.NewWriter(w)
	reviews := slices.ContainsFunc(doc.Accounts, func(a EvidenceAccountDoc) bool { return a.Summary.NotReviewed != nil })
	header := []string{"account", "time", "kind", "subject", "action", "approval", "revision", "commit_author", "grants",
		"actor", "context", "ip", "corrected_at", "time_to_correction_seconds", "note"}
	if reviews {
		header = append(header, "pull_request", "approvers", "not_reviewed")
	}
	_ = cw.Write(header)
	for _, a := range doc.Accounts {
		for _, c := range a.Changes {
			corrected, secs := "", ""
			if c.Corrected != nil {
				corrected, secs = c.Corrected.Format(time.RFC3339), strconv.FormatInt(*c.CorrectionSeconds, 10)
			} else if c.StillPresent {
				corrected = "still present"
			}
			note := c.Unapproved
			if c.BreakGlass {
				note = strings.TrimPrefix(note+"; "+breakGlassText, "; ")
			}
			row := []string{a.Account, c.At.Format(time.RFC3339), c.Kind, c.Subject, c.Action, c.Approval, c.Revision, c.Author,
				strings.Join(c.Grants, "; "), c.Actor, c.Context, c.IP, corrected, secs, note}
			if reviews {
				pr, approvers := "", ""
				if c.PullRequest != nil {
					pr, approvers = c.PullRequest.URL, strings.Join(c.PullRequest.Approvers, "; ")
				}
				row = append(row, pr, approvers, c.NotReviewed)
			}
			_ = cw.Write(csvCells(row))
		}
	}
	cw.Flush()
	return cw.Error()
}

// evidenceMarkdown writes a report for people: what approval means, the
// accounts nothing could be approved in, then each account's figures and
// changes.
func evidenceMarkdown(w io.Writer, doc EvidenceDoc) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Access changes from %s to %s\n\n", doc.Since.Format(time.RFC3339), doc.Until.Format(time.RFC3339))
	b.WriteString("Every change to the accounts' members and user groups in the period, from each account's Cloudflare audit log. " +
		"A change is **approved through Git** only when Cloudflare says it was made with cfaccess's token, the revision it names is on the followed branch, " +
		"and the repository at that revision explains it (for an invitation or an update, the access written; for a removal, no grant for the member then): " +
		"it names the commit and the grants behind it. A change made with cfaccess's token that fails a check is **unverified**, with the check it failed. " +
		"Any other change is **out of band**, whatever it claims: it names who made it, how, and how long it stood until cfaccess reverted it.\n\n")
	for _, a := range doc.Accounts {
		if a.NoApproval != "" {
			fmt.Fprintf(&b, "⚠️ **%s: nothing is marked approved through Git**: %s. Give cfaccess's token id with --cfaccess-token-id, or run the report with cfaccess's token.\n\n",
				mdEscape(a.Account), mdEscape(oneLine(a.NoApproval)))
		}
		if a.Doubt != "" {
			fmt.Fprintf(&b, "⚠️ **%s: is this cfaccess's token?** %s.\n\n", mdEscape(a.Account), mdEscape(oneLine(a.Doubt)))
		}
	}
	for _, a := range doc.Accounts {
		evidenceAccountMarkdown(&b, a)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// evidenceAccountMarkdown writes an account's figures and a table of its
// changes, or why its audit log could not be read.
func evidenceAccountMarkdown(b *strings.Builder, a EvidenceAccountDoc) {
	fmt.Fprintf(b, "## %s (%s)\n\n", mdEscape(a.Account), mdEscape(a.AccountID))
	if a.Error != "" {
		fmt.Fprintf(b, "The audit log could not be read: %s\n\n", mdEscape(oneLine(a.Error)))
		return
	}
	if a.Credentials != "" {
		fmt.Fprintf(b, "cfaccess's token: %s.\n\n", mdEscape(oneLine(a.Credentials)))
	}
	if a.Truncated {
		b.WriteString("⚠️ **The audit log had more entries than --max-pages allows (or more than 512 MiB of them): the list below is incomplete, its end missing.**\n\n")
	}
	s := a.Summary
	fmt.Fprintf(b, "| changes | approved through Git | unverified | out of band | corrected | still present | median time to correction | longest |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	med, mx := "–", "–"
	if s.Corrected > 0 {
		med, mx = evidence.Duration(s.MedianCorrection), evidence.Duration(s.MaxCorrection)
	}
	fmt.Fprintf(b, "| %d | %d | %d | %d | %d | %d | %s | %s |\n\n", s.Changes, s.ApprovedThroughGit, s.Unverified, s.OutOfBand, s.Corrected, s.StillPresent, med, mx)
	if s.NotReviewed != nil {
		fmt.Fprintf(b, "Approved through Git but **not reviewed** (no pull request, or none approved by someone other than its authors): %d.\n\n", *s.NotReviewed)
	}
	if len(a.Changes) == 0 {
		b.WriteString("No change in the period.\n\n")
		return
	}
	if s.BreakGlass > 0 {
		fmt.Fprintf(b, "### Break-glass, not reviewed before use\n\nReview these after the fact: each was applied from a grant marked break_glass, before anyone reviewed it.\n\n| time (UTC) | subject | change | commit | grants |\n|---|---|---|---|---|\n")
		for _, c := range a.Changes {
			if c.BreakGlass {
				fmt.Fprintf(b, "| %s | %s | %s | %s%s | %s |\n", c.At.Format("2006-01-02 15:04"), mdEscape(c.Subject), mdEscape(c.Action),
					mdCode(gitsource.Short(c.Revision)), mdEscape(cmpOr(" by "+c.Author, c.Author)), mdEscape(strings.Join(c.Grants, "; ")))
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("| time (UTC) | subject | change | approval | by |\n|---|---|---|---|---|\n")
	for _, c := range a.Changes {
		evidenceChangeMarkdown(b, c)
	}
	b.WriteByte('\n')
}

// breakGlassText marks a change of a break-glass grant.
const breakGlassText = "break-glass, not reviewed before use"

// cmpOr is a when b is set, else "".
func cmpOr(a, b string) string {
	if b == "" {
		return ""
	}
	return a
}

// prLink is a pull request's number, linked when its URL is a plain https
// URL (it comes from the Git host's API: nothing else is linked).
func prLink(pr *PullRequestDoc) string {
	text := fmt.Sprintf("#%d", pr.Number)
	u, err := url.Parse(pr.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" || strings.ContainsAny(pr.URL, " <>()[]`|\n\"'") {
		return text
	}
	return "[" + text + "](" + u.String() + ")"
}

// evidenceChangeMarkdown writes a change as a row: when, what, whether
// approved through Git (and by which commit and grants), and by whom.
func evidenceChangeMarkdown(b *strings.Builder, c EvidenceChangeDoc) {
	approval, by := "", mdEscape(c.Actor)
	if ctx := cloudflare.ContextText(c.Context); ctx != "" {
		by += " " + ctx
	}
	if c.IP != "" {
		by += " from " + mdEscape(c.IP)
	}
	switch evidence.Approval(c.Approval) {
	case evidence.Approved:
		approval = "✅ Git " + mdCode(gitsource.Short(c.Revision))
		if c.Author != "" {
			approval += " by " + mdEscape(c.Author)
		}
		if c.Title != "" {
			approval += ": " + mdEscape(c.Title)
		}
		for _, g := range c.Grants {
			approval += "<br>" + mdEscape(g)
		}
		if pr := c.PullRequest; pr != nil {
			approval += "<br>pull request " + prLink(pr)
			if len(pr.Approvers) > 0 {
				approval += ", approved by " + mdEscape(strings.Join(pr.Approvers, ", "))
			}
		}
		if c.NotReviewed != "" {
			approval += "<br>**not reviewed**: " + mdEscape(c.NotReviewed)
		}
		if c.BreakGlass {
			approval += "<br>**" + breakGlassText + "**"
		}
		by = "cfaccess"
	case evidence.Unverified:
		approval = "❔ made with cfaccess's token, **unverified**"
	default:
		approval = "⚠️ out of band"
	}
	switch {
	case c.StillPresent:
		approval += ", **still present**"
	case c.Corrected != nil:
		approval += ", reverted after " + evidence.Duration(c.Correction)
	}
	if c.Unapproved != "" {
		approval += "<br>" + mdEscape(c.Unapproved)
	}
	fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", c.At.Format("2006-01-02 15:04"), mdEscape(c.Subject), mdEscape(c.Action), approval, by)
}
