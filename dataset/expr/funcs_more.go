package expr

import (
	"bytes"
	"fmt"
	"math"
	"regexp"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/scalar"
)

// This file holds the functions that are rewritten into other expressions
// (nullif, if, greatest, least), LIKE and ILIKE, the float math functions,
// replace and regexp_replace.

// macro rewrites a call into an expression of the core language, bound in
// its place. Arguments are reused as they are, so errors point into them.
type macro struct {
	min, max int // max < 0: variadic
	rewrite  func(c *Call) Expr
}

var macros = map[string]*macro{
	// nullif(a, b) is NULL where a = b, else a (PostgreSQL, DuckDB).
	"nullif": {2, 2, func(c *Call) Expr {
		a, b := c.Args[0], c.Args[1]
		return &Case{Whens: []When{{Cond: &Binary{Op: OpEq, X: a, Y: b, OpPos: c.NamePos}, Then: &Literal{ValuePos: c.NamePos}}}, Else: a, CasePos: c.NamePos}
	}},
	// if(cond, a, b) is a where cond is TRUE, else b (NULL cond: b).
	"if": {3, 3, func(c *Call) Expr {
		return &Case{Whens: []When{{Cond: c.Args[0], Then: c.Args[1]}}, Else: c.Args[2], CasePos: c.NamePos}
	}},
	// greatest and least skip NULLs and are NULL only when every
	// argument is (PostgreSQL, DuckDB).
	"greatest": {1, -1, func(c *Call) Expr { return extreme(c, OpGe) }},
	"least":    {1, -1, func(c *Call) Expr { return extreme(c, OpLe) }},
}

// extreme folds the arguments left to right: m(a, b) is b where a is NULL,
// a where b is NULL, else a if a op b holds, else b.
func extreme(c *Call, op Op) Expr {
	acc := c.Args[0]
	for _, y := range c.Args[1:] {
		x := acc
		acc = &Case{Whens: []When{
			{Cond: &IsNull{X: x, IsPos: c.NamePos}, Then: y},
			{Cond: &IsNull{X: y, IsPos: c.NamePos}, Then: x},
			{Cond: &Binary{Op: op, X: x, Y: y, OpPos: c.NamePos}, Then: x},
		}, Else: y, CasePos: c.NamePos}
	}
	return acc
}

// unsupported are well-known SQL functions that Compile does not have: a
// call says "not supported" rather than suggesting a near name.
var unsupported = map[string]bool{}

func init() {
	for _, n := range strings.Fields(`
		date_add date_sub date_part datepart extract
		strptime to_char to_date to_timestamp now current_date current_timestamp
		split string_split split_part string_agg array_agg list unnest
		lpad rpad ltrim rtrim left right reverse repeat position strpos instr
		sign mod trunc truncate log log2 cbrt sin cos tan asin acos atan atan2 pi random
		md5 sha256 hash uuid json_extract json_extract_string
		row_number rank dense_rank lag lead first_value last_value ntile
		sum avg min max count median stddev variance`) {
		unsupported[n] = true
	}
}

// maxExtremeArgs bounds greatest/least: each argument doubles the
// rewritten expression.
const maxExtremeArgs = 8

func init() {
	funcs["sqrt"] = &funcDef{1, 1, bindFloatMap(func(x float64) (float64, string) {
		if x < 0 {
			return 0, "cannot take the square root of a negative number"
		}
		return math.Sqrt(x), ""
	})}
	logOf := func(f func(float64) float64) func(float64) (float64, string) {
		return func(x float64) (float64, string) {
			switch {
			case x == 0:
				return 0, "cannot take the logarithm of zero"
			case x < 0:
				return 0, "cannot take the logarithm of a negative number"
			}
			return f(x), ""
		}
	}
	funcs["ln"] = &funcDef{1, 1, bindFloatMap(logOf(math.Log))}
	funcs["log10"] = &funcDef{1, 1, bindFloatMap(logOf(math.Log10))}
	funcs["exp"] = &funcDef{1, 1, bindFloatMap(func(x float64) (float64, string) { return math.Exp(x), "" })}
	funcs["power"] = &funcDef{2, 2, bindPower}
	funcs["pow"] = funcs["power"]
	funcs["like"] = &funcDef{2, 2, bindLike(false)}
	funcs["ilike"] = &funcDef{2, 2, bindLike(true)}
	funcs["replace"] = &funcDef{3, 3, bindReplace}
	funcs["regexp_replace"] = &funcDef{3, 4, bindRegexpReplace}
}

