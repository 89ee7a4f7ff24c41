package expr

import (
	"context"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// FuzzParse checks that no input makes the package panic, that the
// canonical form of anything that parses parses again to the same
// canonical form, and that whatever compiles against the fixture also
// evaluates (or fails cleanly) without leaking memory.
func FuzzParse(f *testing.F) {
	for _, tc := range evalCases {
		f.Add(tc.src)
	}
	for _, src := range errorCorpus {
		f.Add(src)
	}
	for _, src := range []string{"a -- b", "- - -1", "'''' = \"\"\"\"", "((((", "CASE WHEN CASE WHEN a THEN b END THEN 1 END", "\xff", "x IN (-9223372036854775808)", "CAST(CAST(1 AS string) AS int)"} {
		f.Add(src)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, src string) {
		e, err := Parse(src)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("Parse(%q) returned %T, not *Error", src, err)
			}
			return
		}
		s1 := e.String()
		e2, err := Parse(s1)
		if err != nil {
			t.Fatalf("Parse(%q) ok, but its String %q does not parse: %v", src, s1, err)
		}
		if s2 := e2.String(); s2 != s1 {
			t.Fatalf("round trip of %q: %q then %q", src, s1, s2)
		}
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		rec := fixture(t, mem)
		defer func() {
			rec.Release()
			if got := mem.CurrentAlloc(); got != 0 {
				t.Fatalf("%q leaked %d bytes", s1, got)
			}
		}()
		b, err := Bind(e, rec.Schema())
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("Bind(%q) returned %T, not *Error", s1, err)
			}
			return
		}
		if out, err := b.Eval(ctx, mem, rec); err == nil {
			if out.Len() != int(rec.NumRows()) {
				t.Fatalf("Eval(%q) returned %d rows", s1, out.Len())
			}
			out.Release()
		}
		if isBool(b.Type()) {
			if out, err := b.Filter(ctx, mem, rec); err == nil {
				out.Release()
			}
			b.MayMatch(func(string) (Stats, bool) { return Stats{Min: int64(0), Max: "z", HasMinMax: true, RowCount: 5}, true })
			Conjuncts(b)
		}
	})
}
