package expr

import (
	"math"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
)

// maxDepth bounds nesting so that hostile input cannot exhaust the stack.
const maxDepth = 500

// Parse parses src into a syntax tree. It checks syntax only: column and
// function names are resolved, and types checked, by Bind.
func Parse(src string) (Expr, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	e, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, p.unexpected(t, "end of input")
	}
	return e, nil
}

type parser struct {
	toks  []token
	i     int
	depth int
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) peekN(n int) token {
	if p.i+n >= len(p.toks) {
		return p.toks[len(p.toks)-1]
	}
	return p.toks[p.i+n]
}

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

// isKeyword reports whether t is the bare (unquoted) keyword kw.
func isKeyword(t token, kw string) bool {
	return t.kind == tokIdent && strings.EqualFold(t.text, kw)
}

func (p *parser) acceptKeyword(kw string) (token, bool) {
	if t := p.peek(); isKeyword(t, kw) {
		return p.next(), true
	}
	return token{}, false
}

func (p *parser) expectKeyword(kw string) (token, error) {
	if t, ok := p.acceptKeyword(kw); ok {
		return t, nil
	}
	return token{}, p.unexpected(p.peek(), kw)
}

func (p *parser) expect(kind tokKind) (token, error) {
	if t := p.peek(); t.kind == kind {
		return p.next(), nil
	}
	return token{}, p.unexpected(p.peek(), strconv.Quote(tokText[kind]))
}

func (p *parser) unexpected(t token, want string) error {
	return errorf(ErrSyntax, t.pos, "expected %s but found %s", want, t.describe())
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return errorf(ErrSyntax, p.peek().pos, "expression nested too deeply (more than %d levels)", maxDepth)
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

func (p *parser) parseExpr() (Expr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	return p.parseOr()
}

func (p *parser) parseOr() (Expr, error) {
	x, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	for {
		t, ok := p.acceptKeyword("OR")
		if !ok {
			return x, nil
		}
		y, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		x = &Binary{Op: OpOr, X: x, Y: y, OpPos: t.pos}
	}
}

func (p *parser) parseAnd() (Expr, error) {
	x, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	for {
		t, ok := p.acceptKeyword("AND")
		if !ok {
			return x, nil
		}
		y, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		x = &Binary{Op: OpAnd, X: x, Y: y, OpPos: t.pos}
	}
}

func (p *parser) parseNot() (Expr, error) {
	t, ok := p.acceptKeyword("NOT")
	if !ok {
		return p.parseComparison()
	}
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	x, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	return &Unary{Op: OpNot, X: x, OpPos: t.pos}, nil
}

var cmpOps = map[tokKind]Op{
	tokEq: OpEq, tokNe: OpNe, tokLt: OpLt, tokLe: OpLe, tokGt: OpGt, tokGe: OpGe,
}

// parseComparison handles the non-chaining postfix forms at comparison
// precedence: op Y, IS [NOT] NULL, [NOT] IN (...), [NOT] BETWEEN lo AND hi.
// They associate to the left.
func (p *parser) parseComparison() (Expr, error) {
	x, err := p.parseAdditive()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		if op, ok := cmpOps[t.kind]; ok {
			p.next()
			y, err := p.parseAdditive()
			if err != nil {
				return nil, err
			}
			x = &Binary{Op: op, X: x, Y: y, OpPos: t.pos}
			continue
		}
		switch {
		case isKeyword(t, "IS"):
			p.next()
			_, not := p.acceptKeyword("NOT")
			if _, err := p.expectKeyword("NULL"); err != nil {
				return nil, err
			}
			x = &IsNull{X: x, Not: not, IsPos: t.pos}
		case isKeyword(t, "NOT"):
			// Only x NOT IN / x NOT BETWEEN can follow an operand.
			nt := p.peekN(1)
			switch {
			case isKeyword(nt, "IN"):
				p.next()
				x, err = p.parseIn(x, true)
			case isKeyword(nt, "BETWEEN"):
				p.next()
				x, err = p.parseBetween(x, true)
			case isKeyword(nt, "LIKE"), isKeyword(nt, "ILIKE"):
				p.next()
				x, err = p.parseLike(x, true)
			default:
				return nil, p.unexpected(nt, "IN, BETWEEN, LIKE or ILIKE after NOT")
			}
			if err != nil {
				return nil, err
			}
		case isKeyword(t, "IN"):
			x, err = p.parseIn(x, false)
			if err != nil {
				return nil, err
			}
		case isKeyword(t, "BETWEEN"):
			x, err = p.parseBetween(x, false)
			if err != nil {
				return nil, err
			}
		case isKeyword(t, "LIKE"), isKeyword(t, "ILIKE"):
			x, err = p.parseLike(x, false)
			if err != nil {
				return nil, err
			}
		default:
			return x, nil
		}
	}
}