// bindMacro binds a call of a macro, or returns false.
func (b *binder) bindMacro(c *Call) (node, bool, error) {
	m, ok := macros[c.Name]
	if !ok {
		return nil, false, nil
	}
	if n := len(c.Args); n < m.min || (m.max >= 0 && n > m.max) {
		want := fmt.Sprintf("%d arguments", m.min)
		if m.max < 0 {
			want = fmt.Sprintf("at least %d argument%s", m.min, plural(m.min))
		}
		return nil, true, errorf(ErrType, c.NamePos, "function %s expects %s, got %d", c.Name, want, n)
	}
	if (c.Name == "greatest" || c.Name == "least") && len(c.Args) > maxExtremeArgs {
		return nil, true, errorf(ErrType, c.NamePos, "function %s takes at most %d arguments, got %d", c.Name, maxExtremeArgs, len(c.Args))
	}
	n, err := b.bindValue(c.Args[0])
	if err == nil && c.Name != "if" && len(c.Args) > 1 {
		// The arguments must share a type; say so in the function's words
		// rather than the CASE's.
		ns := []node{n}
		for _, a := range c.Args[1:] {
			var m node
			if m, err = b.bindValue(a); err != nil {
				break
			}
			ns = append(ns, m)
		}
		if err == nil {
			if _, bad, why := commonType(ns); bad >= 0 {
				err = errorf(ErrType, c.Args[bad].Pos(), "function %s: argument %d is %s, %s", c.Name, bad+1, describe(ns[bad]), why)
			}
		}
	}
	if err != nil {
		return nil, true, err
	}
	out, err := b.bindValue(m.rewrite(c))
	return out, true, err
}

// bindFloatMap binds a float function of one numeric argument; f returns
// a message for a value outside its domain, which fails the evaluation
// (as in PostgreSQL and DuckDB) rather than giving NaN.
func bindFloatMap(f func(float64) (float64, string)) func(*binder, *Call, []node) (node, error) {
	return func(b *binder, c *Call, args []node) (node, error) {
		x, err := numericArg(c, args, 0)
		if err != nil {
			return nil, err
		}
		if n := strictNull(c, []node{x}, typFloat64); n != nil {
			return n, nil
		}
		if x, err = coerce(x, typFloat64); err != nil {
			return nil, err
		}
		return maybeFold(&fnNode{label: c.Name, args: []node{x}, dt: typFloat64, null: x.nullable(), src: c, run: floatKernel(f)})
	}
}

func floatKernel(f func(float64) (float64, string)) kernel {
	return func(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
		return floatMap2(ec, args[0], nil, func(x, _ float64) (float64, string) { return f(x) })
	}
}

// floatMap2 applies f to the rows of one or two float64 arguments (y may
// be nil); a row NULL in either is NULL.
func floatMap2(ec *evalCtx, xd, yd compute.Datum, f func(x, y float64) (float64, string)) (compute.Datum, error) {
	ds := []compute.Datum{xd}
	if yd != nil {
		ds = append(ds, yd)
	}
	n := ec.n
	valid, nulls, allNull := intersectValidity(ec.mem, n, ds...)
	if allNull {
		return compute.NewDatum(scalar.MakeNullScalar(typFloat64)), nil
	}
	x := newFixedView[float64](xd)
	var y fixedView[float64]
	if yd != nil {
		y = newFixedView[float64](yd)
	}
	outBuf, out := newFixedOut[float64](ec.mem, n)
	for i := 0; i < n; i++ {
		if !x.ok(i) || yd != nil && !y.ok(i) {
			continue
		}
		var yv float64
		if yd != nil {
			yv = y.at(i)
		}
		v, bad := f(x.at(i), yv)
		if bad != "" {
			outBuf.Release()
			if valid != nil {
				valid.Release()
			}
			return nil, fmt.Errorf("%s", bad)
		}
		out[i] = v
	}
	return makeDatum(typFloat64, n, nulls, valid, outBuf), nil
}

