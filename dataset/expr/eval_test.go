package expr

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

const N = "null" // marks a NULL in expectations below; replaced by nil

type evalCase struct {
	src  string
	typ  string // typeName of the result
	want []any
}

func five(v any) []any { return []any{v, v, v, v, v} }

// Expected values are worked out by hand from the fixture rows documented
// on fixture.
var evalCases = []evalCase{
	// Column references and literals.
	{"i", "int64", []any{1, 2, N, -4, 5}},
	{`"odd name" * 10`, "int64", []any{10, 20, 30, 40, 50}},
	{"'x'", "string", five("x")},
	{"TRUE", "bool", five(true)},
	{"1.5e3", "float64", five(1500.0)},
	{"-9223372036854775808", "int64", five(int64(-9223372036854775808))},
	{"TIMESTAMP '2024-01-02 03:04:05'", "timestamp[us]", five("2024-01-02 03:04:05")},
	{"DATE '2024-01-02'", "date", five("2024-01-02")},

	// Arithmetic: ints widen to int64, floats to float64, / is float.
	{"i + 1", "int64", []any{2, 3, N, -3, 6}},
	{"i - i32", "int64", []any{-9, -18, N, N, -45}},
	{"i * 2", "int64", []any{2, 4, N, -8, 10}},
	{"i * f", "float64", []any{1.5, -5.0, N, 0.0, 50.0}},
	{"i32 + 1", "int64", []any{11, 21, 31, N, 51}},
	{"u8 + 1", "int64", []any{2, 3, 4, 5, 256}},
	{"f - 0.5", "float64", []any{1.0, -3.0, N, -0.5, 9.5}},
	{"f32 * 2", "float64", []any{1.0, N, 4.0, -2.0, 6.5}},
	{"i / 2", "float64", []any{0.5, 1.0, N, -2.0, 2.5}},
	{"10 / i", "float64", []any{10.0, 5.0, N, -2.5, 2.0}},
	{"i / 0", "float64", five(N)},
	{"f / f", "float64", []any{1.0, 1.0, N, N, 1.0}},
	{"i % 3", "int64", []any{1, 2, N, -1, 2}},
	{"i % 0", "int64", five(N)},
	{"f % 2", "float64", []any{1.5, -0.5, N, 0.0, 0.0}},
	{"-i", "int64", []any{-1, -2, N, 4, -5}},
	{"-f", "float64", []any{-1.5, 2.5, N, 0.0, -10.0}},
	{"- -i", "int64", []any{1, 2, N, -4, 5}},
	{"1 + 2 * 3", "int64", five(7)},
	{"(1 + 2) * 3", "int64", five(9)},
	{"2 - 3 - 4", "int64", five(-5)},
	{"7 / 2", "float64", five(3.5)},
	{"i + NULL", "int64", five(N)},

	// Comparisons.
	{"i > 1", "bool", []any{false, true, N, false, true}},
	{"i = 2", "bool", []any{false, true, N, false, false}},
	{"i == 2", "bool", []any{false, true, N, false, false}},
	{"i != 2", "bool", []any{true, false, N, true, true}},
	{"i <> 2", "bool", []any{true, false, N, true, true}},
	{"i < 2", "bool", []any{true, false, N, true, false}},
	{"i <= 2", "bool", []any{true, true, N, true, false}},
	{"i >= 2", "bool", []any{false, true, N, false, true}},
	{"1 < i", "bool", []any{false, true, N, false, true}},
	{"i32 > 25", "bool", []any{false, false, true, N, true}},
	{"i32 > 3000000000", "bool", []any{false, false, false, N, false}},
	{"i32 = i", "bool", []any{false, false, N, N, false}},
	{"u8 > 200", "bool", []any{false, false, false, false, true}},
	{"u8 = -1", "bool", five(false)},
	{"f > 1", "bool", []any{true, false, N, false, true}},
	{"f = i", "bool", []any{false, false, N, false, false}},
	{"i < f", "bool", []any{true, false, N, true, true}},
	{"f32 = 0.5", "bool", []any{true, N, false, false, false}},
	{"s = 'apple'", "bool", []any{true, false, N, false, false}},
	{"s > 'B'", "bool", []any{true, true, N, false, false}},
	{"s < 'apple'", "bool", []any{false, true, N, true, true}},
	{"b = TRUE", "bool", []any{true, false, N, true, false}},
	{"b != FALSE", "bool", []any{true, false, N, true, false}},
	{"ts > TIMESTAMP '2024-01-01'", "bool", []any{true, false, N, false, true}},
	{"ts >= '2024-01-02 03:04:05'", "bool", []any{true, false, N, false, true}},
	{"ts < DATE '2000-01-01'", "bool", []any{false, false, N, true, false}},
	{"ts > TIMESTAMP '2024-01-02 03:04:04.999999'", "bool", []any{true, false, N, false, true}},
	{"ts > TIMESTAMP '2024-01-02 03:04:05.0000001'", "bool", []any{false, false, N, false, true}},
	{"ts = d", "bool", []any{false, false, N, false, false}},
	{"d = DATE '2024-02-29'", "bool", []any{false, false, N, false, true}},
	{"d > '2023-12-31'", "bool", []any{true, false, N, false, true}},
	{"d < TIMESTAMP '2023-12-31 00:00:01'", "bool", []any{false, true, N, true, false}},
	{"tsz = TIMESTAMP '2024-01-02 00:00:00'", "bool", []any{false, true, N, false, false}},
	{"tsz > '2024-01-01 23:30:00Z'", "bool", []any{false, true, N, false, true}},
	{"cat = 'c1'", "bool", []any{true, false, N, true, false}},
	{"ls = 'y'", "bool", []any{false, true, N, false, false}},
	{"i = NULL", "bool", five(N)},
	{"NULL = NULL", "bool", five(N)},

	// IS [NOT] NULL.
	{"i IS NULL", "bool", []any{false, false, true, false, false}},
	{"i IS NOT NULL", "bool", []any{true, true, false, true, true}},
	{"u8 IS NULL", "bool", five(false)},
	{"NULL IS NULL", "bool", five(true)},
	{"cat IS NULL", "bool", []any{false, false, true, false, false}},
	{"i + i32 IS NULL", "bool", []any{false, false, true, true, false}},

	// [NOT] IN, with SQL NULL semantics.
	{"i IN (1, 5)", "bool", []any{true, false, N, false, true}},
	{"i NOT IN (1, 5)", "bool", []any{false, true, N, true, false}},
	{"i IN (1, NULL)", "bool", []any{true, N, N, N, N}},
	{"i NOT IN (1, NULL)", "bool", []any{false, N, N, N, N}},
	{"i IN (NULL)", "bool", five(N)},
	{"i32 IN (10, 3000000000)", "bool", []any{true, false, false, N, false}},
	{"f IN (1.5, 10)", "bool", []any{true, false, N, false, true}},
	{"f IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)", "bool", []any{false, false, N, false, true}},
	{"s IN ('apple', '', 'x')", "bool", []any{true, false, N, true, false}},
	{"s IN ('a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7', 'a8', 'apple')", "bool", []any{true, false, N, false, false}},
	{"s IN ('apple', 'a-very-long-string-here')", "bool", []any{true, false, N, false, false}},
	{"s NOT IN ('apple')", "bool", []any{false, true, N, true, true}},
	{"s IN ('apple', NULL)", "bool", []any{true, N, N, N, N}},
	{"ts IN ('2024-01-02 03:04:05', TIMESTAMP '2024-02-29 12:00:00')", "bool", []any{true, false, N, false, true}},
	{"d IN (DATE '2023-12-31')", "bool", []any{false, true, N, false, false}},
	{"b IN (TRUE)", "bool", []any{true, false, N, true, false}},
	{"u8 IN (255)", "bool", []any{false, false, false, false, true}},
	{"-i IN (-1, 4)", "bool", []any{true, false, N, true, false}},
	{"cat IN ('c1', 'c3')", "bool", []any{true, false, N, true, true}},

	// [NOT] BETWEEN.
	{"i BETWEEN 1 AND 2", "bool", []any{true, true, N, false, false}},
	{"i NOT BETWEEN 1 AND 2", "bool", []any{false, false, N, true, true}},
	{"f BETWEEN -3 AND 1.5", "bool", []any{true, true, N, true, false}},
	{"i BETWEEN NULL AND 2", "bool", []any{N, N, N, N, false}},
	{"s BETWEEN 'a' AND 'b'", "bool", []any{true, false, N, false, false}},
	{"ts BETWEEN '2024-01-01' AND '2024-12-31'", "bool", []any{true, false, N, false, true}},
	{"d NOT BETWEEN DATE '2000-01-01' AND DATE '2024-01-01'", "bool", []any{true, false, N, true, true}},

	// CASE.
	{"CASE WHEN i > 1 THEN 'big' ELSE 'small' END", "string", []any{"small", "big", "small", "small", "big"}},
	{"CASE WHEN i > 1 THEN 'big' END", "string", []any{N, "big", N, N, "big"}},
	{"CASE WHEN i IS NULL THEN 0 WHEN i < 0 THEN -1 ELSE i END", "int64", []any{1, 2, 0, -1, 5}},
	{"CASE WHEN b THEN f ELSE i END", "float64", []any{1.5, 2.0, N, 0.0, 5.0}},
	{"CASE WHEN b THEN ts END", "timestamp[us]", []any{"2024-01-02 03:04:05", N, N, "1969-12-31 23:00:00", N}},
	{"CASE WHEN FALSE THEN 1 WHEN i = 1 THEN 10 ELSE 20 END", "int64", []any{10, 20, 20, 20, 20}},
	{"CASE WHEN TRUE THEN s END", "string", []any{"apple", "Banana", N, "", "  pad  "}},
	{"CASE WHEN i = 2 THEN TRUE WHEN i = 5 THEN NULL ELSE b END", "bool", []any{true, true, N, true, N}},
	{"CASE WHEN i > 0 THEN d ELSE '2000-01-01' END", "date", []any{"2024-01-02", "2023-12-31", "2000-01-01", "2000-01-01", "2024-02-29"}},
	{"CASE WHEN u8 > 3 THEN u8 END", "uint8", []any{N, N, N, 4, 255}},
	{"CASE WHEN i = 1 THEN 1 WHEN i = 2 THEN 2.5 END", "float64", []any{1.0, 2.5, N, N, N}},
	{"CASE WHEN i = 1 THEN 'one' WHEN TRUE THEN 'other' END", "string", []any{"one", "other", "other", "other", "other"}},

	// String functions.
	{"length(s)", "int64", []any{5, 6, N, 0, 7}},
	{"length('héllo')", "int64", five(5)},
	{"lower(s)", "string", []any{"apple", "banana", N, "", "  pad  "}},
	{"upper(s)", "string", []any{"APPLE", "BANANA", N, "", "  PAD  "}},
	{"upper('élan ÿ')", "string", five("ÉLAN Ÿ")},
	{"lower('ÀÉÎ Abc')", "string", five("àéî abc")},
	{"lower(cat)", "string", []any{"c1", "c2", N, "c1", "c3"}},
	{"upper(ls)", "string", []any{"X", "Y", N, "Z", ""}},
	{"trim(s)", "string", []any{"apple", "Banana", N, "", "pad"}},
	{"substr(s, 2)", "string", []any{"pple", "anana", N, "", " pad  "}},
	{"substr(s, 2, 3)", "string", []any{"ppl", "ana", N, "", " pa"}},
	{"SUBSTRING(s, 0, 2)", "string", []any{"a", "B", N, "", " "}},
	{"substr(s, -1, 3)", "string", []any{"a", "B", N, "", " "}},
	{"substr(s, 10)", "string", []any{"", "", N, "", ""}},
	{"substr(s, 1, -1)", "string", []any{"", "", N, "", ""}},
	{"substr('héllo wörld', 2, 4)", "string", five("éllo")},
	{"substr(s, i)", "string", []any{"apple", "anana", N, "", "d  "}},
	{"concat(s, '-', i)", "string", []any{"apple-1", "Banana-2", "-", "--4", "  pad  -5"}},
	{"concat(f, '|', b, '|', d)", "string", []any{"1.5|true|2024-01-02", "-2.5|false|2023-12-31", "||", "0|true|1969-12-31", "10|false|2024-02-29"}},
	{"concat('a', NULL, 'b')", "string", five("ab")},
	{"contains(s, 'an')", "bool", []any{false, true, N, false, false}},
	{"contains(s, '')", "bool", []any{true, true, N, true, true}},
	{"starts_with(s, 'Ba')", "bool", []any{false, true, N, false, false}},
	{"ends_with(s, 'e')", "bool", []any{true, false, N, false, false}},
	{"regexp_match(s, '^[a-z]+$')", "bool", []any{true, false, N, false, false}},
	{"regexp_match(s, 'an{1}a')", "bool", []any{false, true, N, false, false}},
	{"Lower(S)", "", nil}, // column names are case-sensitive: an error, checked below

	// Numeric functions.
	{"abs(i)", "int64", []any{1, 2, N, 4, 5}},
	{"abs(f)", "float64", []any{1.5, 2.5, N, 0.0, 10.0}},
	{"round(f)", "float64", []any{2.0, -3.0, N, 0.0, 10.0}},
	{"round(f / 3, 2)", "float64", []any{0.5, -0.83, N, 0.0, 3.33}},
	{"round(i * 1234, -2)", "int64", []any{1200, 2500, N, -4900, 6200}},
	{"round(1250, -2)", "int64", five(1300)},
	{"round(-1250, -2)", "int64", five(-1300)},
	{"round(i)", "int64", []any{1, 2, N, -4, 5}},
	{"floor(f)", "float64", []any{1.0, -3.0, N, 0.0, 10.0}},
	{"ceil(f)", "float64", []any{2.0, -2.0, N, 0.0, 10.0}},
	{"floor(i)", "int64", []any{1, 2, N, -4, 5}},
	{"coalesce(i, i32, 0)", "int64", []any{1, 2, 30, -4, 5}},
	{"coalesce(i32, i)", "int64", []any{10, 20, 30, -4, 50}},
	{"coalesce(f, i)", "float64", []any{1.5, -2.5, N, 0.0, 10.0}},
	{"coalesce(s, 'none')", "string", []any{"apple", "Banana", "none", "", "  pad  "}},
	{"coalesce(NULL, 1)", "int64", five(1)},
	{"coalesce(b, FALSE)", "bool", []any{true, false, false, true, false}},
	{"coalesce(ts, TIMESTAMP '2000-01-01')", "timestamp[us]", []any{"2024-01-02 03:04:05", "2023-12-31 23:59:59", "2000-01-01 00:00:00", "1969-12-31 23:00:00", "2024-02-29 12:00:00"}},

	// Date parts.
	{"year(ts)", "int64", []any{2024, 2023, N, 1969, 2024}},
	{"month(ts)", "int64", []any{1, 12, N, 12, 2}},
	{"day(ts)", "int64", []any{2, 31, N, 31, 29}},
	{"hour(ts)", "int64", []any{3, 23, N, 23, 12}},
	{"year(d)", "int64", []any{2024, 2023, N, 1969, 2024}},
	{"month(d)", "int64", []any{1, 12, N, 12, 2}},
	{"day(d)", "int64", []any{2, 31, N, 31, 29}},
	{"hour(d)", "int64", []any{0, 0, N, 0, 0}},
	{"month(tsz)", "int64", []any{1, 1, N, 12, 3}},
	{"day(tsz)", "int64", []any{2, 2, N, 31, 1}},
	{"hour(tsz)", "int64", []any{1, 2, N, 23, 1}},
	{"year(DATE '1900-03-01')", "int64", five(1900)},

	// CAST.
	{"CAST(i AS string)", "string", []any{"1", "2", N, "-4", "5"}},
	{"CAST(f AS varchar)", "string", []any{"1.5", "-2.5", N, "0", "10"}},
	{"CAST(b AS string)", "string", []any{"true", "false", N, "true", "false"}},
	{"CAST(f AS int)", "int32", []any{2, -3, N, 0, 10}},
	{"CAST(f AS bigint)", "int64", []any{2, -3, N, 0, 10}},
	{"CAST(i AS double)", "float64", []any{1.0, 2.0, N, -4.0, 5.0}},
	{"CAST(i AS int8)", "int8", []any{1, 2, N, -4, 5}},
	{"CAST(i32 AS float32)", "float32", []any{10.0, 20.0, 30.0, N, 50.0}},
	{"CAST('42' AS int)", "int32", five(42)},
	{"CAST('2.5' AS double)", "float64", five(2.5)},
	{"CAST('true' AS boolean)", "bool", five(true)},
	{"CAST(i AS bool)", "bool", []any{true, true, N, true, true}},
	{"CAST(ts AS date)", "date", []any{"2024-01-02", "2023-12-31", N, "1969-12-31", "2024-02-29"}},
	{"CAST(d AS timestamp)", "timestamp[us]", []any{"2024-01-02 00:00:00", "2023-12-31 00:00:00", N, "1969-12-31 00:00:00", "2024-02-29 00:00:00"}},
	{"CAST(ts AS string)", "string", []any{"2024-01-02 03:04:05", "2023-12-31 23:59:59", N, "1969-12-31 23:00:00", "2024-02-29 12:00:00"}},
	{"CAST(d AS string)", "string", []any{"2024-01-02", "2023-12-31", N, "1969-12-31", "2024-02-29"}},
	{"CAST('2024-03-04 05:06:07.5' AS timestamp)", "timestamp[us]", five("2024-03-04 05:06:07.5")},
	{"CAST('2024-03-04T05:06:07+02:00' AS timestamp)", "timestamp[us]", five("2024-03-04 03:06:07")},
	{"CAST('2024-03-04 23:00:00' AS date)", "date", five("2024-03-04")},
	{"CAST(tsz AS string)", "string", []any{"2024-01-02 01:30:00+02:00", "2024-01-02 02:00:00+02:00", N, "1969-12-31 23:59:59+02:00", "2024-03-01 01:00:00+02:00"}},
	{"CAST(tsz AS date)", "date", []any{"2024-01-02", "2024-01-02", N, "1969-12-31", "2024-03-01"}},
	{"CAST(NULL AS int)", "int32", five(N)},
	{"CAST(s AS string)", "string", []any{"apple", "Banana", N, "", "  pad  "}},
	{"CAST(cat AS string)", "string", []any{"c1", "c2", N, "c1", "c3"}},
	{"CAST(ls AS string)", "string", []any{"x", "y", N, "z", ""}},
	{"CAST(ts AS timestamp)", "timestamp[us]", []any{"2024-01-02 03:04:05", "2023-12-31 23:59:59", N, "1969-12-31 23:00:00", "2024-02-29 12:00:00"}},
	{"CAST(tsz AS timestamp) = TIMESTAMP '2024-01-02 00:00:00'", "bool", []any{false, true, N, false, false}},
}

