package report

import (
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// mdEscape makes a value safe in markdown, anywhere in a comment.
// Everything a repository or an account supplies (reasons, emails, file
// names, commit subjects, policy messages) goes through it: a value must
// not end a table cell or row, open a link, an HTML comment (CI finds its
// comment by a marker) or a code span — nor notify anyone or link
// anywhere when the comment is posted: an @mention and a bare URL get a
// zero-width space (as an entity) after "@" or the scheme, which GitHub
// and GitLab show as nothing and neither mention nor link.
func mdEscape(s string) string {
	s = Visible(mdEscaper.Replace(s))
	s = mention.ReplaceAllString(s, "$1@&#8203;$2")
	s = bareURL.ReplaceAllString(s, "$1:&#8203;//")
	return bareWWW.ReplaceAllString(s, "$1&#8203;.")
}

var (
	// mention is an @ that does not follow a letter, digit or _: GitHub
	// and GitLab mention after any other character (.@x, -@x, +@org/x);
	// an email's @ follows its local part.
	mention = regexp.MustCompile(`(^|[^\pL\pN_])@([\pL\pN_])`)
	bareURL = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*):\/\/`)
	bareWWW = regexp.MustCompile(`(?i)\b(www)\.`)
)

var mdEscaper = strings.NewReplacer("\\", `\\`, "|", `\|`, "<", "&lt;", ">", "&gt;", "&", "&amp;", "*", `\*`, "_", `\_`,
	"`", "\\`", "[", `\[`, "]", `\]`, "\r\n", " ", "\n", " ", "\r", " ")

// mdCode writes s as a code span inside a table: no backtick can end it,
// no newline or pipe can end the cell.
func mdCode(s string) string {
	return "`" + Visible(strings.NewReplacer("`", "'", "\r\n", " ", "\n", " ", "\r", " ", "|", `\|`).Replace(s)) + "`"
}

// Field is a value from an account, a repository or a daemon, made safe
// for one field of terminal output: on one line (newlines as ⏎), no tab
// to shift a column, and control, invisible and direction-changing
// characters as escapes. A user-group name cannot forge a line.
func Field(s string) string {
	return strings.ReplaceAll(oneLine(s), "\t", " ")
}

// oneLine flattens a value a repository supplies onto one line of text
// output, so that it cannot fake lines of a plan, and makes its control,
// invisible and direction-changing characters visible (\x1b[8m would
// otherwise pass as a colour and hide what follows).
func oneLine(s string) string {
	return Visible(strings.NewReplacer("\r\n", " ⏎ ", "\n", " ⏎ ", "\r", " ⏎ ").Replace(s))
}

// Visible writes control, invisible and direction-changing characters as
// escapes (\x1b, \u202e).
func Visible(s string) string {
	if !strings.ContainsFunc(s, hidden) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if hidden(r) {
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// hidden reports characters that are not what they seem on a screen:
// controls (tab and newline aside), line separators, and format
// characters — zero-width, joiners, direction overrides.
func hidden(r rune) bool {
	return isControl(r) || unicode.Is(unicode.Cf, r)
}

// sgr matches the colour sequences text output paints with.
var sgr = regexp.MustCompile(`^\x1b\[[0-9;]*m`)

// terminalSafe makes control characters other than newline and tab
// visible (\x1b, \u0085...), keeping only colour sequences: a reason or a
// file name cannot move the cursor, clear the screen or retitle the
// terminal of the person reviewing a plan.
func terminalSafe(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if m := sgr.FindString(s[i:]); m != "" {
			b.WriteString(m)
			i += len(m)
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if isControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func isControl(r rune) bool {
	return r != '\n' && r != '\t' && (unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r))
}
