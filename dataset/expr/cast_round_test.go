package expr

import (
	"context"
	"errors"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// runEvalCases evaluates each case over the fixture batch.
func runEvalCases(t *testing.T, cases []evalCase) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := fixture(t, mem)
	defer rec.Release()
	for _, tc := range cases {
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

// runEvalErrors checks that each expression compiles and fails to evaluate
// with exactly the message given (ErrEval), in Compile or in Eval.
func runEvalErrors(t *testing.T, cases [][2]string) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := fixture(t, mem)
	defer rec.Release()
	for _, tc := range cases {
		// Constant expressions are folded, so they fail in Compile.
		b, err := Compile(tc[0], rec.Schema())
		if err == nil {
			var out arrow.Array
			if out, err = b.Eval(context.Background(), mem, rec); err == nil {
				out.Release()
				t.Errorf("%s: no error", tc[0])
				continue
			}
		}
		if err.Error() != tc[1] {
			t.Errorf("%s:\ngot  %s\nwant %s", tc[0], err, tc[1])
		}
		if !errors.Is(err, ErrEval) {
			t.Errorf("%s: %v is not ErrEval", tc[0], err)
		}
	}
}

// TestCastRounding: floats cast to integers round half away from zero, as
// PostgreSQL (numeric) and DuckDB do: CAST(472.5 AS int) is 473 and
// CAST(-472.5 AS int) is -473, never truncated (Spark) nor rounded to even.
// Values outside the target type, NaN and infinities fail.
func TestCastRounding(t *testing.T) {
	runEvalCases(t, []evalCase{
		{"CAST(472.5 AS int)", "int32", five(473)},
		{"CAST(-472.5 AS int)", "int32", five(-473)},
		{"CAST(472.4999 AS int)", "int32", five(472)},
		{"CAST(-472.5001 AS int)", "int32", five(-473)},
		{"CAST(0.5 AS int)", "int32", five(1)},
		{"CAST(-0.5 AS int)", "int32", five(-1)},
		{"CAST(0.49999999999999994 AS int)", "int32", five(0)},
		{"CAST(2.5 AS bigint)", "int64", five(2 + 1)},
		{"CAST(2147483646.5 AS int)", "int32", five(2147483647)},
		{"CAST(-2147483648.4 AS int)", "int32", five(-2147483648)},
		{"CAST(126.5 AS int8)", "int8", five(127)},
		{"CAST(CAST(-1.5 AS float32) AS int)", "int32", five(-2)},
	})
	runEvalErrors(t, [][2]string{
		{"CAST(2147483647.5 AS int)", `expr: 1:1: CAST to int32: float value 2.1474836475e+09 is out of range for int32`},
		{"CAST(-128.5 AS int8)", `expr: 1:1: CAST to int8: float value -128.5 is out of range for int8`},
		{"CAST(9.3e18 AS bigint)", `expr: 1:1: CAST to int64: float value 9.3e+18 is out of range for int64`},
		{"CAST(CAST('NaN' AS double) AS int)", `expr: 1:1: CAST to int32: float value NaN is out of range for int32`},
		{"CAST(CAST('-Inf' AS double) AS bigint)", `expr: 1:1: CAST to int64: float value -Inf is out of range for int64`},
	})
}