func TestEval(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := fixture(t, mem)
	defer rec.Release()
	for _, tc := range evalCases {
		if tc.want == nil {
			continue
		}
		t.Run(tc.src, func(t *testing.T) {
			dt, got, err := evalValues(t, mem, rec, tc.src)
			if err != nil {
				t.Fatal(err)
			}
			if typeString(dt) != tc.typ {
				t.Errorf("type = %s, want %s", typeString(dt), tc.typ)
			}
			want := make([]any, len(tc.want))
			for i, w := range tc.want {
				if w != N {
					want[i] = w
				}
			}
			if !sameValues(got, want) {
				t.Errorf("got  %v\nwant %v", got, want)
			}
		})
	}
}

// TestKleene checks AND, OR and NOT over every pair of TRUE, FALSE, NULL.
func TestKleene(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "p", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "q", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	}, nil)
	rec, _, err := array.RecordFromJSON(mem, schema, strings.NewReader(`[
		{"p": true, "q": true}, {"p": true, "q": false}, {"p": true, "q": null},
		{"p": false, "q": true}, {"p": false, "q": false}, {"p": false, "q": null},
		{"p": null, "q": true}, {"p": null, "q": false}, {"p": null, "q": null}]`))
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	T, F := true, false
	for _, tc := range []struct {
		src  string
		want []any
	}{
		{"p AND q", []any{T, F, nil, F, F, F, nil, F, nil}},
		{"p OR q", []any{T, T, T, T, F, nil, T, nil, nil}},
		{"NOT p", []any{F, F, F, T, T, T, nil, nil, nil}},
		{"NOT (p AND q)", []any{F, T, nil, T, T, T, nil, T, nil}},
		{"p AND NULL", []any{nil, nil, nil, F, F, F, nil, nil, nil}},
		{"p OR NULL", []any{T, T, T, nil, nil, nil, nil, nil, nil}},
		{"p AND TRUE", []any{T, T, T, F, F, F, nil, nil, nil}},
		{"p OR FALSE", []any{T, T, T, F, F, F, nil, nil, nil}},
		{"p AND FALSE", []any{F, F, F, F, F, F, F, F, F}},
		{"p OR TRUE", []any{T, T, T, T, T, T, T, T, T}},
		{"p OR q AND FALSE", []any{T, T, T, F, F, F, nil, nil, nil}},
		{"(p OR q) AND FALSE", []any{F, F, F, F, F, F, F, F, F}},
		{"NOT p = q", []any{F, T, nil, T, F, nil, nil, nil, nil}},
	} {
		_, got, err := evalValues(t, mem, rec, tc.src)
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		if !sameValues(got, tc.want) {
			t.Errorf("%s:\ngot  %v\nwant %v", tc.src, got, tc.want)
		}
	}
}

