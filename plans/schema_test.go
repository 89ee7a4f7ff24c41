package plans

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// jsonSchemaErrors validates v (decoded YAML) against the subset of JSON
// Schema that JSONSchema uses, and returns where it fails.
func jsonSchemaErrors(s map[string]any, v any, path string) []string {
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, path+": "+fmt.Sprintf(format, args...)) }
	if t, ok := s["type"]; ok {
		var types []string
		switch t := t.(type) {
		case string:
			types = []string{t}
		case []any:
			for _, x := range t {
				types = append(types, x.(string))
			}
		}
		if !slices.ContainsFunc(types, func(t string) bool { return hasType(v, t) }) {
			fail("want type %v, got %T", types, v)
			return errs
		}
	}
	if e, ok := s["enum"].([]any); ok && !slices.Contains(e, v) {
		fail("%v not in enum %v", v, e)
	}
	if p, ok := s["pattern"].(string); ok {
		if str, ok := v.(string); ok && !regexp.MustCompile(p).MatchString(str) {
			fail("%q does not match %s", str, p)
		}
	}
	if m, ok := s["minimum"].(float64); ok {
		if n, ok := jsonNumber(v); ok && n < m {
			fail("%v < minimum %v", n, m)
		}
	}
	if arr, ok := v.([]any); ok {
		if m, ok := s["minItems"].(float64); ok && float64(len(arr)) < m {
			fail("%d items < minItems %v", len(arr), m)
		}
		if items, ok := s["items"].(map[string]any); ok {
			for i, it := range arr {
				errs = append(errs, jsonSchemaErrors(items, it, fmt.Sprintf("%s[%d]", path, i))...)
			}
		}
	}
	if obj, ok := v.(map[string]any); ok {
		props, _ := s["properties"].(map[string]any)
		for _, r := range anySlice(s["required"]) {
			if _, ok := obj[r.(string)]; !ok {
				fail("missing required %q", r)
			}
		}
		if m, ok := s["minProperties"].(float64); ok && float64(len(obj)) < m {
			fail("%d properties < minProperties %v", len(obj), m)
		}
		for k, val := range obj {
			if pn, ok := s["propertyNames"].(map[string]any); ok {
				errs = append(errs, jsonSchemaErrors(pn, k, path+"."+k+"(name)")...)
			}
			if ps, ok := props[k].(map[string]any); ok {
				errs = append(errs, jsonSchemaErrors(ps, val, path+"."+k)...)
				continue
			}
			switch ap := s["additionalProperties"].(type) {
			case bool:
				if !ap {
					fail("additional property %q", k)
				}
			case map[string]any:
				errs = append(errs, jsonSchemaErrors(ap, val, path+"."+k)...)
			}
		}
	}
	if alts := anySlice(s["oneOf"]); alts != nil {
		n := 0
		for _, a := range alts {
			if len(jsonSchemaErrors(a.(map[string]any), v, path)) == 0 {
				n++
			}
		}
		if n != 1 {
			fail("%d of %d oneOf alternatives match, want exactly 1", n, len(alts))
		}
	}
	if alts := anySlice(s["anyOf"]); alts != nil {
		if !slices.ContainsFunc(alts, func(a any) bool { return len(jsonSchemaErrors(a.(map[string]any), v, path)) == 0 }) {
			fail("no anyOf alternative matches")
		}
	}
	return errs
}

func anySlice(v any) []any { s, _ := v.([]any); return s }

