package plans

import (
	"slices"

	"gopkg.in/yaml.v3"
)

// SplitRows divides the rows into named parts by a seeded hash
// (dataset.WithSplit), and the write puts each part in its own directory
// under its path: split: {fractions: [0.8, 0.2], seed: 1} writes DEST/train/
// and DEST/test/ in one run. It must be the last step.
type SplitRows struct {
	Fractions []float64
	Names     []string // default train, test (two parts) or train, validation, test (three)
	Seed      int64
	stepAt
}

var _ Step = (*SplitRows)(nil)

func (*SplitRows) Kind() string { return "split" }

// splitColumn is the column a split step adds for the write's DirBy; the
// files do not hold it.
const splitColumn = "__sluice_split"

// defaultSplitNames are the part names for two and three fractions.
var defaultSplitNames = map[int][]string{2: {"train", "test"}, 3: {"train", "validation", "test"}}

func splitStepDef() *stepDef {
	return &stepDef{name: "split", decode: decodeSplit, compile: compileSplit,
		spec: object("Split the rows into parts of about these fractions, chosen by a hash of each row and the seed (the same seed and input give the same parts; the first part is what sample keeps with its fraction), and write each part to its own directory under the write's path: DEST/train/, DEST/test/ (above partition_by's directories). It must be the last step.",
			req("fractions", list("The share of rows of each part, each above 0; they add up to 1.", number("A fraction."), 2)),
			opt("names", list("The parts' directory names, one per fraction (default [train, test] for two fractions, [train, validation, test] for three).", str("A directory name."), 2)),
			opt("seed", &spec{kind: kInt, doc: "The seed (default 0).", def: 0}))}
}

func decodeSplit(d *decoder, n *yaml.Node, path string) Step {
	s := &SplitRows{Names: strs(get(n, "names"))}
	if fs := get(n, "fractions"); fs != nil && fs.Kind == yaml.SequenceNode {
		for _, it := range fs.Content {
			f, _ := floatValue(it)
			s.Fractions = append(s.Fractions, f)
		}
	}
	s.Seed, _ = intValue(get(n, "seed"))
	return s
}

func compileSplit(c *compiler, s Step) {
	st := s.(*SplitRows)
	if i := slices.Index(c.p.Steps, s); i != len(c.p.Steps)-1 {
		c.errorf(st.node, st.path, "split must be the last step (steps[%d] follows it): the write puts each part in its own directory", i+1)
		c.d = nil
		return
	}
	names := st.Names
	if names == nil {
		if names = defaultSplitNames[len(st.Fractions)]; names == nil {
			c.errorf(st.node, st.path, "%d fractions: give their names (names: [...], one per fraction)", len(st.Fractions))
			c.d = nil
			return
		}
	}
	if len(names) != len(st.Fractions) {
		c.errorf(get(st.node, "names"), join(st.path, "names"), "%d names for %d fractions: want one per fraction", len(names), len(st.Fractions))
		c.d = nil
		return
	}
	if !c.then(s, c.d.WithSplit(splitColumn, st.Fractions, names, st.Seed), func(err error) { c.fail(err, st.node, st.path) }) {
		c.d = nil
		return
	}
	c.dirBy = splitColumn
}