func (p *parser) parseIn(x Expr, not bool) (Expr, error) {
	in := p.next() // IN
	if _, err := p.expect(tokLParen); err != nil {
		return nil, err
	}
	e := &In{X: x, Not: not, InPos: in.pos}
	for {
		t := p.peek()
		v, err := p.parseAdditive()
		if err != nil {
			return nil, err
		}
		lit, ok := v.(*Literal)
		if !ok {
			return nil, errorf(ErrSyntax, t.pos, "IN list may only contain literals, found %s", v)
		}
		e.List = append(e.List, lit)
		if t := p.peek(); t.kind == tokComma {
			p.next()
			continue
		}
		if _, err := p.expect(tokRParen); err != nil {
			if p.peek().kind != tokEOF {
				return nil, p.unexpected(p.peek(), `"," or ")"`)
			}
			return nil, err
		}
		return e, nil
	}
}

// parseLike reads x [NOT] LIKE|ILIKE pattern as the call like(x,
// pattern) or ilike(x, pattern), under NOT when negated.
func (p *parser) parseLike(x Expr, not bool) (Expr, error) {
	lt := p.next() // LIKE or ILIKE
	pat, err := p.parseAdditive()
	if err != nil {
		return nil, err
	}
	var e Expr = &Call{Name: strings.ToLower(lt.text), Args: []Expr{x, pat}, NamePos: lt.pos}
	if not {
		e = &Unary{Op: OpNot, X: e, OpPos: lt.pos}
	}
	return e, nil
}

func (p *parser) parseBetween(x Expr, not bool) (Expr, error) {
	bt := p.next() // BETWEEN
	lo, err := p.parseAdditive()
	if err != nil {
		return nil, err
	}
	if _, err := p.expectKeyword("AND"); err != nil {
		return nil, err
	}
	hi, err := p.parseAdditive()
	if err != nil {
		return nil, err
	}
	return &Between{X: x, Lo: lo, Hi: hi, Not: not, BetweenPos: bt.pos}, nil
}

func (p *parser) parseAdditive() (Expr, error) {
	x, err := p.parseMultiplicative()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		var op Op
		switch t.kind {
		case tokPlus:
			op = OpAdd
		case tokMinus:
			op = OpSub
		default:
			return x, nil
		}
		p.next()
		y, err := p.parseMultiplicative()
		if err != nil {
			return nil, err
		}
		x = &Binary{Op: op, X: x, Y: y, OpPos: t.pos}
	}
}

func (p *parser) parseMultiplicative() (Expr, error) {
	x, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		var op Op
		switch t.kind {
		case tokStar:
			op = OpMul
		case tokSlash:
			op = OpDiv
		case tokPercent:
			op = OpMod
		default:
			return x, nil
		}
		p.next()
		y, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		x = &Binary{Op: op, X: x, Y: y, OpPos: t.pos}
	}
}

func (p *parser) parseUnary() (Expr, error) {
	t := p.peek()
	if t.kind != tokMinus {
		return p.parsePrimary()
	}
	p.next()
	// Fold the sign into a numeric literal, so that -9223372036854775808
	// (whose magnitude overflows int64) is a valid literal.
	if n := p.peek(); n.kind == tokInt || n.kind == tokFloat {
		p.next()
		lit, err := numberLiteral(n, true)
		if err != nil {
			return nil, err
		}
		lit.ValuePos = t.pos
		return lit, nil
	}
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	x, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	return &Unary{Op: OpNeg, X: x, OpPos: t.pos}, nil
}