// bindPower is power(x, y), x to the y, in float64 (as DuckDB's pow).
func bindPower(b *binder, c *Call, args []node) (node, error) {
	x, err := numericArg(c, args, 0)
	if err != nil {
		return nil, err
	}
	y, err := numericArg(c, args, 1)
	if err != nil {
		return nil, err
	}
	if n := strictNull(c, []node{x, y}, typFloat64); n != nil {
		return n, nil
	}
	if x, err = coerce(x, typFloat64); err != nil {
		return nil, err
	}
	if y, err = coerce(y, typFloat64); err != nil {
		return nil, err
	}
	return maybeFold(&fnNode{label: c.Name, args: []node{x, y}, dt: typFloat64, null: x.nullable() || y.nullable(), src: c,
		run: func(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
			return floatMap2(ec, args[0], args[1], func(x, y float64) (float64, string) {
				if x == 0 && y < 0 {
					return 0, "cannot raise zero to a negative power"
				}
				if x < 0 && y != math.Trunc(y) {
					return 0, "a negative number raised to a non-integer power is not a real number"
				}
				return math.Pow(x, y), ""
			})
		}})
}

// literalString is argument i of c as a string literal.
func literalString(c *Call, args []node, i int, what string) (string, bool, error) {
	p, ok := args[i].(*constNode)
	if ok && isNullConst(p) {
		return "", true, nil
	}
	if !ok || !isString(p.typ()) {
		return "", false, errorf(ErrType, c.Args[i].Pos(), "function %s expects a string literal %s as argument %d, got %s", c.Name, what, i+1, describe(args[i]))
	}
	return p.sc.(*scalar.String).String(), false, nil
}