func jsonNumber(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

func hasType(v any, t string) bool {
	switch t {
	case "null":
		return v == nil
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "integer":
		n, ok := jsonNumber(v)
		return ok && n == math.Trunc(n)
	case "number":
		_, ok := jsonNumber(v)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "object":
		_, ok := v.(map[string]any)
		return ok
	}
	return false
}

func loadSchema(t *testing.T) map[string]any {
	t.Helper()
	var s map[string]any
	if err := json.Unmarshal(JSONSchema(), &s); err != nil {
		t.Fatalf("JSONSchema is not JSON: %v", err)
	}
	return s
}

func TestJSONSchema(t *testing.T) {
	s := loadSchema(t)
	if s["$schema"] != "https://json-schema.org/draft/2020-12/schema" || s["additionalProperties"] != false {
		t.Errorf("header: %v %v", s["$schema"], s["additionalProperties"])
	}
	// Every property of every object has a description.
	var walk func(v any, path string)
	walk = func(v any, path string) {
		switch v := v.(type) {
		case map[string]any:
			if props, ok := v["properties"].(map[string]any); ok {
				for k, p := range props {
					if d, _ := p.(map[string]any)["description"].(string); d == "" {
						t.Errorf("%s.%s has no description", path, k)
					}
				}
			}
			for k, c := range v {
				walk(c, path+"/"+k)
			}
		case []any:
			for i, c := range v {
				walk(c, fmt.Sprintf("%s/%d", path, i))
			}
		}
	}
	walk(s, "#")
	steps := s["properties"].(map[string]any)["steps"].(map[string]any)["items"].(map[string]any)["properties"].(map[string]any)
	var kinds []string
	for k := range steps {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	if want := "distinct drop drop_null explode fill_null filter group_by infer join limit map_batches random_shuffle rename repartition sample select sort split union window with_column"; strings.Join(kinds, " ") != want {
		t.Errorf("step kinds %v", kinds)
	}
}

func decodeYAML(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestExamplesMatchJSONSchema: every example plan (and every plan of the
// other tests' testdata that Parse accepts) validates against the schema.
func TestExamplesMatchJSONSchema(t *testing.T) {
	s := loadSchema(t)
	files, _ := filepath.Glob("../examples/plans/*.yaml")
	if len(files) < 3 {
		t.Fatalf("%d example plans", len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, lints := Parse(f, data); len(lints) > 0 {
			t.Errorf("Parse: %v", lints)
		}
		if errs := jsonSchemaErrors(s, decodeYAML(t, data), "#"); errs != nil {
			t.Errorf("%s:\n%s", f, strings.Join(errs, "\n"))
		}
	}
	for _, src := range []string{templated, fullPlan} {
		if errs := jsonSchemaErrors(s, decodeYAML(t, []byte(src)), "#"); errs != nil {
			t.Errorf("%s", strings.Join(errs, "\n"))
		}
	}
}

// TestBrokenPlansFailJSONSchema: plans that Parse rejects for their shape
// fail the schema too, so editors flag what validate flags.
func TestBrokenPlansFailJSONSchema(t *testing.T) {
	s := loadSchema(t)
	for _, name := range []string{"bad-name", "unknown-top-key", "misspelled-step", "two-kinds-in-step", "unknown-step-kind",
		"two-sources", "no-source", "limit-not-a-number", "bad-catch-up", "bad-write-mode", "group-by-bad-agg", "join-keys",
		"sort-key-type", "with-column-missing-expr", "repartition-zero", "param-bad-name", "step-not-a-mapping", "missing-keys", "map-batches-options"} {
		data, err := os.ReadFile("testdata/broken/" + name + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		if errs := jsonSchemaErrors(s, decodeYAML(t, data), "#"); errs == nil {
			t.Errorf("%s validates against the JSON Schema", name)
		}
	}
}

// TestREADMEFormat: the format blocks of examples/plans/README.md and of the
// project README parse and match the schema.
func TestREADMEFormat(t *testing.T) {
	for _, f := range []string{"../examples/plans/README.md", "../README.md"} {
		t.Run(f, func(t *testing.T) { checkREADMEBlock(t, f) })
	}
}

func checkREADMEBlock(t *testing.T, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(data), "```yaml\n")
	block, _, _ = strings.Cut(block, "```")
	if !ok || !strings.Contains(block, "name:") {
		t.Fatal("no yaml block")
	}
	if _, lints := Parse("README.md", []byte(block)); len(lints) > 0 {
		t.Errorf("Parse:\n%v", lints)
	}
	if errs := jsonSchemaErrors(loadSchema(t), decodeYAML(t, []byte(block)), "#"); errs != nil {
		t.Errorf("%s", strings.Join(errs, "\n"))
	}
}
