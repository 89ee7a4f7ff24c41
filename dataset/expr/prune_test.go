package expr

import (
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

func TestMayMatch(t *testing.T) {
	ts := func(s string) time.Time { v, _ := time.Parse(time.DateTime, s); return v }
	// One row group: i in [10, 20] with 2 nulls of 100; f in [0.5, 1.5];
	// s in ["b", "d"]; b all true; ts in January 2024; d in 2024-01;
	// allnull has only NULLs; i32 has no min/max; nothing is known of f32.
	stats := map[string]Stats{
		"i":   {Min: int64(10), Max: int64(20), NullCount: 2, RowCount: 100, HasMinMax: true},
		"i32": {NullCount: 0, RowCount: 100},
		"f":   {Min: 0.5, Max: 1.5, NullCount: 0, RowCount: 100, HasMinMax: true},
		"s":   {Min: "b", Max: "d", NullCount: 0, RowCount: 100, HasMinMax: true},
		"b":   {Min: true, Max: true, NullCount: 0, RowCount: 100, HasMinMax: true},
		"ts":  {Min: ts("2024-01-01 00:00:00"), Max: ts("2024-01-31 23:59:59"), NullCount: -1, RowCount: 100, HasMinMax: true},
		"d":   {Min: arrow.Date32(19723), Max: arrow.Date32(19753), NullCount: 0, RowCount: 100, HasMinMax: true}, // 2024-01-01 .. 2024-01-31
		"cat": {Min: "c1", Max: "c3", NullCount: 0, RowCount: 100, HasMinMax: true},
		"u8":  {Min: uint8(3), Max: uint8(3), NullCount: 0, RowCount: 100, HasMinMax: true},
		"tsz": {Min: int64(1704067200), Max: int64(1704067200), NullCount: 0, RowCount: 100, HasMinMax: true}, // 2024-01-01 00:00:00 UTC, seconds
		"ls":  {NullCount: 100, RowCount: 100},
	}
	lookup := func(c string) (Stats, bool) { st, ok := stats[c]; return st, ok }
	for _, tc := range []struct {
		src  string
		want bool
	}{
		{"i > 5", true},
		{"i > 20", false},
		{"i >= 20", true},
		{"i < 10", false},
		{"i <= 10", true},
		{"i = 15", true},
		{"i = 21", false},
		{"i != 15", true},
		{"21 < i", false},
		{"5 < i", true},
		{"i > 19.5", true},
		{"i > 20.5", false},
		{"i32 > 5", true},      // no min/max
		{"f32 > 5", true},      // no stats at all
		{"i32 IS NULL", false}, // NullCount 0 of 100
		{"i IS NULL", true},
		{"i IS NOT NULL", true},
		{"ls IS NOT NULL", false},
		{"ls = 'x'", false}, // all NULL: every comparison is NULL
		{"ls IS NULL", true},
		{"NOT i IS NULL", true},
		{"NOT i32 IS NULL", true},
		{"NOT (i > 5)", false},
		{"NOT (i >= 10)", false},
		{"NOT (i < 30)", false},
		{"i > 20 OR f > 1", true},
		{"i > 20 OR f > 2", false},
		{"i > 5 AND f > 2", false},
		{"NOT (i > 20 OR f > 2)", true},
		{"NOT (i < 30 AND f > 0)", false},
		{"f BETWEEN 1.6 AND 2", false},
		{"f BETWEEN 1.4 AND 2", true},
		{"f NOT BETWEEN 0 AND 2", false},
		{"f NOT BETWEEN 1 AND 2", true},
		{"i BETWEEN NULL AND 2", false},
		{"s = 'a'", false},
		{"s = 'c'", true},
		{"s >= 'd'", true},
		{"s > 'd'", false},
		{"s IN ('a', 'e')", false},
		{"s IN ('a', 'bb')", true},
		{"s NOT IN ('a')", true},
		{"u8 NOT IN (3)", false},
		{"u8 NOT IN (4)", true},
		{"i NOT IN (1, NULL)", false},
		{"i IN (1, NULL)", false},
		{"cat = 'c4'", false},
		{"cat IN ('c2')", true},
		{"b = FALSE", false},
		{"b", true},
		{"NOT b", true}, // bare boolean columns do not prune
		{"ts > '2024-02-01'", false},
		{"ts > TIMESTAMP '2024-01-31 23:59:58'", true},
		{"ts < DATE '2024-01-01'", false},
		{"d > DATE '2024-01-31'", false},
		{"d >= '2024-01-31'", true},
		{"d > TIMESTAMP '2024-01-31 00:00:01'", false},
		{"tsz = TIMESTAMP '2024-01-01 00:00:00'", true},
		{"tsz > TIMESTAMP '2024-01-01 00:00:00'", false},
		{"lower(s) = 'zzz'", true}, // functions are not analysed
		{"i + 1 > 100", true},
		{"FALSE", false},
		{"NULL", false},
		{"TRUE", true},
		{"i > 30 AND TRUE", false},
		{"i * 2", true}, // not a predicate
	} {
		b, err := Compile(tc.src, fixtureSchema)
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		if got := b.MayMatch(lookup); got != tc.want {
			t.Errorf("MayMatch(%s) = %v, want %v", tc.src, got, tc.want)
		}
	}
}

// TestMayMatchSound checks MayMatch against evaluation: whenever some row
// of the fixture satisfies a predicate, MayMatch over the fixture's own
// statistics must say true.
func TestMayMatchSound(t *testing.T) {
	stats := map[string]Stats{
		"i":   {Min: int64(-4), Max: int64(5), NullCount: 1, RowCount: 5, HasMinMax: true},
		"i32": {Min: int32(10), Max: int32(50), NullCount: 1, RowCount: 5, HasMinMax: true},
		"f":   {Min: -2.5, Max: 10.0, NullCount: 1, RowCount: 5, HasMinMax: true},
		"s":   {Min: "", Max: "apple", NullCount: 1, RowCount: 5, HasMinMax: true},
		"u8":  {Min: uint8(1), Max: uint8(255), NullCount: 0, RowCount: 5, HasMinMax: true},
	}
	lookup := func(c string) (Stats, bool) { st, ok := stats[c]; return st, ok }
	var preds []string
	for _, op := range []string{"=", "!=", "<", "<=", ">", ">="} {
		for _, v := range []string{"-5", "-4", "0", "1", "5", "6", "2.5"} {
			preds = append(preds, fmt.Sprintf("i %s %s", op, v), fmt.Sprintf("NOT (i %s %s)", op, v), fmt.Sprintf("f %s %s", op, v))
		}
		for _, v := range []string{"''", "'a'", "'apple'", "'b'", "'  pad  '"} {
			preds = append(preds, fmt.Sprintf("s %s %s", op, v), fmt.Sprintf("NOT s %s %s", op, v))
		}
	}
	preds = append(preds, "i IN (5, 7)", "i NOT IN (5)", "i BETWEEN 5 AND 9", "i NOT BETWEEN -4 AND 5",
		"u8 IN (255)", "u8 > 254", "i32 < 11", "i IS NULL", "NOT i IS NULL OR f > 100")
	mem := newCheckedMem(t)
	rec := fixture(t, mem)
	defer rec.Release()
	for _, src := range preds {
		b, err := Compile(src, rec.Schema())
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		out, err := b.Filter(t.Context(), mem, rec)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		rows := out.NumRows()
		out.Release()
		if rows > 0 && !b.MayMatch(lookup) {
			t.Errorf("MayMatch(%s) = false, but %d rows match", src, rows)
		}
	}
}

func TestConjuncts(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want []string
	}{
		{"i > 1 AND s = 'a' AND (f < 2 OR b)", []string{"i > 1", "s = 'a'", "f < 2 OR b"}},
		{"i > 1 AND (s = 'a' AND f < 2)", []string{"i > 1", "s = 'a'", "f < 2"}},
		{"i > 1 OR s = 'a'", []string{"i > 1 OR s = 'a'"}},
		{"TRUE AND i > 1", []string{"TRUE AND i > 1"}}, // folded to one term
		{"NOT (i > 1 AND b)", []string{"NOT (i > 1 AND b)"}},
	} {
		b, err := Compile(tc.src, fixtureSchema)
		if err != nil {
			t.Fatal(err)
		}
		cs := Conjuncts(b)
		var got []string
		for _, c := range cs {
			got = append(got, c.String())
			if err := c.RequireBool(); err != nil {
				t.Errorf("%s: conjunct %s: %v", tc.src, c, err)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("Conjuncts(%s) = %q, want %q", tc.src, got, tc.want)
		}
		if back := And(cs...); back.String() != b.String() && len(cs) > 1 && tc.src != "i > 1 AND (s = 'a' AND f < 2)" {
			t.Errorf("And(Conjuncts(%s)) = %s", tc.src, back)
		}
	}
	// Each conjunct reads only its own columns and evaluates alone.
	b, err := Compile("i > 1 AND lower(s) = 'banana'", fixtureSchema)
	if err != nil {
		t.Fatal(err)
	}
	cs := Conjuncts(b)
	if fmt.Sprint(cs[0].Columns(), cs[1].Columns()) != "[i] [s]" {
		t.Errorf("conjunct columns: %v %v", cs[0].Columns(), cs[1].Columns())
	}
	mem := newCheckedMem(t)
	rec := fixture(t, mem)
	defer rec.Release()
	and := And(cs...)
	out, err := and.Filter(t.Context(), mem, rec)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	if out.NumRows() != 1 {
		t.Errorf("And(conjuncts) kept %d rows, want 1", out.NumRows())
	}
}

func TestBoundMetadata(t *testing.T) {
	for _, tc := range []struct {
		src      string
		cols     string
		typ      string
		nullable bool
	}{
		{"price > 50 AND category IN ('c1','c7')", "[price category]", "bool", true},
		{"qty * price + qty", "[qty price]", "float64", true},
		{"Amount", "[Amount]", "int64", false},
		{"Amount * 2", "[Amount]", "int64", false},
		{"Amount / 2", "[Amount]", "float64", false},
		{"Amount / Amount", "[Amount]", "float64", true},
		{"Amount % 0", "[Amount]", "int64", true},
		{"Amount IS NULL", "[Amount]", "bool", false},
		{"coalesce(price, 0)", "[price]", "float64", false},
		{"coalesce(price, qty)", "[price qty]", "float64", true},
		{"concat(note, category)", "[note category]", "string", false},
		{"CASE WHEN flag THEN Amount END", "[flag Amount]", "int64", true},
		{"CASE WHEN flag THEN Amount ELSE 0 END", "[flag Amount]", "int64", false},
		{"FALSE AND price > 1", "[]", "bool", false},
		{"1 + 2", "[]", "int64", false},
		{"NULL", "[]", "null", true},
		{"year(ts) = 2024 OR d IS NULL", "[ts d]", "bool", true},
	} {
		b, err := Compile(tc.src, errorSchema)
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		if got := fmt.Sprint(b.Columns()); got != tc.cols {
			t.Errorf("%s: Columns = %s, want %s", tc.src, got, tc.cols)
		}
		if got := typeString(b.Type()); got != tc.typ {
			t.Errorf("%s: Type = %s, want %s", tc.src, got, tc.typ)
		}
		if b.Nullable() != tc.nullable {
			t.Errorf("%s: Nullable = %v, want %v", tc.src, b.Nullable(), tc.nullable)
		}
	}
}