func TestEvalLiteralOnly(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := fixture(t, mem)
	defer rec.Release()
	b, err := Compile("NULL", rec.Schema())
	if err != nil {
		t.Fatal(err)
	}
	out, err := b.Eval(context.Background(), mem, rec)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	if out.Len() != 5 || out.NullN() != 5 || out.DataType().ID() != arrow.NULL {
		t.Errorf("NULL evaluated to %v (%s)", out, out.DataType())
	}
	// A bare dictionary column keeps its type.
	b, err = Compile("cat", rec.Schema())
	if err != nil {
		t.Fatal(err)
	}
	cat, err := b.Eval(context.Background(), mem, rec)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Release()
	if cat.DataType().ID() != arrow.DICTIONARY || !arrow.TypeEqual(b.Type(), cat.DataType()) {
		t.Errorf("cat evaluated to type %s, Type() %s", cat.DataType(), b.Type())
	}
}

func TestEvalErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := fixture(t, mem)
	defer rec.Release()
	for _, tc := range []struct {
		src  string
		want string
	}{
		{"CAST(u8 AS int8)", `expr: 1:1: CAST to int8: invalid: integer value 255 not in range: 0 to 127`},
		{"CAST(s AS int)", `expr: 1:1: CAST to int32: invalid: strconv.ParseInt: parsing "  pad  ": invalid syntax`},
		{"CAST(s AS timestamp)", `expr: 1:1: CAST to timestamp[us]: 'apple' is not a valid timestamp`},
		{"i * 9223372036854775807", `expr: 1:3: "*": invalid: overflow`},
		{"CAST(f * 1e300 AS bigint)", `expr: 1:1: CAST to int64: float value 1.5e+300 is out of range for int64`},
	} {
		b, err := Compile(tc.src, rec.Schema())
		if err != nil {
			t.Errorf("%s: Compile: %v", tc.src, err)
			continue
		}
		out, err := b.Eval(context.Background(), mem, rec)
		if err == nil {
			out.Release()
			t.Errorf("%s: no error", tc.src)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("%s:\ngot  %s\nwant %s", tc.src, err, tc.want)
		}
		if !errors.Is(err, ErrEval) {
			t.Errorf("%s: %v is not ErrEval", tc.src, err)
		}
	}
}

