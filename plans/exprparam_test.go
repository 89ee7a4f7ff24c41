package plans

import (
	"strings"
	"testing"
)

const exprPlan = `name: p
params:
  min_price: "50"
  cat: c1
  col: price
read:
  parquet: in/
steps:
  - filter: "price > {{ .Params.min_price }} AND category = '{{ .Params.cat }}'"
  - with_column: {name: x, expr: "{{ .Params.col | raw }} * 2 + {{ .Params.min_price }}"}
  - filter: "\"{{ .Params.col }}\" > 0 AND note = {{ .Params.cat }}"
write:
  parquet: out/
`

// TestParamsInExpressions: a param inside an expression is one literal
// (it was pasted as raw text: min_price=0 OR TRUE widened the filter).
func TestParamsInExpressions(t *testing.T) {
	p := parseOK(t, exprPlan)
	cases := []struct {
		params map[string]string
		want   []string // the three expressions
	}{
		{nil, []string{
			"price > 50 AND category = 'c1'",
			"price * 2 + 50",
			`"price" > 0 AND note = 'c1'`}},
		{map[string]string{"min_price": "0 OR TRUE"}, []string{
			"price > '0 OR TRUE' AND category = 'c1'",
			"price * 2 + '0 OR TRUE'",
			`"price" > 0 AND note = 'c1'`}},
		{map[string]string{"cat": "c1' OR 'a' = 'a", "min_price": "-2.5e1", "col": `a"b`}, []string{
			"price > -2.5e1 AND category = 'c1'' OR ''a'' = ''a'",
			`a"b * 2 + -2.5e1`,
			`"a""b" > 0 AND note = 'c1'' OR ''a'' = ''a'`}},
		{map[string]string{"cat": "true"}, []string{
			"price > 50 AND category = 'true'",
			"price * 2 + 50",
			`"price" > 0 AND note = true`}},
	}
	for _, c := range cases {
		q, err := p.Render(Vars{Params: c.params, LookupEnv: env(nil)})
		if q == nil {
			t.Fatalf("%v: Render: %v", c.params, err)
		}
		got := []string{q.Steps[0].(*Filter).Expr, q.Steps[1].(*WithColumn).Expr, q.Steps[2].(*Filter).Expr}
		if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("%v:\ngot  %q\nwant %q", c.params, got, c.want)
		}
	}
}

// TestParamsInExpressionBranches: an if whose branches leave a quote open
// differently cannot be escaped and says so.
func TestParamsInExpressionBranches(t *testing.T) {
	src := strings.Replace(exprPlan, `"price > {{ .Params.min_price }} AND category = '{{ .Params.cat }}'"`,
		`"x = {{ if .Params.cat }}'{{ .Params.cat }}{{ else }}{{ .Params.cat }}{{ end }}'"`, 1)
	p := parseOK(t, src)
	_, err := p.Render(Vars{LookupEnv: env(nil)})
	if err == nil || !strings.Contains(err.Error(), "the branches of {{if}} leave a quote open differently") {
		t.Fatalf("err = %v", err)
	}
}
