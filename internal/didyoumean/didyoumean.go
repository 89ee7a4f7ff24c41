// Package didyoumean finds the likely intended name among candidates, for
// error messages that end with ` (did you mean "x"?)`. It is the one
// edit-distance helper of the module (plans, schedule and dataset/expr).
package didyoumean

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Suggest is ` (did you mean "x"?)` for the candidate closest to s, or ""
// when none is close enough to be a likely typo.
func Suggest(s string, candidates []string) string {
	if c := Closest(s, candidates); c != "" {
		return fmt.Sprintf(" (did you mean %q?)", c)
	}
	return ""
}

// Closest is the candidate within an edit distance of about a third of its
// length (at least 1, at most 3) of s, or that starts with s (of 3
// characters or more), case-insensitively; ties go to the first candidate.
func Closest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	ls := strings.ToLower(s)
	for _, c := range candidates {
		if c == s {
			continue
		}
		lc := strings.ToLower(c)
		d := Distance(ls, lc)
		limit := min(max(utf8.RuneCountInString(c)/3, 1), 3)
		if utf8.RuneCountInString(s) >= 3 && strings.HasPrefix(lc, ls) {
			d = limit // an abbreviation: "desc" for "descending"
		}
		if d <= limit && d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// Distance is the optimal string alignment distance (Levenshtein plus
// transpositions of neighbours, so "fliter" is one edit from "filter").
func Distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
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
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