func TestEvalProjectedBatch(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := fixture(t, mem)
	defer rec.Release()
	b, err := Compile("i + 1 > 2", rec.Schema())
	if err != nil {
		t.Fatal(err)
	}
	// A batch holding only the referenced column, at another index.
	proj := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{fixtureSchema.Field(3), fixtureSchema.Field(0)}, nil),
		[]arrow.Array{rec.Column(3), rec.Column(0)}, rec.NumRows())
	defer proj.Release()
	out, err := b.Eval(context.Background(), mem, proj)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	if got, want := values(t, out), []any{false, true, nil, false, true}; !sameValues(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// A batch without the column, or with another type, is an error.
	_, err = b.Eval(context.Background(), mem, array.NewRecordBatch(arrow.NewSchema(nil, nil), nil, 5))
	if err == nil || err.Error() != `expr: 1:1: column "i" is not in the batch` {
		t.Errorf("missing column: %v", err)
	}
	other := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "i", Type: arrow.BinaryTypes.String}}, nil),
		[]arrow.Array{rec.Column(3)}, rec.NumRows())
	defer other.Release()
	_, err = b.Eval(context.Background(), mem, other)
	if err == nil || err.Error() != `expr: 1:1: column "i" is string in the batch but was bound as int64` {
		t.Errorf("wrong type: %v", err)
	}
}

