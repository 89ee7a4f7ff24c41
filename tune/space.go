package tune

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// Domain is the range of one hyperparameter: [Uniform], [LogUniform],
// [QUniform], [RandInt], [Choice] or [Grid].
type Domain interface {
	// sample draws a value (for Choice and Grid: an index).
	sample(r *rand.Rand) any
	// check says what is wrong with the range, or "".
	check() string
	// kind is the domain's key in YAML: uniform, loguniform...
	kind() string
}

// Uniform is a float64 drawn uniformly from [Lo, Hi).
type Uniform struct{ Lo, Hi float64 }

// LogUniform is a float64 whose logarithm is uniform in [log Lo, log Hi).
type LogUniform struct{ Lo, Hi float64 }

// QUniform is a float64 drawn uniformly from [Lo, Hi] and rounded to a
// multiple of Q (as Ray's tune.quniform), kept inside [Lo, Hi].
type QUniform struct{ Lo, Hi, Q float64 }

// RandInt is an int64 drawn uniformly from [Lo, Hi): Hi is exclusive.
type RandInt struct{ Lo, Hi int64 }

// Choice is one of Values, drawn uniformly. A value that is a [Space] is a
// conditional branch: its parameters exist only in the trials that chose it,
// and the trial's config holds the branch's sampled values as a map.
type Choice struct{ Values []any }

// Grid is one of Values; the grid searcher runs every combination of the
// Grid and Choice values (other searchers draw them like a Choice).
type Grid struct{ Values []any }

// Space maps parameter names to a [Domain], a nested Space, or a constant
// value copied into every config.
type Space map[string]any

// Values are one trial's hyperparameters: the space's keys with sampled
// values (a nested Space gives a nested map[string]any).
type Values = map[string]any

func (d Uniform) sample(r *rand.Rand) any { return d.Lo + r.Float64()*(d.Hi-d.Lo) }
func (d LogUniform) sample(r *rand.Rand) any {
	return math.Exp(math.Log(d.Lo) + r.Float64()*(math.Log(d.Hi)-math.Log(d.Lo)))
}
func (d QUniform) sample(r *rand.Rand) any { return d.round(d.Lo + r.Float64()*(d.Hi-d.Lo)) }
func (d RandInt) sample(r *rand.Rand) any  { return d.Lo + r.Int64N(d.Hi-d.Lo) }
func (d Choice) sample(r *rand.Rand) any   { return r.IntN(len(d.Values)) }
func (d Grid) sample(r *rand.Rand) any     { return r.IntN(len(d.Values)) }

// round quantizes x to a multiple of Q inside [Lo, Hi].
func (d QUniform) round(x float64) float64 {
	v := math.Round(x/d.Q) * d.Q
	for v < d.Lo {
		v += d.Q
	}
	for v > d.Hi {
		v -= d.Q
	}
	// Keep short decimals short: 0.1*3 is 0.30000000000000004.
	if s := strconv.FormatFloat(v, 'g', 12, 64); s != "" {
		v, _ = strconv.ParseFloat(s, 64)
	}
	return v
}

func (Uniform) kind() string    { return "uniform" }
func (LogUniform) kind() string { return "loguniform" }
func (QUniform) kind() string   { return "quniform" }
func (RandInt) kind() string    { return "randint" }
func (Choice) kind() string     { return "choice" }
func (Grid) kind() string       { return "grid" }

