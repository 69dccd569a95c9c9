package suggest

import (
	"sort"
	"strings"
)

// Closest returns up to n candidates that are close to name, closest first.
// A candidate is close when its edit distance to name (ignoring case) is at
// most a third of the longer length (and at least 2), when one contains
// the other, or when every word of name is a word of the candidate. Ties are broken alphabetically so the output is stable.
func Closest(name string, candidates []string, n int) []string {
	type scored struct {
		s string
		d int
	}
	lname := strings.ToLower(name)
	var found []scored
	for _, c := range candidates {
		lc := strings.ToLower(c)
		d := Distance(lname, lc)
		limit := max(2, max(len(lname), len(lc))/3)
		if d <= limit || (len(lname) >= 3 && strings.Contains(lc, lname)) || (len(lc) >= 3 && strings.Contains(lname, lc)) || wordsWithin(lname, lc) {
			found = append(found, scored{c, d})
		}
	}
	sort.Slice(found, func(i, j int) bool {
		if found[i].d != found[j].d {
			return found[i].d < found[j].d
		}
		return found[i].s < found[j].s
	})
	var out []string
	for _, f := range found {
		if len(out) == n {
			break
		}
		out = append(out, f.s)
	}
	return out
}

// wordsWithin reports whether every word of a (two or more) is a word of b:
// "workers admin" is within "workers platform admin".
func wordsWithin(a, b string) bool {
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool {
			return !('a' <= r && r <= 'z' || '0' <= r && r <= '9')
		})
	}
	aw, bw := split(a), split(b)
	if len(aw) < 2 {
		return false
	}
	for _, w := range aw {
		found := false
		for _, x := range bw {
			if w == x {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Hint formats the closest candidates as a suffix for an error message:
// ` (did you mean "a" or "b"?)`, or "" when none is close.
func Hint(name string, candidates []string) string {
	c := Closest(name, candidates, 2)
	switch len(c) {
	case 0:
		return ""
	case 1:
		return ` (did you mean "` + c[0] + `"?)`
	default:
		return ` (did you mean "` + c[0] + `" or "` + c[1] + `"?)`
	}
}

// Distance is the Levenshtein edit distance between a and b, in bytes.
func Distance(a, b string) int {
	if len(a) < len(b) {
		a, b = b, a
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