func TestEvalEmptyBatch(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := fixture(t, mem)
	defer rec.Release()
	empty := rec.NewSlice(0, 0)
	defer empty.Release()
	for _, tc := range evalCases {
		b, err := Compile(tc.src, rec.Schema())
		if err != nil {
			continue
		}
		m2 := memory.NewCheckedAllocator(memory.NewGoAllocator())
		out, err := b.Eval(context.Background(), m2, empty)
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		if out.Len() != 0 {
			t.Errorf("%s: %d rows", tc.src, out.Len())
		}
		out.Release()
		if m2.CurrentAlloc() != 0 {
			t.Errorf("%s: leaked %d bytes", tc.src, m2.CurrentAlloc())
		}
	}
}

// TestEvalSliced evaluates over a slice with a non-zero offset, which
// every kernel must honour for values and validity alike.
func TestEvalSliced(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := fixture(t, mem)
	defer rec.Release()
	sl := rec.NewSlice(1, 5)
	defer sl.Release()
	for _, tc := range evalCases {
		if tc.want == nil {
			continue
		}
		_, got, err := evalValues(t, mem, sl, tc.src)
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		want := make([]any, 4)
		for i, w := range tc.want[1:] {
			if w != N {
				want[i] = w
			}
		}
		if !sameValues(got, want) {
			t.Errorf("%s over rows 1..4:\ngot  %v\nwant %v", tc.src, got, want)
		}
	}
}

