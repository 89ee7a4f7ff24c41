package expr

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/scalar"
)

// funcDef describes one function: its arity and how to bind a call.
type funcDef struct {
	min, max int // max < 0: variadic
	bind     func(b *binder, c *Call, args []node) (node, error)
}

// funcs is the function table, filled once at init. Names are lower case.
var funcs map[string]*funcDef

func init() {
	funcs = map[string]*funcDef{
		"length":       {1, 1, bindLength},
		"lower":        {1, 1, bindStringMap(lowerKernel)},
		"upper":        {1, 1, bindStringMap(upperKernel)},
		"trim":         {1, 1, bindStringMap(trimKernel)},
		"substr":       {2, 3, bindSubstr},
		"concat":       {1, -1, bindConcat},
		"contains":     {2, 2, bindStringPredicate(containsKernel)},
		"starts_with":  {2, 2, bindStringPredicate(startsWithKernel)},
		"ends_with":    {2, 2, bindStringPredicate(endsWithKernel)},
		"regexp_match": {2, 2, bindRegexpMatch},
		"abs":          {1, 1, bindAbs},
		"round":        {1, 2, bindRound},
		"floor":        {1, 1, bindFloorCeil(false)},
		"ceil":         {1, 1, bindFloorCeil(true)},
		"coalesce":     {1, -1, bindCoalesce},
		"year":         {1, 1, bindDatePart(partYear)},
		"month":        {1, 1, bindDatePart(partMonth)},
		"day":          {1, 1, bindDatePart(partDay)},
		"hour":         {1, 1, bindDatePart(partHour)},
	}
	funcs["substring"] = funcs["substr"]
	funcs["ceiling"] = funcs["ceil"]
}