func numberLiteral(t token, neg bool) (*Literal, error) {
	text := t.text
	if neg {
		text = "-" + text
	}
	if t.kind == tokInt {
		v, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return nil, errorf(ErrSyntax, t.pos, "integer literal %s is out of range for int64", text)
		}
		return &Literal{Value: v, ValuePos: t.pos}, nil
	}
	v, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsInf(v, 0) {
		return nil, errorf(ErrSyntax, t.pos, "float literal %s is out of range for float64", text)
	}
	return &Literal{Value: v, ValuePos: t.pos}, nil
}

func (p *parser) parsePrimary() (Expr, error) {
	t := p.peek()
	switch t.kind {
	case tokInt, tokFloat:
		p.next()
		return numberLiteral(t, false)
	case tokString:
		p.next()
		return &Literal{Value: t.text, ValuePos: t.pos}, nil
	case tokQuotedIdent:
		p.next()
		return &Column{Name: t.text, NamePos: t.pos}, nil
	case tokLParen:
		p.next()
		x, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tokRParen); err != nil {
			return nil, err
		}
		return x, nil
	case tokIdent:
		return p.parseIdent()
	}
	return nil, p.unexpected(t, "an expression")
}

func (p *parser) parseIdent() (Expr, error) {
	t := p.next()
	upper := strings.ToUpper(t.text)
	switch upper {
	case "NULL":
		return &Literal{Value: nil, ValuePos: t.pos}, nil
	case "TRUE":
		return &Literal{Value: true, ValuePos: t.pos}, nil
	case "FALSE":
		return &Literal{Value: false, ValuePos: t.pos}, nil
	case "CASE":
		return p.parseCase(t)
	case "CAST":
		return p.parseCast(t)
	case "INTERVAL":
		// INTERVAL '1 day', INTERVAL '2' HOUR or INTERVAL 2 HOURS; like
		// DATE, a column may still be called interval.
		if s := p.peek(); s.kind == tokString || s.kind == tokInt {
			return p.parseInterval(t, s)
		}
	case "TIMESTAMP", "DATE":
		// A typed literal only when a string follows; otherwise these are
		// ordinary identifiers, so columns may be called "date".
		if s := p.peek(); s.kind == tokString {
			p.next()
			return typedLiteral(upper, s, t.pos)
		}
	}
	if _, kw := keywords[upper]; kw {
		return nil, p.unexpected(t, "an expression")
	}
	if p.peek().kind == tokLParen {
		return p.parseCall(t)
	}
	return &Column{Name: t.text, NamePos: t.pos}, nil
}

func (p *parser) parseInterval(kw, s token) (Expr, error) {
	p.next()
	unit := ""
	u := p.peek()
	_, known := intervalUnits[strings.TrimSuffix(strings.ToLower(u.text), "s")]
	switch {
	case u.kind == tokIdent && (known || s.kind == tokInt):
		p.next()
		unit = u.text
	case s.kind == tokInt:
		return nil, errorf(ErrSyntax, u.pos, "INTERVAL %s needs a unit (%s)", s.text, intervalUnitList)
	}
	iv, bad := parseInterval(s.text, unit)
	if bad != "" {
		text := quoteString(s.text)
		if unit != "" {
			text += " " + unit
		}
		return nil, errorf(ErrSyntax, s.pos, "invalid INTERVAL %s: %s", text, bad)
	}
	return &Literal{Value: iv, ValuePos: kw.pos}, nil
}

func typedLiteral(kind string, s token, pos Pos) (*Literal, error) {
	if kind == "DATE" {
		d, ok := parseDate(s.text)
		if !ok {
			return nil, errorf(ErrSyntax, s.pos, "invalid DATE literal %s: want 'YYYY-MM-DD'", quoteString(s.text))
		}
		return &Literal{Value: d, ValuePos: pos}, nil
	}
	ts, ok := parseTimestamp(s.text)
	if !ok {
		return nil, errorf(ErrSyntax, s.pos, "invalid TIMESTAMP literal %s: want 'YYYY-MM-DD[ HH:MM:SS[.fff]][Z|±HH:MM]'", quoteString(s.text))
	}
	return &Literal{Value: ts, ValuePos: pos}, nil
}