func finite(xs ...float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

func (d Uniform) check() string {
	if !finite(d.Lo, d.Hi) {
		return fmt.Sprintf("bounds must be finite, got [%g, %g]", d.Lo, d.Hi)
	}
	if d.Lo >= d.Hi {
		return fmt.Sprintf("empty range [%g, %g): lo must be below hi", d.Lo, d.Hi)
	}
	return ""
}

func (d LogUniform) check() string {
	if msg := (Uniform{d.Lo, d.Hi}).check(); msg != "" {
		return msg
	}
	if d.Lo <= 0 {
		return fmt.Sprintf("lo must be above 0 for a log scale, got %g", d.Lo)
	}
	return ""
}

func (d QUniform) check() string {
	if !finite(d.Lo, d.Hi, d.Q) {
		return fmt.Sprintf("bounds and q must be finite, got [%g, %g, %g]", d.Lo, d.Hi, d.Q)
	}
	if d.Q <= 0 {
		return fmt.Sprintf("q must be above 0, got %g", d.Q)
	}
	if d.Lo > d.Hi {
		return fmt.Sprintf("empty range [%g, %g]: lo must not be above hi", d.Lo, d.Hi)
	}
	if math.Ceil(d.Lo/d.Q)*d.Q > d.Hi+1e-12*math.Abs(d.Hi) {
		return fmt.Sprintf("no multiple of %g in [%g, %g]", d.Q, d.Lo, d.Hi)
	}
	return ""
}

func (d RandInt) check() string {
	if d.Lo >= d.Hi {
		return fmt.Sprintf("empty range [%d, %d): hi is exclusive and must be above lo", d.Lo, d.Hi)
	}
	return ""
}

func (d Choice) check() string { return checkValues(d.Values) }
func (d Grid) check() string   { return checkValues(d.Values) }

func checkValues(vs []any) string {
	if len(vs) == 0 {
		return "needs at least one value"
	}
	return ""
}

// Validate reports the first parameter whose range is empty or invalid,
// naming its path (lr, opt[1].momentum).
func (s Space) Validate() error {
	if len(s) == 0 {
		return fmt.Errorf("%w: the space has no parameters", ErrInvalid)
	}
	return s.validate("")
}

func (s Space) validate(prefix string) error {
	for _, k := range sortedKeys(s) {
		if err := validateValue(s[k], join(prefix, k)); err != nil {
			return err
		}
	}
	return nil
}

func validateValue(v any, path string) error {
	switch v := v.(type) {
	case Space:
		return v.validate(path)
	case Domain:
		if msg := v.check(); msg != "" {
			return fmt.Errorf("%w: %s: %s: %s", ErrInvalid, path, v.kind(), msg)
		}
		for i, o := range values(v) {
			if sub, ok := o.(Space); ok {
				if err := sub.validate(branch(path, i)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// values are a Choice's or Grid's values, nil for other domains.
func values(d any) []any {
	switch d := d.(type) {
	case Choice:
		return d.Values
	case Grid:
		return d.Values
	}
	return nil
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// branch is the path prefix of the parameters of option i of the
// Choice or Grid at path.
func branch(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Sample is a trial's config with the raw value of every parameter it
// drew, by path: the value for numeric domains, the index for Choice and
// Grid. Searchers learn from the params; trials see the config.
type Sample struct {
	Config Values         `json:"config"`
	Params map[string]any `json:"params"`
}

// pick chooses the raw value of the leaf at path (see Sample.Params).
type pick func(path string, d Domain) any

// build walks s in key order, asking pick for each parameter met; a
// Choice's branch is walked only when chosen.
func (s Space) build(pick pick) Sample {
	smp := Sample{Params: map[string]any{}}
	smp.Config = s.buildInto("", pick, smp.Params)
	return smp
}

func (s Space) buildInto(prefix string, pick pick, params map[string]any) Values {
	out := Values{}
	for _, k := range sortedKeys(s) {
		out[k] = buildValue(s[k], join(prefix, k), pick, params)
	}
	return out
}

func buildValue(v any, path string, pick pick, params map[string]any) any {
	switch v := v.(type) {
	case Space:
		return v.buildInto(path, pick, params)
	case Domain:
		raw := pick(path, v)
		params[path] = raw
		vs := values(v)
		if vs == nil {
			return raw
		}
		i := raw.(int)
		if sub, ok := vs[i].(Space); ok {
			return sub.buildInto(branch(path, i), pick, params)
		}
		return vs[i]
	}
	return v
}

// Leaves lists every parameter path of s, branches included, sorted.
func (s Space) leaves() map[string]Domain {
	out := map[string]Domain{}
	var walk func(s Space, prefix string)
	walk = func(s Space, prefix string) {
		for k, v := range s {
			path := join(prefix, k)
			switch v := v.(type) {
			case Space:
				walk(v, path)
			case Domain:
				out[path] = v
				for i, o := range values(v) {
					if sub, ok := o.(Space); ok {
						walk(sub, branch(path, i))
					}
				}
			}
		}
	}
	walk(s, "")
	return out
}

// gridPoints enumerates every combination of the Grid and Choice indices of
// s (branches expanded only under the option that holds them), in key
// order with the last key varying fastest.
func (s Space) gridPoints(prefix string) []map[string]int {
	points := []map[string]int{{}}
	for _, k := range sortedKeys(s) {
		sub := gridValue(s[k], join(prefix, k))
		var next []map[string]int
		for _, p := range points {
			for _, q := range sub {
				m := make(map[string]int, len(p)+len(q))
				for a, b := range p {
					m[a] = b
				}
				for a, b := range q {
					m[a] = b
				}
				next = append(next, m)
			}
		}
		points = next
	}
	return points
}

// gridSize counts gridPoints without building them, saturating at limit.
func (s Space) gridSize(limit int) int {
	n := 1
	for _, v := range s {
		var k int
		switch v := v.(type) {
		case Space:
			k = v.gridSize(limit)
		case Choice, Grid:
			for _, o := range values(v) {
				if sub, ok := o.(Space); ok {
					k += sub.gridSize(limit)
				} else {
					k++
				}
			}
		default:
			k = 1
		}
		if n = n * min(k, limit); n > limit {
			return limit + 1
		}
	}
	return n
}

func gridValue(v any, path string) []map[string]int {
	switch v := v.(type) {
	case Space:
		return v.gridPoints(path)
	case Choice, Grid:
		var out []map[string]int
		for i, o := range values(v) {
			sub, ok := o.(Space)
			if !ok {
				out = append(out, map[string]int{path: i})
				continue
			}
			for _, p := range sub.gridPoints(branch(path, i)) {
				p[path] = i
				out = append(out, p)
			}
		}
		return out
	}
	return []map[string]int{{}}
}

// formatConfig prints a config compactly with sorted keys: {lr=0.01 rank=8}.
func formatConfig(c Values) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range sortedKeys(c) {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		b.WriteByte('=')
		switch v := c[k].(type) {
		case Values:
			b.WriteString(formatConfig(v))
		case float64:
			b.WriteString(strconv.FormatFloat(v, 'g', 6, 64))
		default:
			fmt.Fprint(&b, v)
		}
	}
	b.WriteByte('}')
	return b.String()
}

// Names are the names a config of the space can hold once flattened (as
// Flags and Params flatten it): its parameters' names, a nested space's
// (or a conditional option's) in place of its own, sorted.
func (s Space) Names() []string {
	seen := map[string]bool{}
	s.collectNames(seen)
	return sortedKeys(seen)
}

func (s Space) collectNames(seen map[string]bool) {
	for k, v := range s {
		var opts []any
		switch d := v.(type) {
		case Space:
			d.collectNames(seen)
			continue
		case Choice:
			opts = d.Values
		case Grid:
			opts = d.Values
		}
		leaf := len(opts) == 0
		for _, o := range opts {
			if sub, ok := o.(Space); ok {
				sub.collectNames(seen)
			} else {
				leaf = true
			}
		}
		if leaf {
			seen[k] = true
		}
	}
}