// Functions lists the function names Compile accepts, sorted.
func Functions() []string {
	names := make([]string, 0, len(funcs)+len(macros))
	for n := range funcs {
		names = append(names, n)
	}
	for n := range macros {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (b *binder) bindCall(c *Call) (node, error) {
	if n, ok, err := b.bindMacro(c); ok {
		return n, err
	}
	def, ok := funcs[c.Name]
	if !ok {
		if unsupported[c.Name] {
			return nil, errorf(ErrUnknownFunction, c.NamePos, "function %s is not supported (the functions are: %s)", c.Name, strings.Join(Functions(), ", "))
		}
		return nil, errorf(ErrUnknownFunction, c.NamePos, "unknown function %q%s", c.Name, suggest(c.Name, Functions()))
	}
	if n := len(c.Args); n < def.min || (def.max >= 0 && n > def.max) {
		var want string
		switch {
		case def.max < 0:
			want = fmt.Sprintf("at least %d argument%s", def.min, plural(def.min))
		case def.min == def.max:
			want = fmt.Sprintf("%d argument%s", def.min, plural(def.min))
		default:
			want = fmt.Sprintf("%d or %d arguments", def.min, def.max)
		}
		return nil, errorf(ErrType, c.NamePos, "function %s expects %s, got %d", c.Name, want, n)
	}
	args := make([]node, len(c.Args))
	for i, a := range c.Args {
		n, err := b.bindValue(a)
		if err != nil {
			return nil, err
		}
		args[i] = n
	}
	return def.bind(b, c, args)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// argOf checks that argument i of c has a type accepted by ok, and
// converts NULL to type null.
func argOf(c *Call, args []node, i int, what string, ok func(arrow.DataType) bool, null arrow.DataType) (node, error) {
	a := args[i]
	if isNullConst(a) {
		return coerce(a, null)
	}
	if !ok(a.typ()) {
		return nil, errorf(ErrType, c.Args[i].Pos(), "function %s expects %s as argument %d, got %s", c.Name, what, i+1, describe(a))
	}
	return a, nil
}

func stringArg(c *Call, args []node, i int) (node, error) {
	return argOf(c, args, i, "a string", isString, typString)
}

func integerArg(c *Call, args []node, i int) (node, error) {
	a, err := argOf(c, args, i, "an integer", isInteger, typInt64)
	if err != nil {
		return nil, err
	}
	return coerce(a, typInt64)
}

func numericArg(c *Call, args []node, i int) (node, error) {
	return argOf(c, args, i, "a numeric", isNumeric, typInt64)
}

func anyNullable(ns []node) bool {
	for _, n := range ns {
		if n.nullable() {
			return true
		}
	}
	return false
}

// strictNull returns a NULL constant of type t when any argument is a NULL
// literal: the functions below all return NULL for NULL input.
func strictNull(c *Call, args []node, t arrow.DataType) node {
	for _, a := range args {
		if isNullConst(a) {
			return &constNode{sc: scalar.MakeNullScalar(t), src: c}
		}
	}
	return nil
}

func bindLength(b *binder, c *Call, args []node) (node, error) {
	s, err := stringArg(c, args, 0)
	if err != nil {
		return nil, err
	}
	if n := strictNull(c, []node{s}, typInt64); n != nil {
		return n, nil
	}
	return maybeFold(&fnNode{label: c.Name, args: []node{s}, dt: typInt64, null: s.nullable(), src: c, run: lengthKernel})
}

func bindStringMap(k kernel) func(*binder, *Call, []node) (node, error) {
	return func(b *binder, c *Call, args []node) (node, error) {
		s, err := stringArg(c, args, 0)
		if err != nil {
			return nil, err
		}
		if n := strictNull(c, []node{s}, typString); n != nil {
			return n, nil
		}
		return maybeFold(&fnNode{label: c.Name, args: []node{s}, dt: typString, null: s.nullable(), src: c, run: k})
	}
}

func bindSubstr(b *binder, c *Call, args []node) (node, error) {
	s, err := stringArg(c, args, 0)
	if err != nil {
		return nil, err
	}
	ns := []node{s}
	for i := 1; i < len(args); i++ {
		a, err := integerArg(c, args, i)
		if err != nil {
			return nil, err
		}
		ns = append(ns, a)
	}
	if n := strictNull(c, ns, typString); n != nil {
		return n, nil
	}
	return maybeFold(&fnNode{label: c.Name, args: ns, dt: typString, null: anyNullable(ns), src: c, run: substrKernel})
}

func bindConcat(b *binder, c *Call, args []node) (node, error) {
	ns := make([]node, 0, len(args))
	for i, a := range args {
		if isNullConst(a) {
			continue // concat skips NULLs
		}
		if !canCast(a.typ(), typString) {
			return nil, errorf(ErrType, c.Args[i].Pos(), "function concat cannot convert argument %d to string: got %s", i+1, describe(a))
		}
		a, err := coerce(a, typString)
		if err != nil {
			return nil, err
		}
		ns = append(ns, a)
	}
	if len(ns) == 0 {
		return &constNode{sc: scalar.NewStringScalar(""), src: c}, nil
	}
	return maybeFold(&fnNode{label: c.Name, lenient: true, args: ns, dt: typString, src: c, run: concatKernel})
}

func bindStringPredicate(k kernel) func(*binder, *Call, []node) (node, error) {
	return func(b *binder, c *Call, args []node) (node, error) {
		ns := make([]node, 2)
		for i := range ns {
			a, err := stringArg(c, args, i)
			if err != nil {
				return nil, err
			}
			ns[i] = a
		}
		if n := strictNull(c, ns, typBool); n != nil {
			return n, nil
		}
		return maybeFold(&fnNode{label: c.Name, args: ns, dt: typBool, null: anyNullable(ns), src: c, run: k})
	}
}

func bindRegexpMatch(b *binder, c *Call, args []node) (node, error) {
	s, err := stringArg(c, args, 0)
	if err != nil {
		return nil, err
	}
	p, ok := args[1].(*constNode)
	if !ok || !isString(p.typ()) && !isNullConst(p) {
		return nil, errorf(ErrType, c.Args[1].Pos(), "function regexp_match expects a string literal pattern as argument 2, got %s", describe(args[1]))
	}
	if n := strictNull(c, []node{s, p}, typBool); n != nil {
		return n, nil
	}
	pat := p.sc.(*scalar.String).String()
	re, err := regexp.Compile(pat)
	if err != nil {
		return nil, errorf(ErrType, c.Args[1].Pos(), "invalid regular expression %s: %v", quoteString(pat), err)
	}
	return maybeFold(&fnNode{label: c.Name, args: []node{s}, dt: typBool, null: s.nullable(), src: c, run: regexpKernel(re)})
}

func bindAbs(b *binder, c *Call, args []node) (node, error) {
	x, err := numericArg(c, args, 0)
	if err != nil {
		return nil, err
	}
	rt := pick(isFloat(x.typ()), typFloat64, typInt64)
	if n := strictNull(c, []node{x}, rt); n != nil {
		return n, nil
	}
	if x, err = coerce(x, rt); err != nil {
		return nil, err
	}
	return maybeFold(&fnNode{label: c.Name, args: []node{x}, dt: rt, null: x.nullable(), src: c, run: callCompute("abs", nil)})
}

func bindRound(b *binder, c *Call, args []node) (node, error) {
	x, err := numericArg(c, args, 0)
	if err != nil {
		return nil, err
	}
	rt := pick(isFloat(x.typ()), typFloat64, typInt64)
	digits := int64(0)
	if len(args) == 2 {
		d, ok := args[1].(*constNode)
		if !ok || !isInteger(d.typ()) || !d.sc.IsValid() {
			return nil, errorf(ErrType, c.Args[1].Pos(), "function round expects an integer literal as argument 2, got %s", describe(args[1]))
		}
		digits, _ = intValue(d.sc)
	}
	if n := strictNull(c, []node{x}, rt); n != nil {
		return n, nil
	}
	if x, err = coerce(x, rt); err != nil {
		return nil, err
	}
	if rt.ID() == arrow.INT64 && digits >= 0 {
		return x, nil // integers are already whole
	}
	k := pick(rt.ID() == arrow.INT64, roundIntKernel(digits), roundFloatKernel(digits))
	return maybeFold(&fnNode{label: c.Name, args: []node{x}, dt: rt, null: x.nullable(), src: c, run: k})
}

func bindFloorCeil(ceil bool) func(*binder, *Call, []node) (node, error) {
	return func(b *binder, c *Call, args []node) (node, error) {
		x, err := numericArg(c, args, 0)
		if err != nil {
			return nil, err
		}
		rt := pick(isFloat(x.typ()), typFloat64, typInt64)
		if n := strictNull(c, []node{x}, rt); n != nil {
			return n, nil
		}
		if x, err = coerce(x, rt); err != nil {
			return nil, err
		}
		if rt.ID() == arrow.INT64 {
			return x, nil
		}
		return maybeFold(&fnNode{label: c.Name, args: []node{x}, dt: rt, null: x.nullable(), src: c, run: floorCeilKernel(ceil)})
	}
}

func bindCoalesce(b *binder, c *Call, args []node) (node, error) {
	t, bad, why := commonType(args)
	if bad >= 0 {
		other := args[0]
		if bad == 0 {
			other = args[1]
		}
		msg := fmt.Sprintf("function coalesce has arguments of incompatible types: %s and %s", describe(other), describe(args[bad]))
		if why != "" {
			msg += ": " + describe(args[bad]) + " is " + why
		}
		return nil, &Error{Pos: c.Args[bad].Pos(), Msg: msg, Kind: ErrType}
	}
	if !selectable(t) {
		return nil, errorf(ErrType, c.NamePos, "function coalesce cannot produce values of type %s", typeName(t))
	}
	var ns []node
	for _, a := range args {
		if isNullConst(a) {
			continue
		}
		a, err := coerce(a, t)
		if err != nil {
			return nil, err
		}
		ns = append(ns, a)
		if !a.nullable() {
			break // later arguments are never reached
		}
	}
	switch len(ns) {
	case 0:
		return &constNode{sc: scalar.MakeNullScalar(t), src: c}, nil
	case 1:
		return ns[0], nil
	}
	null := true
	for _, a := range ns {
		null = null && a.nullable()
	}
	return maybeFold(&fnNode{label: c.Name, lenient: true, args: ns, dt: t, null: null, src: c, run: coalesceKernel(t)})
}

func bindDatePart(part datePart) func(*binder, *Call, []node) (node, error) {
	return func(b *binder, c *Call, args []node) (node, error) {
		x, err := argOf(c, args, 0, "a timestamp or date", isTemporal, typDate32)
		if err != nil {
			return nil, err
		}
		if n := strictNull(c, []node{x}, typInt64); n != nil {
			return n, nil
		}
		k, err := datePartKernel(x.typ(), part)
		if err != nil {
			return nil, errorf(ErrType, c.Args[0].Pos(), "%v", err)
		}
		return maybeFold(&fnNode{label: c.Name, args: []node{x}, dt: typInt64, null: x.nullable(), src: c, run: k})
	}
}
