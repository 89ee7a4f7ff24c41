package expr

import (
	"errors"
	"fmt"
	"testing"
)

func TestParseCanonical(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"price > 50 AND category IN ('c1','c7')", "price > 50 AND category IN ('c1', 'c7')"},
		{"a+b*c", "a + b * c"},
		{"(a+b)*c", "(a + b) * c"},
		{"a-(b-c)", "a - (b - c)"},
		{"(a-b)-c", "a - b - c"},
		{"a / (b * c)", "a / (b * c)"},
		{"a % b % c", "a % b % c"},
		{"-a * b", "-a * b"},
		{"-(a * b)", "-(a * b)"},
		{"- -a", "-(-a)"},
		{"2 - -3", "2 - -3"},
		{"2--3", "2 - -3"},
		{"-(-3)", "-(-3)"},
		{"a == 1", "a = 1"},
		{"a <> 1", "a != 1"},
		{"not a and b or c", "NOT a AND b OR c"},
		{"NOT (a AND b)", "NOT (a AND b)"},
		{"a OR (b OR c)", "a OR (b OR c)"},
		{"(a OR b) AND c", "(a OR b) AND c"},
		{"NOT a = b", "NOT a = b"},
		{"(NOT a) = b", "(NOT a) = b"},
		{"a = (b = c)", "a = (b = c)"},
		{"a is null", "a IS NULL"},
		{"a IS NOT NULL AND b is not null", "a IS NOT NULL AND b IS NOT NULL"},
		{"a + 1 IS NULL", "a + 1 IS NULL"},
		{"-(a IS NULL)", "-(a IS NULL)"},
		{"x not in (1, -2, 3.5, 'a', NULL, TRUE)", "x NOT IN (1, -2, 3.5, 'a', NULL, TRUE)"},
		{"x between 1 and 2 AND y", "x BETWEEN 1 AND 2 AND y"},
		{"x NOT BETWEEN a+1 AND (b AND c)", "x NOT BETWEEN a + 1 AND (b AND c)"},
		{"case when a then 1 when b then 2 else 3 end", "CASE WHEN a THEN 1 WHEN b THEN 2 ELSE 3 END"},
		{"LOWER(Name)", "lower(Name)"},
		{"concat()", "concat()"},
		{"cast(x as INTEGER)", "CAST(x AS int32)"},
		{"CAST(x AS double)", "CAST(x AS float64)"},
		{`"odd name" + "a""b"`, `"odd name" + "a""b"`},
		{`"and" OR "select"`, `"and" OR select`},
		{`"plain"`, "plain"},
		{"'it''s'", "'it''s'"},
		{"1.0", "1.0"},
		{"1.", "1.0"},
		{".5", "0.5"},
		{"1e3", "1000.0"},
		{"1.5E-7", "1.5e-07"},
		{"-0.0", "-0.0"},
		{"-9223372036854775808", "-9223372036854775808"},
		{"timestamp '2024-01-02 03:04:05.250'", "TIMESTAMP '2024-01-02 03:04:05.25'"},
		{"TIMESTAMP '2024-01-02T03:04:05+01:00'", "TIMESTAMP '2024-01-02 02:04:05'"},
		{"date '2024-02-29'", "DATE '2024-02-29'"},
		{"date = DATE '2024-01-01'", "date = DATE '2024-01-01'"},
		{"timestamp(x)", "timestamp(x)"},
		{"a\n  AND\tb", "a AND b"},
		{"true AND false OR null", "TRUE AND FALSE OR NULL"},
		{"((((a))))", "a"},
	} {
		e, err := Parse(tc.src)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.src, err)
			continue
		}
		if got := e.String(); got != tc.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.src, got, tc.want)
		}
		e2, err := Parse(e.String())
		if err != nil {
			t.Errorf("reparse %q: %v", e.String(), err)
			continue
		}
		if e2.String() != e.String() {
			t.Errorf("round trip of %q: %q", e.String(), e2.String())
		}
	}
}

func TestParsePositions(t *testing.T) {
	e, err := Parse("a AND\n  b  >  'x'")
	if err != nil {
		t.Fatal(err)
	}
	and := e.(*Binary)
	cmp := and.Y.(*Binary)
	for _, tc := range []struct {
		node Expr
		want Pos
	}{
		{and, Pos{1, 3}},
		{and.X, Pos{1, 1}},
		{cmp, Pos{2, 6}},
		{cmp.X, Pos{2, 3}},
		{cmp.Y, Pos{2, 9}},
	} {
		if got := tc.node.Pos(); got != tc.want {
			t.Errorf("%s: Pos = %v, want %v", tc.node, got, tc.want)
		}
	}
	// Columns count runes, not bytes.
	_, err = Parse("'ünï' = )")
	var pe *Error
	if !errors.As(err, &pe) || pe.Pos != (Pos{1, 9}) {
		t.Errorf("error %v, want position 1:9", err)
	}
}

func TestWalk(t *testing.T) {
	e, err := Parse("CASE WHEN a IN (1, 2) THEN f(b, c) ELSE -d END BETWEEN e AND CAST(g AS int)")
	if err != nil {
		t.Fatal(err)
	}
	var cols []string
	Walk(e, func(e Expr) bool {
		if c, ok := e.(*Column); ok {
			cols = append(cols, c.Name)
		}
		return true
	})
	if got, want := fmt.Sprint(cols), "[a b c d e g]"; got != want {
		t.Errorf("Walk visited columns %s, want %s", got, want)
	}
}
