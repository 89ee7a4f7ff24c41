package expr

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// Expr is a parsed expression: the syntax tree produced by Parse, before
// names and types are resolved by Bind. The concrete node types are
// *Column, *Literal, *Unary, *Binary, *IsNull, *In, *Between, *Case, *Call
// and *Cast.
//
// String renders the expression in canonical form: keywords upper case,
// function names lower case, single spaces around operators, and only the
// parentheses that precedence requires. Parsing the canonical form yields
// an expression with the same canonical form.
//
// Pos is the position of the token that identifies the node: the operator
// of a *Unary or *Binary, the keyword of *IsNull, *In, *Between, *Case and
// *Cast, the name of a *Column or *Call, the first character of a *Literal.
type Expr interface {
	String() string
	Pos() Pos
	exprNode()
}

// Op is a unary or binary operator.
type Op int

// Operators. OpNeg and OpNot are unary; the rest are binary.
const (
	OpAdd Op = iota + 1
	OpSub
	OpMul
	OpDiv
	OpMod
	OpEq
	OpNe
	OpLt
	OpLe
	OpGt
	OpGe
	OpAnd
	OpOr
	OpNeg
	OpNot
)

var opText = [...]string{
	OpAdd: "+", OpSub: "-", OpMul: "*", OpDiv: "/", OpMod: "%",
	OpEq: "=", OpNe: "!=", OpLt: "<", OpLe: "<=", OpGt: ">", OpGe: ">=",
	OpAnd: "AND", OpOr: "OR", OpNeg: "-", OpNot: "NOT",
}

func (o Op) String() string {
	if o <= 0 || int(o) >= len(opText) {
		return "Op(" + strconv.Itoa(int(o)) + ")"
	}
	return opText[o]
}

func (o Op) isComparison() bool { return o >= OpEq && o <= OpGe }
func (o Op) isArithmetic() bool { return o >= OpAdd && o <= OpMod }

// Precedence levels, loosest first. They drive both the parser and the
// parenthesization in String.
const (
	precOr = iota + 1
	precAnd
	precNot
	precCmp // comparisons, IS, IN, BETWEEN
	precAdd
	precMul
	precNeg
	precPrimary
)

func (o Op) prec() int {
	switch o {
	case OpOr:
		return precOr
	case OpAnd:
		return precAnd
	case OpNot:
		return precNot
	case OpAdd, OpSub:
		return precAdd
	case OpMul, OpDiv, OpMod:
		return precMul
	case OpNeg:
		return precNeg
	}
	return precCmp
}

func prec(e Expr) int {
	switch e := e.(type) {
	case *Binary:
		return e.Op.prec()
	case *Unary:
		return e.Op.prec()
	case *IsNull, *In, *Between:
		return precCmp
	case *Literal:
		// A negative number prints with a leading '-', so it binds like
		// unary minus: (-1) IS NULL is fine, but -(-1) needs parentheses.
		if e.negative() {
			return precNeg
		}
	}
	return precPrimary
}

// Column references a column of the input by name.
type Column struct {
	Name    string
	NamePos Pos
}

// Literal is a constant. Value is nil (NULL), bool, int64, float64, string,
// time.Time (a TIMESTAMP literal, in UTC with microsecond precision),
// arrow.Date32 (a DATE literal) or Interval (an INTERVAL literal).
type Literal struct {
	Value    any
	ValuePos Pos
}

// Unary is -X or NOT X.
type Unary struct {
	Op    Op
	X     Expr
	OpPos Pos
}

// Binary is X op Y for arithmetic, comparison and logical operators.
type Binary struct {
	Op    Op
	X, Y  Expr
	OpPos Pos
}

// IsNull is X IS NULL, or X IS NOT NULL when Not is set.
type IsNull struct {
	X     Expr
	Not   bool
	IsPos Pos
}

// In is X IN (list), or X NOT IN (list) when Not is set. The list holds
// literals only.
type In struct {
	X     Expr
	List  []*Literal
	Not   bool
	InPos Pos
}

// Between is X BETWEEN Lo AND Hi, or X NOT BETWEEN Lo AND Hi.
type Between struct {
	X, Lo, Hi  Expr
	Not        bool
	BetweenPos Pos
}

// When is one WHEN Cond THEN Then arm of a CASE.
type When struct {
	Cond, Then Expr
}

// Case is CASE WHEN c THEN v ... [ELSE e] END. Else is nil when absent.
type Case struct {
	Whens   []When
	Else    Expr
	CasePos Pos
}

// Call is a function call. Name is lower case.
type Call struct {
	Name    string
	Args    []Expr
	NamePos Pos
}

// Cast is CAST(X AS Type). Type is the canonical type name, one of those
// listed by CastTypes.
type Cast struct {
	X       Expr
	Type    string
	CastPos Pos
}

func (*Column) exprNode()  {}
func (*Literal) exprNode() {}
func (*Unary) exprNode()   {}
func (*Binary) exprNode()  {}
func (*IsNull) exprNode()  {}
func (*In) exprNode()      {}
func (*Between) exprNode() {}
func (*Case) exprNode()    {}
func (*Call) exprNode()    {}
func (*Cast) exprNode()    {}

