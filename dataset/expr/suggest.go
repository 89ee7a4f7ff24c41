package expr

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// suggest returns ` (did you mean "x"?)` naming the candidate closest to
// name, or "" when none is close: a case-insensitive match, or one within
// Levenshtein distance 2 that is shorter than name itself (so that "x"
// does not suggest "id").
func suggest(name string, candidates []string) string {
	best, bestD := "", 3
	n := utf8.RuneCountInString(name)
	for _, c := range candidates {
		d := 0 // a case-insensitive match beats any edit
		if !strings.EqualFold(c, name) {
			d = max(levenshtein(strings.ToLower(name), strings.ToLower(c)), 1)
			if d >= n {
				continue
			}
		}
		if d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// levenshtein is the edit distance between a and b, in runes.
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
