package plans

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestPosAt checks that a character of a scalar's value maps to its place
// in the file for every scalar style.
func TestPosAt(t *testing.T) {
	for _, tc := range []struct{ name, filter string }{
		{"plain", "filter: price > 5 AND Zed = 1"},
		{"double quoted with escapes", `filter: "a = \"q\" AND \u00e9 = 'x' AND Zed = 1"`},
		{"single quoted", `filter: 'a = ''q'' AND Zed = 1'`},
		{"folded", "filter: >\n      price > 5\n      AND Zed = 1"},
		{"folded, strip", "filter: >-\n      price > 5\n\n      AND Zed = 1"},
		{"literal", "filter: |\n      price > 5\n      AND Zed = 1\n"},
		{"plain on two lines", "filter: price > 5\n      AND Zed = 1"},
		{"double quoted on two lines", "filter: \"price > 5\n      AND Zed = 1\""},
		{"non-ASCII before", "filter: \"é = 'ü' AND Zed\""},
		{"flow mapping", "{filter: \"a = 1 AND Zed = 2\"}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "name: x\nread: {parquet: in}\nsteps:\n  - " + tc.filter + "\nwrite: {parquet: out}\n"
			p := parseOK(t, src)
			f := p.Steps[0].(*Filter)
			i := utf8.RuneCountInString(f.Expr[:strings.IndexByte(f.Expr, 'Z')])
			got := p.posAt(f.node, i)
			off := strings.Index(src, "Zed")
			want := Pos{Line: strings.Count(src[:off], "\n") + 1}
			want.Col = utf8.RuneCountInString(src[strings.LastIndexByte(src[:off], '\n')+1:off]) + 1
			if got != want {
				t.Errorf("posAt(%q, %d) = %v, want %v", f.Expr, i, got, want)
			}
		})
	}
}

func TestMapRendered(t *testing.T) {
	raw := []rune("day = '{{ .Params.day }}' AND x")
	val := []rune("day = '2024-01-02' AND x")
	for _, tc := range []struct{ i, want int }{
		{0, 0}, {6, 6}, // before the action: exact
		{7, 7}, {12, 7}, // inside the substitution: its start
		{17, 24}, {23, 30}, // after: exact, from the end
	} {
		if got := mapRendered(raw, val, tc.i); got != tc.want {
			t.Errorf("mapRendered(%d) = %d, want %d", tc.i, got, tc.want)
		}
	}
}
