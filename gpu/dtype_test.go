package gpu

import "testing"

func TestParseDType(t *testing.T) {
	for in, want := range map[string]DType{"": 0, "auto": 0, "f32": F32, "float32": F32, "bf16": BF16, "bfloat16": BF16, "f16": F16, "float16": F16} {
		if got, err := ParseDType(in); err != nil || got != want {
			t.Errorf("ParseDType(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"f64", "int32", "F32"} {
		if _, err := ParseDType(in); err == nil {
			t.Errorf("ParseDType(%q): no error", in)
		}
	}
}