func (p *parser) parseCall(name token) (Expr, error) {
	p.next() // (
	c := &Call{Name: strings.ToLower(name.text), NamePos: name.pos}
	if p.peek().kind == tokRParen {
		p.next()
		return c, nil
	}
	for {
		a, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		c.Args = append(c.Args, a)
		switch t := p.peek(); t.kind {
		case tokComma:
			p.next()
		case tokRParen:
			p.next()
			return c, nil
		default:
			return nil, p.unexpected(t, `"," or ")"`)
		}
	}
}

func (p *parser) parseCast(kw token) (Expr, error) {
	if _, err := p.expect(tokLParen); err != nil {
		return nil, err
	}
	x, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	if _, err := p.expectKeyword("AS"); err != nil {
		return nil, err
	}
	tt := p.peek()
	if tt.kind != tokIdent {
		return nil, p.unexpected(tt, "a type name")
	}
	p.next()
	name, ok := canonicalType(tt.text)
	if !ok {
		return nil, errorf(ErrSyntax, tt.pos, "unknown type %q%s", tt.text, suggest(tt.text, castTypeNames()))
	}
	if _, err := p.expect(tokRParen); err != nil {
		return nil, err
	}
	return &Cast{X: x, Type: name, CastPos: kw.pos}, nil
}

func (p *parser) parseCase(kw token) (Expr, error) {
	c := &Case{CasePos: kw.pos}
	for {
		if _, ok := p.acceptKeyword("WHEN"); !ok {
			if len(c.Whens) == 0 {
				return nil, p.unexpected(p.peek(), "WHEN")
			}
			break
		}
		cond, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		if _, err := p.expectKeyword("THEN"); err != nil {
			return nil, err
		}
		then, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		c.Whens = append(c.Whens, When{Cond: cond, Then: then})
	}
	if _, ok := p.acceptKeyword("ELSE"); ok {
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		c.Else = e
	}
	if _, err := p.expectKeyword("END"); err != nil {
		if t := p.peek(); !isKeyword(t, "ELSE") {
			return nil, p.unexpected(t, "WHEN, ELSE or END")
		}
		return nil, err
	}
	return c, nil
}

// castTypes maps accepted type names (lower case) to canonical names.
// int/integer, real and float follow PostgreSQL: int32, float32 and
// float64.
var castTypes = map[string]string{
	"int8": "int8", "tinyint": "int8",
	"int16": "int16", "smallint": "int16",
	"int32": "int32", "int": "int32", "integer": "int32",
	"int64": "int64", "bigint": "int64",
	"float32": "float32", "real": "float32",
	"float64": "float64", "float": "float64", "double": "float64",
	"string": "string", "varchar": "string", "text": "string",
	"bool": "bool", "boolean": "bool",
	"timestamp": "timestamp", "date": "date",
}

func canonicalType(name string) (string, bool) {
	c, ok := castTypes[strings.ToLower(name)]
	return c, ok
}

func castTypeNames() []string {
	return []string{"int8", "int16", "int32", "int64", "int", "integer", "bigint", "smallint", "tinyint",
		"float32", "float64", "float", "double", "real", "string", "varchar", "text",
		"bool", "boolean", "timestamp", "date"}
}

// castTarget is the Arrow type of each canonical cast type name.
func castTarget(name string) arrow.DataType {
	switch name {
	case "int8":
		return arrow.PrimitiveTypes.Int8
	case "int16":
		return arrow.PrimitiveTypes.Int16
	case "int32":
		return arrow.PrimitiveTypes.Int32
	case "int64":
		return arrow.PrimitiveTypes.Int64
	case "float32":
		return arrow.PrimitiveTypes.Float32
	case "float64":
		return arrow.PrimitiveTypes.Float64
	case "string":
		return arrow.BinaryTypes.String
	case "bool":
		return arrow.FixedWidthTypes.Boolean
	case "timestamp":
		return tsMicro
	case "date":
		return arrow.FixedWidthTypes.Date32
	}
	return nil
}
