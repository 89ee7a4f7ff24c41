package expr

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/sluicehq/sluice/internal/didyoumean"
)

// suggest returns ` (did you mean "x"?)` naming the candidate closest to
// name, or "" when none is close: a case-insensitive match, or one within
// edit distance 2 (didyoumean.Distance) that is shorter than name itself
// (so that "x" does not suggest "id").
func suggest(name string, candidates []string) string {
	best, bestD := "", 3
	n := utf8.RuneCountInString(name)
	for _, c := range candidates {
		d := 0 // a case-insensitive match beats any edit
		if !strings.EqualFold(c, name) {
			d = max(didyoumean.Distance(strings.ToLower(name), strings.ToLower(c)), 1)
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
