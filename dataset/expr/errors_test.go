package expr

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var errorSchema = arrow.NewSchema([]arrow.Field{
	{Name: "price", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "qty", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "category", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "note", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
	{Name: "d", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
	{Name: "flag", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "Amount", Type: arrow.PrimitiveTypes.Int64, Nullable: false},
	{Name: "dec", Type: &arrow.Decimal128Type{Precision: 10, Scale: 2}, Nullable: true},
}, nil)

// errorCorpus holds broken expressions; their errors are in
// testdata/errors.golden (regenerate with go test -run TestErrorGolden -update).
var errorCorpus = []string{
	// Lexing.
	"category = 'c1",
	`"unterminated`,
	`"" = 1`,
	"price ! 3",
	"price > 50 ; qty",
	"price > 1e",
	"price > 12abc",
	"price > 1.2.3",
	"note = 'ok' AND\n  note = 'bad\n",
	"price > 99999999999999999999",
	"price > 1e999",
	// Parsing.
	"(price > 50",
	"price > 50)",
	"price >",
	"price > 50 AND",
	"lower(note",
	"lower(note qty)",
	"qty IN (1, 2",
	"qty IN (1, qty)",
	"qty NOT LIKE 'a'",
	"qty IS 5",
	"qty BETWEEN 1 OR 2",
	"CASE qty WHEN 1 THEN 2 END",
	"CASE WHEN qty > 1 THEN 2",
	"CASE WHEN qty > 1 2 END",
	"CAST(qty AS strng)",
	"CAST(qty, int)",
	"TIMESTAMP '2024-13-01'",
	"DATE '2024-02-30'",
	"AND price",
	"price price",
	"",
	// Names.
	"price > 50 AND pirce < 3",
	"amount > 5",
	"xyz > 5",
	"lowr(note)",
	"frobnicate(note)",
	// Types.
	"category > 5",
	"price + category",
	"-note",
	"NOT qty",
	"qty AND flag",
	"qty IN ('a', 'b')",
	"ts > 'yesterday'",
	"ts BETWEEN 1 AND 2",
	"CASE WHEN qty THEN 1 END",
	"CASE WHEN flag THEN 1 ELSE 'one' END",
	"lower(price)",
	"substr(note)",
	"substr(note, 'a')",
	"concat()",
	"round(price, qty)",
	"regexp_match(note, category)",
	"regexp_match(note, '[a-')",
	"year(note)",
	"coalesce(price, note)",
	"CAST(ts AS int)",
	"CAST(qty AS date)",
	"dec > 1",
	"abs(flag)",
	"length(note, note)",
	"qty = 1 AND\n    (note = 'x' OR\n     lower(qty) = 'y')",
}

func errorKind(err error) string {
	for _, k := range []struct {
		name string
		err  error
	}{{"ErrSyntax", ErrSyntax}, {"ErrUnknownColumn", ErrUnknownColumn}, {"ErrUnknownFunction", ErrUnknownFunction}, {"ErrType", ErrType}, {"ErrEval", ErrEval}} {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return "unclassified"
}

func TestErrorGolden(t *testing.T) {
	var sb strings.Builder
	sb.WriteString("# Errors from Compile for broken expressions (see errorCorpus).\n")
	sb.WriteString("# Each case: the source, indented by '> ', then the error and its sentinel.\n\n")
	for _, src := range errorCorpus {
		for _, line := range strings.Split(src, "\n") {
			sb.WriteString("> " + line + "\n")
		}
		_, err := Compile(src, errorSchema)
		if err == nil {
			t.Errorf("Compile(%q) succeeded", src)
			sb.WriteString("no error\n\n")
			continue
		}
		var pe *Error
		if !errors.As(err, &pe) {
			t.Errorf("Compile(%q): %T is not *Error", src, err)
		} else if !pe.Pos.IsValid() {
			t.Errorf("Compile(%q): error without position: %v", src, err)
		}
		sb.WriteString(err.Error() + "  [" + errorKind(err) + "]\n\n")
	}
	path := filepath.Join("testdata", "errors.golden")
	if *update {
		if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got := sb.String(); got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("errors.golden differs at line %d:\ngot  %s\nwant %s\n(run with -update to accept)", i+1, g, w)
			}
		}
	}
}

// TestErrorExact pins the messages the brief fixes verbatim.
func TestErrorExact(t *testing.T) {
	for _, tc := range []struct {
		src, want string
		kind      error
	}{
		{"price > 50 AND pirce < 3", `expr: 1:16: unknown column "pirce" (did you mean "price"?)`, ErrUnknownColumn},
		{"xyz > 5", `expr: 1:1: unknown column "xyz"`, ErrUnknownColumn},
		{"(price > 50", `expr: 1:12: expected ")" but found end of input`, ErrSyntax},
		{"category > 5", `expr: 1:10: cannot compare string "category" with int64 literal 5 using ">"`, ErrType},
	} {
		_, err := Compile(tc.src, errorSchema)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Compile(%q):\ngot  %v\nwant %s", tc.src, err, tc.want)
		}
		if !errors.Is(err, tc.kind) {
			t.Errorf("Compile(%q): %v is not %v", tc.src, err, tc.kind)
		}
	}
	b, err := Compile("price * qty", errorSchema)
	if err != nil {
		t.Fatal(err)
	}
	err = b.RequireBool()
	if err == nil || err.Error() != `expr: 1:7: predicate must be boolean, but float64 (price * qty) is not` || !errors.Is(err, ErrType) {
		t.Errorf("RequireBool: %v", err)
	}
}
