package expr

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

type tokKind int

const (
	tokEOF tokKind = iota
	tokIdent
	tokQuotedIdent
	tokInt
	tokFloat
	tokString
	tokLParen
	tokRParen
	tokComma
	tokPlus
	tokMinus
	tokStar
	tokSlash
	tokPercent
	tokEq // = or ==
	tokNe // != or <>
	tokLt
	tokLe
	tokGt
	tokGe
)

var tokText = [...]string{
	tokLParen: "(", tokRParen: ")", tokComma: ",",
	tokPlus: "+", tokMinus: "-", tokStar: "*", tokSlash: "/", tokPercent: "%",
	tokEq: "=", tokNe: "!=", tokLt: "<", tokLe: "<=", tokGt: ">", tokGe: ">=",
}

type token struct {
	kind tokKind
	// text is the identifier (unquoted), the number as written, the
	// string's value with quotes removed, or the operator as written.
	text string
	pos  Pos
}

// describe renders t for "expected X but found Y" messages.
func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of input"
	case tokIdent:
		if _, ok := keywords[strings.ToUpper(t.text)]; ok {
			return strings.ToUpper(t.text)
		}
		return fmt.Sprintf("identifier %s", t.text)
	case tokQuotedIdent:
		return fmt.Sprintf("identifier %s", quoteIdent(t.text))
	case tokInt, tokFloat:
		return fmt.Sprintf("number %s", t.text)
	case tokString:
		return "string " + quoteString(truncate(t.text, 20))
	default:
		return fmt.Sprintf("%q", t.text)
	}
}

// keywords are reserved words; they are matched case-insensitively and
// cannot be used as bare column names (quote them: "end").
var keywords = map[string]struct{}{
	"AND": {}, "OR": {}, "NOT": {}, "IN": {}, "IS": {}, "NULL": {},
	"TRUE": {}, "FALSE": {}, "BETWEEN": {}, "CASE": {}, "WHEN": {},
	"THEN": {}, "ELSE": {}, "END": {}, "CAST": {}, "AS": {},
}

func isIdentStart(r rune) bool {
	return r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
}

func isIdentPart(r rune) bool { return isIdentStart(r) || (r >= '0' && r <= '9') }

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

// lexer turns source into tokens, tracking line and column in runes.
type lexer struct {
	src  string
	off  int // byte offset of the next rune
	line int
	col  int
}

// lex tokenizes all of src; the last token is always tokEOF.
func lex(src string) ([]token, error) {
	lx := &lexer{src: src, line: 1, col: 1}
	var toks []token
	for {
		t, err := lx.next()
		if err != nil {
			return nil, err
		}
		toks = append(toks, t)
		if t.kind == tokEOF {
			return toks, nil
		}
	}
}

func (lx *lexer) peek() (rune, int) {
	if lx.off >= len(lx.src) {
		return -1, 0
	}
	return utf8.DecodeRuneInString(lx.src[lx.off:])
}

func (lx *lexer) peekAt(n int) rune {
	off := lx.off
	for ; n > 0 && off < len(lx.src); n-- {
		_, w := utf8.DecodeRuneInString(lx.src[off:])
		off += w
	}
	if off >= len(lx.src) {
		return -1
	}
	r, _ := utf8.DecodeRuneInString(lx.src[off:])
	return r
}

func (lx *lexer) advance() rune {
	r, w := lx.peek()
	if w == 0 {
		return -1
	}
	lx.off += w
	if r == '\n' {
		lx.line++
		lx.col = 1
	} else {
		lx.col++
	}
	return r
}

func (lx *lexer) pos() Pos { return Pos{Line: lx.line, Col: lx.col} }

