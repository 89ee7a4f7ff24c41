package plans

import (
	"slices"
	"testing"
)

// EnvRefs reads only the allowed, non-credential names the plan reads,
// hides each value (the longest first) and shows it back.
func TestEnvRefs(t *testing.T) {
	src := "name: p\nread: {parquet: '/d/{{ env \"A\" }}/{{ env \"AB\" }}'}\nsteps:\n  - filter: 'x = {{ env \"C\" }}'\n" +
		"write: {parquet: '/o/{{ if true }}{{ env \"D\" }}{{ end }}'}\n"
	p, lints := Parse("p.yaml", []byte(src))
	if err := lints.Err(); err != nil {
		t.Fatal(err)
	}
	if got, want := p.EnvNames(), []string{"A", "AB", "C", "D"}; !slices.Equal(got, want) {
		t.Fatalf("EnvNames = %q, want %q", got, want)
	}
	env := map[string]string{"A": "sec", "AB": "secret", "C": "other", "D": "dval"}
	lookup := func(n string) (string, bool) { v, ok := env[n]; return v, ok }
	r := NewEnvRefs(p, Vars{LookupEnv: lookup, EnvAllow: []string{"A", "AB", "D"}})
	in := "/d/sec/secret other dval"
	hid := r.Hide(in)
	if want := "/d/${env:A}/${env:AB} other ${env:D}"; hid != want {
		t.Errorf("Hide = %q, want %q", hid, want)
	}
	if back := r.Show(hid); back != in {
		t.Errorf("Show(Hide) = %q, want %q", back, in)
	}
	var nilRefs *EnvRefs
	if nilRefs.Hide(in) != in || nilRefs.Show(in) != in {
		t.Error("nil EnvRefs changed text")
	}
}