// likeRegexp turns a LIKE pattern into an anchored RE2 pattern: % is any
// run of characters, _ one character, and a backslash takes the next
// character literally (PostgreSQL's default escape).
func likeRegexp(pat string, fold bool) string {
	var sb strings.Builder
	sb.WriteString("(?s")
	if fold {
		sb.WriteString("i")
	}
	sb.WriteString(")^")
	rs := []rune(pat)
	for i := 0; i < len(rs); i++ {
		switch r := rs[i]; r {
		case '%':
			sb.WriteString(".*")
		case '_':
			sb.WriteString(".")
		case '\\':
			if i+1 < len(rs) {
				i++
				sb.WriteString(regexp.QuoteMeta(string(rs[i])))
			} else {
				sb.WriteString(`\\`)
			}
		default:
			sb.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	sb.WriteString("$")
	return sb.String()
}

// bindLike is x LIKE 'pattern' (like(x, 'pattern')); ilike folds case.
func bindLike(fold bool) func(*binder, *Call, []node) (node, error) {
	return func(b *binder, c *Call, args []node) (node, error) {
		s, err := stringArg(c, args, 0)
		if err != nil {
			return nil, err
		}
		pat, null, err := literalString(c, args, 1, "pattern")
		if err != nil {
			return nil, err
		}
		if null {
			return &constNode{sc: scalar.MakeNullScalar(typBool), src: c}, nil
		}
		if n := strictNull(c, []node{s}, typBool); n != nil {
			return n, nil
		}
		re, err := regexp.Compile(likeRegexp(pat, fold))
		if err != nil {
			return nil, errorf(ErrType, c.Args[1].Pos(), "invalid LIKE pattern %s: %v", quoteString(pat), err)
		}
		return maybeFold(&fnNode{label: strings.ToUpper(c.Name), args: []node{s}, dt: typBool, null: s.nullable(), src: c, run: regexpKernel(re)})
	}
}

// bindReplace is replace(s, from, to): every occurrence of the literal
// from replaced by to (PostgreSQL, DuckDB).
func bindReplace(b *binder, c *Call, args []node) (node, error) {
	s, err := stringArg(c, args, 0)
	if err != nil {
		return nil, err
	}
	from, null1, err := literalString(c, args, 1, "to find")
	if err != nil {
		return nil, err
	}
	to, null2, err := literalString(c, args, 2, "to put in its place")
	if err != nil {
		return nil, err
	}
	if null1 || null2 {
		return &constNode{sc: scalar.MakeNullScalar(typString), src: c}, nil
	}
	if n := strictNull(c, []node{s}, typString); n != nil {
		return n, nil
	}
	fb, tb := []byte(from), []byte(to)
	return maybeFold(&fnNode{label: c.Name, args: []node{s}, dt: typString, null: s.nullable(), src: c,
		run: func(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
			return mapStrings(ec, args[0], func(dst, s []byte) []byte {
				if len(fb) == 0 {
					return append(dst, s...)
				}
				for {
					i := bytes.Index(s, fb)
					if i < 0 {
						return append(dst, s...)
					}
					dst = append(append(dst, s[:i]...), tb...)
					s = s[i+len(fb):]
				}
			})
		}})
}

// backref is \1 .. \9 in a regexp_replace replacement.
var backref = regexp.MustCompile(`\\([0-9])`)

// bindRegexpReplace is regexp_replace(s, pattern, replacement [, 'g']):
// the first match replaced, or every match with the flag 'g', as in
// PostgreSQL and DuckDB; \1 in the replacement is the first group.
func bindRegexpReplace(b *binder, c *Call, args []node) (node, error) {
	s, err := stringArg(c, args, 0)
	if err != nil {
		return nil, err
	}
	pat, null1, err := literalString(c, args, 1, "pattern")
	if err != nil {
		return nil, err
	}
	repl, null2, err := literalString(c, args, 2, "replacement")
	if err != nil {
		return nil, err
	}
	global := false
	if len(args) == 4 {
		flags, _, err := literalString(c, args, 3, "of flags")
		if err != nil {
			return nil, err
		}
		for _, f := range flags {
			switch f {
			case 'g':
				global = true
			case 'i':
				pat = "(?i)" + pat
			default:
				return nil, errorf(ErrType, c.Args[3].Pos(), "regexp_replace: flag %q is not supported (have g, i)", f)
			}
		}
	}
	if null1 || null2 {
		return &constNode{sc: scalar.MakeNullScalar(typString), src: c}, nil
	}
	if n := strictNull(c, []node{s}, typString); n != nil {
		return n, nil
	}
	re, err := regexp.Compile(pat)
	if err != nil {
		return nil, errorf(ErrType, c.Args[1].Pos(), "invalid regular expression %s: %v", quoteString(pat), err)
	}
	tmpl := []byte(backref.ReplaceAllString(strings.ReplaceAll(repl, "$", "$$"), "$${$1}"))
	return maybeFold(&fnNode{label: c.Name, args: []node{s}, dt: typString, null: s.nullable(), src: c,
		run: func(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
			return mapStrings(ec, args[0], func(dst, s []byte) []byte {
				if global {
					return append(dst, re.ReplaceAll(s, tmpl)...)
				}
				m := re.FindSubmatchIndex(s)
				if m == nil {
					return append(dst, s...)
				}
				dst = append(dst, s[:m[0]]...)
				dst = re.Expand(dst, tmpl, s, m)
				return append(dst, s[m[1]:]...)
			})
		}})
}