func (lx *lexer) next() (token, error) {
	for {
		r, _ := lx.peek()
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' || r == '\v' {
			lx.advance()
			continue
		}
		break
	}
	start := lx.pos()
	r, w := lx.peek()
	switch {
	case w == 0:
		return token{kind: tokEOF, pos: start}, nil
	case isIdentStart(r):
		begin := lx.off
		for {
			r, _ := lx.peek()
			if !isIdentPart(r) {
				break
			}
			lx.advance()
		}
		return token{kind: tokIdent, text: lx.src[begin:lx.off], pos: start}, nil
	case isDigit(r) || (r == '.' && isDigit(lx.peekAt(1))):
		return lx.number(start)
	case r == '\'':
		s, err := lx.quoted('\'', start)
		if err != nil {
			return token{}, err
		}
		return token{kind: tokString, text: s, pos: start}, nil
	case r == '"':
		s, err := lx.quoted('"', start)
		if err != nil {
			return token{}, err
		}
		if s == "" {
			return token{}, errorf(ErrSyntax, start, "empty quoted identifier")
		}
		return token{kind: tokQuotedIdent, text: s, pos: start}, nil
	}
	lx.advance()
	two := func(next rune, kind tokKind, text string) (token, bool) {
		if r2, _ := lx.peek(); r2 == next {
			lx.advance()
			return token{kind: kind, text: text, pos: start}, true
		}
		return token{}, false
	}
	switch r {
	case '(':
		return token{kind: tokLParen, text: "(", pos: start}, nil
	case ')':
		return token{kind: tokRParen, text: ")", pos: start}, nil
	case ',':
		return token{kind: tokComma, text: ",", pos: start}, nil
	case '+':
		return token{kind: tokPlus, text: "+", pos: start}, nil
	case '-':
		return token{kind: tokMinus, text: "-", pos: start}, nil
	case '*':
		return token{kind: tokStar, text: "*", pos: start}, nil
	case '/':
		return token{kind: tokSlash, text: "/", pos: start}, nil
	case '%':
		return token{kind: tokPercent, text: "%", pos: start}, nil
	case '=':
		if t, ok := two('=', tokEq, "=="); ok {
			return t, nil
		}
		return token{kind: tokEq, text: "=", pos: start}, nil
	case '!':
		if t, ok := two('=', tokNe, "!="); ok {
			return t, nil
		}
		return token{}, errorf(ErrSyntax, start, `unexpected character '!' (did you mean "!=" or NOT?)`)
	case '<':
		if t, ok := two('=', tokLe, "<="); ok {
			return t, nil
		}
		if t, ok := two('>', tokNe, "<>"); ok {
			return t, nil
		}
		return token{kind: tokLt, text: "<", pos: start}, nil
	case '>':
		if t, ok := two('=', tokGe, ">="); ok {
			return t, nil
		}
		return token{kind: tokGt, text: ">", pos: start}, nil
	}
	if r == utf8.RuneError && w == 1 {
		return token{}, errorf(ErrSyntax, start, "invalid UTF-8 byte 0x%02x", lx.src[lx.off-1])
	}
	return token{}, errorf(ErrSyntax, start, "unexpected character %q", r)
}

// number lexes digits [. digits] [e [+-] digits], or . digits [exponent].
func (lx *lexer) number(start Pos) (token, error) {
	begin := lx.off
	isFloat := false
	digits := func() int {
		n := 0
		for {
			r, _ := lx.peek()
			if !isDigit(r) {
				return n
			}
			lx.advance()
			n++
		}
	}
	digits()
	if r, _ := lx.peek(); r == '.' {
		lx.advance()
		isFloat = true
		digits()
	}
	if r, _ := lx.peek(); r == 'e' || r == 'E' {
		ePos := lx.pos()
		lx.advance()
		if r, _ := lx.peek(); r == '+' || r == '-' {
			lx.advance()
		}
		if digits() == 0 {
			return token{}, errorf(ErrSyntax, ePos, "malformed number %q: exponent has no digits", lx.src[begin:lx.off])
		}
		isFloat = true
	}
	if r, _ := lx.peek(); isIdentPart(r) || r == '.' {
		return token{}, errorf(ErrSyntax, lx.pos(), "unexpected character %q after number %s", r, lx.src[begin:lx.off])
	}
	kind := tokInt
	if isFloat {
		kind = tokFloat
	}
	return token{kind: kind, text: lx.src[begin:lx.off], pos: start}, nil
}

// quoted lexes a quote-delimited string or identifier in which the quote
// is escaped by doubling it.
func (lx *lexer) quoted(q rune, start Pos) (string, error) {
	lx.advance() // opening quote
	var sb strings.Builder
	begin := lx.off
	for {
		r, w := lx.peek()
		if w == 0 {
			what := "string"
			if q == '"' {
				what = "quoted identifier"
			}
			return "", errorf(ErrSyntax, start, "unterminated %s", what)
		}
		if r == q {
			sb.WriteString(lx.src[begin:lx.off])
			lx.advance()
			if r2, _ := lx.peek(); r2 == q {
				sb.WriteRune(q)
				lx.advance()
				begin = lx.off
				continue
			}
			return sb.String(), nil
		}
		lx.advance()
	}
}

// quoteString renders s as a SQL string literal.
func quoteString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// quoteIdent renders a column name so that it lexes back to the same name:
// bare when it is a plain identifier and not a keyword, double-quoted
// otherwise.
func quoteIdent(name string) string {
	if isPlainIdent(name) {
		if _, kw := keywords[strings.ToUpper(name)]; !kw {
			return name
		}
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

func isPlainIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if i == 0 && !isIdentStart(r) || !isIdentPart(r) {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for k := range s {
		if i == n {
			return s[:k] + "…"
		}
		i++
	}
	return s
}