func (e *Column) Pos() Pos  { return e.NamePos }
func (e *Literal) Pos() Pos { return e.ValuePos }
func (e *Unary) Pos() Pos   { return e.OpPos }
func (e *Binary) Pos() Pos  { return e.OpPos }
func (e *IsNull) Pos() Pos  { return e.IsPos }
func (e *In) Pos() Pos      { return e.InPos }
func (e *Between) Pos() Pos { return e.BetweenPos }
func (e *Case) Pos() Pos    { return e.CasePos }
func (e *Call) Pos() Pos    { return e.NamePos }
func (e *Cast) Pos() Pos    { return e.CastPos }

func (e *Column) String() string { return quoteIdent(e.Name) }

func (e *Literal) negative() bool {
	switch v := e.Value.(type) {
	case int64:
		return v < 0
	case float64:
		return v < 0 || (v == 0 && math.Signbit(v))
	}
	return false
}

func (e *Literal) String() string { return formatLiteral(e.Value) }

// formatLiteral renders a literal value so that it lexes back to the same
// value and type.
func formatLiteral(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case bool:
		if v {
			return "TRUE"
		}
		return "FALSE"
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return formatFloat(v)
	case string:
		return quoteString(v)
	case time.Time:
		return "TIMESTAMP '" + formatTimestamp(v) + "'"
	case arrow.Date32:
		return "DATE '" + v.FormattedString() + "'"
	case Interval:
		return v.String()
	}
	return "<invalid literal>"
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "CAST('inf' AS float64)"
	case math.IsInf(v, -1):
		return "CAST('-inf' AS float64)"
	case math.IsNaN(v):
		return "CAST('nan' AS float64)"
	}
	s := strconv.FormatFloat(v, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eEn") {
		s += ".0"
	}
	return s
}

func formatTimestamp(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond() == 0 {
		return t.Format("2006-01-02 15:04:05")
	}
	return t.Format("2006-01-02 15:04:05.999999999")
}

// paren renders e, parenthesized when its precedence is below min.
func paren(e Expr, min int) string {
	if prec(e) < min {
		return "(" + e.String() + ")"
	}
	return e.String()
}

func (e *Unary) String() string {
	if e.Op == OpNot {
		return "NOT " + paren(e.X, precNot)
	}
	// Guard against "--", which would read as two minus signs glued
	// together and against -(-x) losing its parentheses.
	x := paren(e.X, precNeg+1)
	if lit, ok := e.X.(*Literal); strings.HasPrefix(x, "-") || ok && lit.Value == int64(0) {
		// -0 would read back as the literal 0.
		x = "(" + x + ")"
	}
	return "-" + x
}

func (e *Binary) String() string {
	p := e.Op.prec()
	return paren(e.X, p) + " " + e.Op.String() + " " + paren(e.Y, p+1)
}

func (e *IsNull) String() string {
	if e.Not {
		return paren(e.X, precCmp) + " IS NOT NULL"
	}
	return paren(e.X, precCmp) + " IS NULL"
}

func (e *In) String() string {
	var sb strings.Builder
	sb.WriteString(paren(e.X, precCmp))
	if e.Not {
		sb.WriteString(" NOT")
	}
	sb.WriteString(" IN (")
	for i, l := range e.List {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(l.String())
	}
	sb.WriteString(")")
	return sb.String()
}

func (e *Between) String() string {
	not := ""
	if e.Not {
		not = "NOT "
	}
	return paren(e.X, precCmp) + " " + not + "BETWEEN " + paren(e.Lo, precAdd) + " AND " + paren(e.Hi, precAdd)
}

func (e *Case) String() string {
	var sb strings.Builder
	sb.WriteString("CASE")
	for _, w := range e.Whens {
		sb.WriteString(" WHEN ")
		sb.WriteString(w.Cond.String())
		sb.WriteString(" THEN ")
		sb.WriteString(w.Then.String())
	}
	if e.Else != nil {
		sb.WriteString(" ELSE ")
		sb.WriteString(e.Else.String())
	}
	sb.WriteString(" END")
	return sb.String()
}

func (e *Call) String() string {
	var sb strings.Builder
	sb.WriteString(e.Name)
	sb.WriteString("(")
	for i, a := range e.Args {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(a.String())
	}
	sb.WriteString(")")
	return sb.String()
}

func (e *Cast) String() string { return "CAST(" + e.X.String() + " AS " + e.Type + ")" }

// Walk calls fn for e and each of its descendants in source order, stopping
// early when fn returns false.
func Walk(e Expr, fn func(Expr) bool) {
	walk(e, fn)
}

func walk(e Expr, fn func(Expr) bool) bool {
	if e == nil {
		return true
	}
	if !fn(e) {
		return false
	}
	switch e := e.(type) {
	case *Unary:
		return walk(e.X, fn)
	case *Binary:
		return walk(e.X, fn) && walk(e.Y, fn)
	case *IsNull:
		return walk(e.X, fn)
	case *In:
		if !walk(e.X, fn) {
			return false
		}
		for _, l := range e.List {
			if !walk(l, fn) {
				return false
			}
		}
	case *Between:
		return walk(e.X, fn) && walk(e.Lo, fn) && walk(e.Hi, fn)
	case *Case:
		for _, w := range e.Whens {
			if !walk(w.Cond, fn) || !walk(w.Then, fn) {
				return false
			}
		}
		return walk(e.Else, fn)
	case *Call:
		for _, a := range e.Args {
			if !walk(a, fn) {
				return false
			}
		}
	case *Cast:
		return walk(e.X, fn)
	}
	return true
}