func TestFilter(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := fixture(t, mem)
	defer rec.Release()
	for _, tc := range []struct {
		src  string
		want []any // the i column of the kept rows
	}{
		{"i > 1", []any{2, 5}},
		{"i IS NULL OR i < 0", []any{nil, -4}},
		{"b", []any{1, -4}},
		{"NOT b", []any{2, 5}},
		{"TRUE", []any{1, 2, nil, -4, 5}},
		{"FALSE", []any{}},
		{"NULL", []any{}},
		{"u8 > 0", []any{1, 2, nil, -4, 5}},
		{"u8 < 0", []any{}},
		{"s IN ('apple', 'Banana') AND f > 0", []any{1}},
	} {
		b, err := Compile(tc.src, rec.Schema())
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		out, err := b.Filter(context.Background(), mem, rec)
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		if !out.Schema().Equal(rec.Schema()) {
			t.Errorf("%s: schema changed", tc.src)
		}
		if got := values(t, out.Column(0)); !sameValues(got, tc.want) {
			t.Errorf("%s: kept i = %v, want %v", tc.src, got, tc.want)
		}
		out.Release()
	}
	b, err := Compile("f * 2", rec.Schema())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Filter(context.Background(), mem, rec); err == nil || err.Error() != `expr: 1:3: predicate must be boolean, but float64 (f * 2) is not` {
		t.Errorf("non-boolean filter: %v", err)
	}
}

