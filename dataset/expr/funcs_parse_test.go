package expr

import (
	"strings"
	"testing"
)

// TestInterval: by hand from the fixture's ts (2024-01-02 03:04:05,
// 2023-12-31 23:59:59, null, 1969-12-31 23:00:00, 2024-02-29 12:00:00) and
// d (2024-01-02, 2023-12-31, null, 1969-12-31, 2024-02-29). Months clamp
// the day to the month's last, as in DuckDB and PostgreSQL.
func TestInterval(t *testing.T) {
	runEvalCases(t, []evalCase{
		{"ts + INTERVAL '1 day'", "timestamp[us]", []any{"2024-01-03 03:04:05", "2024-01-01 23:59:59", N, "1970-01-01 23:00:00", "2024-03-01 12:00:00"}},
		{"ts + INTERVAL 1 MONTH", "timestamp[us]", []any{"2024-02-02 03:04:05", "2024-01-31 23:59:59", N, "1970-01-31 23:00:00", "2024-03-29 12:00:00"}},
		{"ts - INTERVAL '1 year'", "timestamp[us]", []any{"2023-01-02 03:04:05", "2022-12-31 23:59:59", N, "1968-12-31 23:00:00", "2023-02-28 12:00:00"}},
		{"ts + INTERVAL '-90 minutes'", "timestamp[us]", []any{"2024-01-02 01:34:05", "2023-12-31 22:29:59", N, "1969-12-31 21:30:00", "2024-02-29 10:30:00"}},
		{"d + INTERVAL '2 hours 30 minutes'", "timestamp[us]", []any{"2024-01-02 02:30:00", "2023-12-31 02:30:00", N, "1969-12-31 02:30:00", "2024-02-29 02:30:00"}},
		{"tsz + INTERVAL '1' DAY", "timestamp[us]", []any{"2024-01-02 23:30:00", "2024-01-03 00:00:00", N, "1970-01-01 21:59:59", "2024-03-01 23:00:00"}},
		{"INTERVAL '1 month' + TIMESTAMP '2024-01-31 10:00:00'", "timestamp[us]", five("2024-02-29 10:00:00")},
		{"TIMESTAMP '2024-03-31' - INTERVAL '1' MONTH", "timestamp[us]", five("2024-02-29 00:00:00")},
		{"TIMESTAMP '2024-01-15' - INTERVAL '13 months'", "timestamp[us]", five("2022-12-15 00:00:00")},
		{"TIMESTAMP '2024-01-01' + INTERVAL '1 week 1500 milliseconds'", "timestamp[us]", five("2024-01-08 00:00:01.5")},
		{"ts + INTERVAL '1 day' > TIMESTAMP '2024-01-03'", "bool", []any{true, false, N, false, true}},
		{"NULL + INTERVAL '1 day'", "timestamp[us]", five(N)},
	})
	for _, tc := range [][2]string{
		{"INTERVAL '1 day' - ts", `expr: 1:18: cannot apply "-" to interval literal INTERVAL '1 day' and timestamp[us] "ts": an INTERVAL can be added to a timestamp or date, or subtracted from one`},
		{"ts * INTERVAL '1 day'", `expr: 1:4: cannot apply "*" to timestamp[us] "ts" and interval literal INTERVAL '1 day': an INTERVAL can be added to a timestamp or date, or subtracted from one`},
		{"i + INTERVAL '1 day'", `expr: 1:3: cannot apply "+" to int64 "i" and interval literal INTERVAL '1 day': an INTERVAL can be added to a timestamp or date only`},
		{"ts + INTERVAL '1 fortnight'", `expr: 1:15: invalid INTERVAL '1 fortnight': unknown unit "fortnight" (want year, quarter, month, week, day, hour, minute, second, millisecond, microsecond)`},
		{"ts + INTERVAL 3", `expr: 1:16: INTERVAL 3 needs a unit (year, quarter, month, week, day, hour, minute, second, millisecond, microsecond)`},
		{"ts + INTERVAL 'one day'", `expr: 1:15: invalid INTERVAL 'one day': "one" is not a whole number`},
	} {
		if _, err := Compile(tc[0], fixtureSchema); err == nil || err.Error() != tc[1] {
			t.Errorf("%s:\n got  %v\n want %s", tc[0], err, tc[1])
		}
	}
	// The canonical form reads back to the same expression.
	for src, want := range map[string]string{
		"ts + INTERVAL 90 MINUTES":                "ts + INTERVAL '90 minutes'",
		"ts - interval '1 year 2 days 3 seconds'": "ts - INTERVAL '12 months 2 days 3 seconds'",
	} {
		e, err := Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		if e.String() != want {
			t.Errorf("%s: String() = %s, want %s", src, e.String(), want)
		}
		if back, err := Parse(e.String()); err != nil || back.String() != want {
			t.Errorf("%s: reparsed: %v, %v", want, back, err)
		}
	}
}

// TestStrptimeSplit: by hand; strptime reads back what strftime wrote
// (to the minute here), and split follows DuckDB's string_split.
func TestStrptimeSplit(t *testing.T) {
	runEvalCases(t, []evalCase{
		{"strptime(strftime(ts, '%d/%m/%Y %I:%M %p'), '%d/%m/%Y %I:%M %p')", "timestamp[us]", []any{"2024-01-02 03:04:00", "2023-12-31 23:59:00", N, "1969-12-31 23:00:00", "2024-02-29 12:00:00"}},
		{"strptime('20240102', '%Y%m%d')", "timestamp[us]", five("2024-01-02 00:00:00")},
		{"strptime('5 Mar 2024 7:08:09.25', '%d %b %Y %H:%M:%S.%f')", "timestamp[us]", five("2024-03-05 07:08:09.25")},
		{"strptime('2024-366T00:00:00', '%Y-%jT%T')", "timestamp[us]", five("2024-12-31 00:00:00")},
		{"strptime(NULL, '%Y')", "timestamp[us]", five(N)},
		{"split(s, 'a')", "list<string>", []any{"[, pple]", "[B, n, n, ]", N, "[]", "[  p, d  ]"}},
		{"split('a,,b', ',')", "list<string>", five("[a, , b]")},
		{"string_split('héj', '')", "list<string>", five("[h, é, j]")},
	})
	runEvalErrors(t, [][2]string{
		{"strptime(s, '%Y')", `expr: 1:1: strptime: 'apple' does not match the format '%Y'`},
	})
	for _, tc := range [][2]string{
		{"strptime(s, '%Q')", "strptime: %Q is not supported"},
		{"strptime(s, '%Y 2')", `strptime: the literal text ' 2' holds '2'`},
		{"strptime(s, '%f')", "strptime: %f must follow %S."},
		{"split(s, s)", "function split expects a string literal separator as argument 2"},
	} {
		if _, err := Compile(tc[0], fixtureSchema); err == nil || !strings.Contains(err.Error(), tc[1]) {
			t.Errorf("%s: %v, want %q", tc[0], err, tc[1])
		}
	}
}
