package desired

import (
	"fmt"
	"unicode"
)

// emailProblem says what makes an email look like another address:
// invisible or direction-changing characters, always (a zero-width space,
// a right-to-left override); any character outside ASCII, unless unicode
// emails are allowed (a Cyrillic "а" in a domain, full-width letters).
// "" when there is none.
func emailProblem(s string, allowUnicode bool) string {
	for _, r := range s {
		switch {
		case unicode.In(r, unicode.Cf, unicode.Bidi_Control, unicode.Join_Control, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point):
			return fmt.Sprintf("has the invisible or direction-changing character U+%04X: it would look like another address", r)
		case r > unicode.MaxASCII && !allowUnicode:
			return fmt.Sprintf("has the character U+%04X, outside ASCII: it can make it look like another address; write it in ASCII, or pass --allow-unicode-emails", r)
		}
	}
	return ""
}

// Lookalike says why an email (allowed with --allow-unicode-emails) may
// pass for another at a glance — letters of several scripts, full-width
// forms — or "" when it cannot. Plans flag it as a risk.
func Lookalike(email string) string {
	scripts := map[string]bool{}
	for _, r := range email {
		if r >= 0xFF00 && r <= 0xFFEF {
			return "full-width characters in the email"
		}
		if !unicode.IsLetter(r) {
			continue
		}
		for name, table := range lookalikeScripts {
			if unicode.Is(table, r) {
				scripts[name] = true
			}
		}
	}
	if len(scripts) > 1 {
		return "letters of several scripts in the email"
	}
	return ""
}

var lookalikeScripts = map[string]*unicode.RangeTable{
	"Latin": unicode.Latin, "Cyrillic": unicode.Cyrillic, "Greek": unicode.Greek, "Armenian": unicode.Armenian,
	"Hebrew": unicode.Hebrew, "Arabic": unicode.Arabic, "Han": unicode.Han, "Hiragana": unicode.Hiragana,
	"Katakana": unicode.Katakana, "Hangul": unicode.Hangul, "Thai": unicode.Thai, "Devanagari": unicode.Devanagari,
	"Georgian": unicode.Georgian, "Cherokee": unicode.Cherokee,
}