func TestCancelled(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := fixture(t, mem)
	defer rec.Release()
	b, err := Compile("i > 1", rec.Schema())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Eval(ctx, mem, rec); !errors.Is(err, context.Canceled) {
		t.Errorf("Eval on a cancelled context: %v", err)
	}
}

// TestConcurrentEval shares one Bound between goroutines.
func TestConcurrentEval(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := fixture(t, mem)
	defer rec.Release()
	b, err := Compile("CASE WHEN s IN ('apple', 'x') THEN upper(s) ELSE concat(s, i) END", rec.Schema())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 50; k++ {
				out, err := b.Eval(context.Background(), mem, rec)
				if err != nil {
					errs <- err
					return
				}
				got := fmt.Sprintf("%q", values(t, out))
				out.Release()
				if want := `["APPLE" "Banana2" "" "-4" "  pad  5"]`; got != want {
					errs <- fmt.Errorf("got %s, want %s", got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestDictionary runs every kind of node over a dictionary column, where
// strict kernels take the per-dictionary-value path.
func TestDictionary(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := fixture(t, mem)
	defer rec.Release()
	for _, tc := range []struct {
		src  string
		want []any
	}{
		{"cat = 'c1'", []any{true, false, nil, true, false}},
		{"cat IS NULL", []any{false, false, true, false, false}},
		{"cat IS NOT NULL", []any{true, true, false, true, true}},
		{"coalesce(cat, 'none')", []any{"c1", "c2", "none", "c1", "c3"}},
		{"concat(cat, '!')", []any{"c1!", "c2!", "!", "c1!", "c3!"}},
		{"CASE WHEN cat = 'c1' THEN 1 ELSE 0 END", []any{1, 0, 0, 1, 0}},
		{"upper(cat)", []any{"C1", "C2", nil, "C1", "C3"}},
		{"length(cat) + i", []any{3, 4, nil, -2, 7}},
		{"cat IN ('c2', 'c3') OR i = 1", []any{true, true, nil, false, true}},
		{"NOT cat BETWEEN 'c1' AND 'c2'", []any{false, false, nil, false, true}},
	} {
		_, got, err := evalValues(t, mem, rec, tc.src)
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		if !sameValues(got, tc.want) {
			t.Errorf("%s:\ngot  %v\nwant %v", tc.src, got, tc.want)
		}
	}
}
