package plans

import (
	"strconv"

	"gopkg.in/yaml.v3"
)

// Steps of the operators built from the core ones (dataset/ops_more.go).

// Distinct keeps one row per distinct combination of Columns (all when
// empty); the output holds only those columns.
type Distinct struct {
	Columns []string
	stepAt
}

// DropNull drops the rows with a NULL in any of Columns (any column when
// empty).
type DropNull struct {
	Columns []string
	stepAt
}

// FillNull replaces the NULLs of each column by its value.
type FillNull struct {
	Values map[string]any
	stepAt
}

// Sample keeps about Fraction of the rows, chosen by Seed.
type Sample struct {
	Fraction float64
	Seed     int64
	stepAt
}

var (
	_ Step = (*Distinct)(nil)
	_ Step = (*DropNull)(nil)
	_ Step = (*FillNull)(nil)
	_ Step = (*Sample)(nil)
)

func (*Distinct) Kind() string { return "distinct" }
func (*DropNull) Kind() string { return "drop_null" }
func (*FillNull) Kind() string { return "fill_null" }
func (*Sample) Kind() string   { return "sample" }

func moreStepDefs() []*stepDef {
	return []*stepDef{
		{name: "distinct", decode: func(d *decoder, n *yaml.Node, path string) Step { return &Distinct{Columns: strs(n)} },
			compile: func(c *compiler, s Step) {
				st := s.(*Distinct)
				node, path := seqItems(st.node, st.path)
				if !c.haveColumns(c.d, st.Columns, node, path) {
					return
				}
				c.then(s, c.d.Distinct(st.Columns...), func(err error) { c.fail(err, st.node, st.path) })
			},
			spec: list("Keep one row per distinct combination of these columns (all columns when the list is empty); the output holds only those columns.", str("A column name."), 0)},
		{name: "drop_null", decode: func(d *decoder, n *yaml.Node, path string) Step { return &DropNull{Columns: strs(n)} },
			compile: func(c *compiler, s Step) {
				st := s.(*DropNull)
				node, path := seqItems(st.node, st.path)
				if !c.haveColumns(c.d, st.Columns, node, path) {
					return
				}
				c.then(s, c.d.DropNull(st.Columns...), func(err error) { c.fail(err, st.node, st.path) })
			},
			spec: list("Drop the rows with a null in any of these columns (in any column when the list is empty).", str("A column name."), 0)},
		{name: "fill_null", decode: decodeFillNull,
			compile: func(c *compiler, s Step) {
				st := s.(*FillNull)
				c.then(s, c.d.FillNull(st.Values), func(err error) { c.fail(err, st.node, st.path) })
			},
			spec: &spec{kind: kMap, doc: "Replace the nulls of each column by a value (the column keeps its type).", min: ptr[int64](1),
				keys: str("A column name."), values: &spec{kind: kScalar, doc: "The value."}}},
		{name: "sample", decode: func(d *decoder, n *yaml.Node, path string) Step {
			f, _ := floatValue(get(n, "fraction"))
			seed, _ := intValue(get(n, "seed"))
			return &Sample{Fraction: f, Seed: seed}
		},
			compile: func(c *compiler, s Step) {
				st := s.(*Sample)
				c.then(s, c.d.Sample(st.Fraction, st.Seed), func(err error) { c.fail(err, st.node, st.path) })
			},
			spec: object("Keep each row with probability fraction, chosen by a hash of the row and the seed (the same seed keeps the same rows).",
				req("fraction", number("The share of rows to keep, 0 to 1.")),
				opt("seed", &spec{kind: kInt, doc: "The seed (default 0).", def: 0}))},
	}
}

// decodeFillNull reads each value as the YAML scalar it is: an integer,
// a float, a boolean or a string.
func decodeFillNull(d *decoder, n *yaml.Node, path string) Step {
	f := &FillNull{Values: map[string]any{}}
	if n.Kind != yaml.MappingNode {
		return f
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]).Value, deref(n.Content[i+1])
		switch v.ShortTag() {
		case "!!int":
			if x, err := strconv.ParseInt(v.Value, 0, 64); err == nil {
				f.Values[k] = x
				continue
			}
		case "!!float":
			if x, err := strconv.ParseFloat(v.Value, 64); err == nil {
				f.Values[k] = x
				continue
			}
		case "!!bool":
			if x, ok := boolValue(v); ok {
				f.Values[k] = x
				continue
			}
		case "!!null":
			f.Values[k] = nil
			continue
		}
		f.Values[k] = v.Value
	}
	return f
}
