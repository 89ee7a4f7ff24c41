package expr

import (
	"errors"
	"strings"
	"testing"
)

// TestMoreFunctions: expected values are worked out by hand from the
// fixture rows (i: 1 2 null -4 5; i32: 10 20 30 null 50; f: 1.5 -2.5 null
// 0 10; s: "apple" "Banana" null "" "  pad  ").
func TestMoreFunctions(t *testing.T) {
	runEvalCases(t, []evalCase{
		// LIKE / ILIKE: % any run, _ one character, \ escapes; NULL stays NULL.
		{"s LIKE 'a%'", "bool", []any{true, false, N, false, false}},
		{"s LIKE '%an%'", "bool", []any{false, true, N, false, false}},
		{"s ILIKE 'b%A'", "bool", []any{false, true, N, false, false}},
		{"s NOT LIKE '_pple'", "bool", []any{false, true, N, true, true}},
		{"s LIKE ''", "bool", []any{false, false, N, true, false}},
		{"'50%' LIKE '50\\%'", "bool", five(true)},
		{"'a.c' LIKE 'a.c' AND NOT 'abc' LIKE 'a.c'", "bool", five(true)},
		{"cat LIKE 'c_'", "bool", []any{true, true, N, true, true}},
		// nullif, if, greatest, least.
		{"nullif(i, 2)", "int64", []any{1, N, N, -4, 5}},
		{"if(i > 1, 'big', 'small')", "string", []any{"small", "big", "small", "small", "big"}},
		{"greatest(i, i32)", "int64", []any{10, 20, 30, -4, 50}},
		{"least(i, i32, 3)", "int64", []any{1, 2, 3, -4, 3}},
		{"greatest(f, i)", "float64", []any{1.5, 2.0, N, 0.0, 10.0}},
		{"least(NULL, f)", "float64", []any{1.5, -2.5, N, 0.0, 10.0}},
		// Math in float64.
		{"sqrt(i32)", "float64", []any{3.1622776601683795, 4.47213595499958, 5.477225575051661, N, 7.0710678118654755}},
		{"power(i, 2)", "float64", []any{1.0, 4.0, N, 16.0, 25.0}},
		{"power(2, -1)", "float64", five(0.5)},
		{"ln(exp(1))", "float64", five(1.0)},
		{"log10(i32)", "float64", []any{1.0, 1.3010299956639813, 1.4771212547196624, N, 1.6989700043360187}},
		{"exp(0)", "float64", five(1.0)},
		// replace and regexp_replace.
		{"replace(s, 'p', 'P')", "string", []any{"aPPle", "Banana", N, "", "  Pad  "}},
		{"replace(s, 'an', '')", "string", []any{"apple", "Ba", N, "", "  pad  "}},
		{"regexp_replace(s, '[aeiou]', '*')", "string", []any{"*pple", "B*nana", N, "", "  p*d  "}},
		{"regexp_replace(s, '[aeiou]', '*', 'g')", "string", []any{"*ppl*", "B*n*n*", N, "", "  p*d  "}},
		{"regexp_replace(s, '(a)(n)', '\\2\\1$', 'g')", "string", []any{"apple", "Bna$na$a", N, "", "  pad  "}},
	})
	// "Bna$na$a" above: "Banana" has "an" at bytes 1 and 3; each becomes "na$".
	runEvalErrors(t, [][2]string{
		{"sqrt(f)", `expr: 1:1: sqrt: cannot take the square root of a negative number`},
		{"ln(i32 - 10)", `expr: 1:1: ln: cannot take the logarithm of zero`},
		{"power(0, -1)", `expr: 1:1: power: cannot raise zero to a negative power`},
	})
}

// TestNotSupported: well-known SQL the language lacks says so, rather than
// a wrong "did you mean".
func TestNotSupported(t *testing.T) {
	for _, src := range []string{"to_timestamp(s)", "split_part(s, ',', 1)", "sum(i) > 1"} {
		_, err := Compile(src, fixtureSchema)
		if err == nil || !strings.Contains(err.Error(), "is not supported (the functions are: ") || !errors.Is(err, ErrUnknownFunction) {
			t.Errorf("%s: %v", src, err)
		}
	}
	_, err := Compile("lowr(s)", fixtureSchema)
	if err == nil || !strings.Contains(err.Error(), `unknown function "lowr" (did you mean "lower"?)`) {
		t.Errorf("lowr: %v", err)
	}
	for _, tc := range [][2]string{
		{"greatest(i, s)", "function greatest: argument 2 is"},
		{"s LIKE i", "function like expects a string literal pattern as argument 2"},
		{"nullif(i)", "function nullif expects 2 arguments, got 1"},
	} {
		if _, err := Compile(tc[0], fixtureSchema); err == nil || !strings.Contains(err.Error(), tc[1]) {
			t.Errorf("%s: %v, want %q", tc[0], err, tc[1])
		}
	}
}

// TestDateTruncDiff: by hand from the fixture's ts (2024-01-02 03:04:05,
// 2023-12-31 23:59:59, null, 1969-12-31 23:00:00, 2024-02-29 12:00:00; a
// Tuesday, a Sunday, -, a Wednesday, a Thursday) and d.
func TestDateTruncDiff(t *testing.T) {
	runEvalCases(t, []evalCase{
		{"date_trunc('day', ts)", "timestamp[us]", []any{"2024-01-02 00:00:00", "2023-12-31 00:00:00", N, "1969-12-31 00:00:00", "2024-02-29 00:00:00"}},
		{"date_trunc('hour', ts)", "timestamp[us]", []any{"2024-01-02 03:00:00", "2023-12-31 23:00:00", N, "1969-12-31 23:00:00", "2024-02-29 12:00:00"}},
		{"date_trunc('week', ts)", "timestamp[us]", []any{"2024-01-01 00:00:00", "2023-12-25 00:00:00", N, "1969-12-29 00:00:00", "2024-02-26 00:00:00"}},
		{"date_trunc('month', d)", "timestamp[us]", []any{"2024-01-01 00:00:00", "2023-12-01 00:00:00", N, "1969-12-01 00:00:00", "2024-02-01 00:00:00"}},
		{"date_trunc('quarter', ts)", "timestamp[us]", []any{"2024-01-01 00:00:00", "2023-10-01 00:00:00", N, "1969-10-01 00:00:00", "2024-01-01 00:00:00"}},
		{"date_trunc('years', ts)", "timestamp[us]", []any{"2024-01-01 00:00:00", "2023-01-01 00:00:00", N, "1969-01-01 00:00:00", "2024-01-01 00:00:00"}},
		{"date_diff('day', d, ts)", "int64", []any{0, 0, N, 0, 0}},
		{"date_diff('day', TIMESTAMP '2024-01-01 23:00:00', ts)", "int64", []any{1, -1, N, -19724, 59}},
		// 1969-12-31 23:00 to 2024-01-02 04:00: 19725 days (1970-01-01 to
		// 2024-01-01 is 54*365+13 leap days = 19723) = 473400 h - 23 + 4.
		{"date_diff('hour', ts, TIMESTAMP '2024-01-02 04:00:00')", "int64", []any{1, 29, N, 473381, -1400}},
		{"date_diff('month', ts, DATE '2024-03-01')", "int64", []any{2, 3, N, 651, 1}},
		{"date_diff('year', d, DATE '2024-01-01')", "int64", []any{0, 1, N, 55, 0}},
		// Monday 1969-12-29 to Monday 2024-01-01: 3 + 19723 days = 2818 weeks.
		{"date_diff('week', DATE '2024-01-01', ts)", "int64", []any{0, -1, N, -2818, 8}},
	})
	runEvalCases(t, []evalCase{
		{"strftime(ts, '%Y-%m-%d %H:%M:%S.%f')", "string", []any{"2024-01-02 03:04:05.000000", "2023-12-31 23:59:59.000000", N, "1969-12-31 23:00:00.000000", "2024-02-29 12:00:00.000000"}},
		{"strftime(d, '%j %a %b %y 100%%')", "string", []any{"002 Tue Jan 24 100%", "365 Sun Dec 23 100%", N, "365 Wed Dec 69 100%", "060 Thu Feb 24 100%"}},
		{"strftime(TIMESTAMP '2024-03-04 15:06:07.25', '%I%p %F %T.%f')", "string", five("03PM 2024-03-04 15:06:07.250000")},
	})
	if _, err := Compile("strftime(ts, '%Q')", fixtureSchema); err == nil || !strings.Contains(err.Error(), "strftime: %Q is not supported") {
		t.Errorf("bad code: %v", err)
	}
	if _, err := Compile("date_trunc('fortnight', ts)", fixtureSchema); err == nil || !strings.Contains(err.Error(), `unknown unit 'fortnight'`) {
		t.Errorf("bad unit: %v", err)
	}
}
