package structured

import "slices"

// fkind is what a frame of the automaton's stack is parsing.
type fkind uint8

const (
	fValue   fkind = iota // before a value of n
	fString               // inside a string (after its opening quote)
	fNumber               // inside a number
	fLiteral              // inside one of n.lits (or true, false, null)
	fObject               // inside an object
	fArray                // inside an array
	fKey                  // inside a property name of a schema object (after the quote)
)

// Object and array states.
const (
	sOpen  = iota // after { or [
	sColon        // object: after a key
	sAfter        // after a member's or item's value
	sComma        // after ,
)

// Number states.
const (
	nSign    = iota // after -
	nZero           // after a leading 0 (accepting)
	nInt            // in the integer digits (accepting)
	nDot            // after .
	nFrac           // in the fraction digits (accepting)
	nExp            // after e or E
	nExpSign        // after the exponent's sign
	nExpInt         // in the exponent digits (accepting)
)

// Bounds on numbers, so that generation ends and every number fits a
// float64 (and an integer an int64) exactly enough: characters, integer
// digits, exponent digits.
const (
	maxNumberLen = 24
	maxIntDigits = 15
	maxExpDigits = 2
)

// frame is one level of the automaton's stack; frames are values, so a
// stack is copied by copying its slice.
type frame struct {
	kind  fkind
	n     *node
	st    uint8
	esc   uint8  // string: 0 none, 1 after \, 2-5 hex digits left of \u
	count int    // string characters, array items, number characters
	idx   int    // object: the next property index
	lit   string // literal or key: what has been matched
	lits  []string
}

// Parser is the automaton's state: a stack of frames. The zero value is
// not ready; use Grammar.Start.
type Parser struct {
	stack []frame
	dead  bool
}

// Start returns a parser before the grammar's value.
func (g *Grammar) Start() *Parser {
	return &Parser{stack: []frame{{kind: fValue, n: g.root}}}
}

// Done reports whether what has been fed is a whole value (and so an EOS
// may come).
func (p *Parser) Done() bool {
	if p.dead {
		return false
	}
	switch len(p.stack) {
	case 0:
		return true
	case 1:
		return p.stack[0].accepting()
	}
	return false
}

// Feed advances the parser over b and reports whether every byte was
// allowed; after a false, the parser is dead.
func (p *Parser) Feed(b []byte) bool {
	for _, c := range b {
		if !p.feed(c) {
			p.dead = true
			return false
		}
	}
	return true
}

// copyFrom makes p a copy of q, reusing p's stack.
func (p *Parser) copyFrom(q *Parser) {
	p.stack = append(p.stack[:0], q.stack...)
	p.dead = q.dead
}

// accepting reports whether a frame could end here, given the next byte
// is not its own.
func (f *frame) accepting() bool {
	switch f.kind {
	case fNumber:
		return f.st == nZero || f.st == nInt || f.st == nFrac || f.st == nExpInt
	case fLiteral:
		return slices.Contains(f.lits, f.lit)
	}
	return false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// feed takes one byte.
func (p *Parser) feed(c byte) bool {
	if p.dead {
		return false
	}
	for len(p.stack) > 0 {
		f := &p.stack[len(p.stack)-1]
		switch f.kind {
		case fValue:
			return p.startValue(c)
		case fString:
			return p.stringByte(f, c)
		case fNumber:
			if ok, done := numberByte(f, c); ok {
				return true
			} else if !done {
				return false
			}
			p.pop() // the number ended before c: c is the parent's
		case fLiteral:
			next := f.lit + string(c)
			if slices.ContainsFunc(f.lits, func(l string) bool { return len(l) >= len(next) && l[:len(next)] == next }) {
				f.lit = next
				if slices.Contains(f.lits, next) && !slices.ContainsFunc(f.lits, func(l string) bool { return len(l) > len(next) && l[:len(next)] == next }) {
					p.pop()
				}
				return true
			}
			if !slices.Contains(f.lits, f.lit) {
				return false
			}
			p.pop()
		case fKey:
			return p.keyByte(f, c)
		case fObject:
			return p.objectByte(f, c)
		case fArray:
			return p.arrayByte(f, c)
		}
	}
	return false // the value is complete: nothing may follow
}

func (p *Parser) pop() { p.stack = p.stack[:len(p.stack)-1] }

func (p *Parser) push(f frame) { p.stack = append(p.stack, f) }

// replace turns the top frame (a fValue) into f.
func (p *Parser) replace(f frame) { p.stack[len(p.stack)-1] = f }

// startValue begins the top fValue's value with c.
func (p *Parser) startValue(c byte) bool {
	n := p.stack[len(p.stack)-1].n
	k := n.kind
	switch {
	case k == kLiteral:
		p.replace(frame{kind: fLiteral, n: n, lits: n.lits})
		return p.feed(c)
	case c == '"' && (k == kString || k == kAny):
		p.replace(frame{kind: fString, n: n})
		if k == kString && n.maxLen == 0 {
			// only the closing quote may come; stringByte checks.
		}
		return true
	case (c == '-' || isDigit(c)) && (k == kNumber || k == kInteger || k == kAny):
		p.replace(frame{kind: fNumber, n: n, st: nSign, count: 0})
		ok, _ := numberByte(&p.stack[len(p.stack)-1], c)
		return ok
	case c == '{' && (k == kObject || k == kAny):
		if k == kAny {
			n = Object().root
		}
		p.replace(frame{kind: fObject, n: n, st: sOpen})
		return true
	case c == '[' && (k == kArray || k == kAny):
		if k == kAny {
			n = &node{kind: kArray, items: anyNode, maxLen: anyNode.maxLen}
		}
		p.replace(frame{kind: fArray, n: n, st: sOpen})
		return true
	case (c == 't' || c == 'f') && k == kAny:
		p.replace(frame{kind: fLiteral, n: n, lits: boolLits})
		return p.feed(c)
	case c == 'n' && k == kAny:
		p.replace(frame{kind: fLiteral, n: n, lits: nullLits})
		return p.feed(c)
	}
	return false
}

// stringByte takes one byte of a string's body.
func (p *Parser) stringByte(f *frame, c byte) bool {
	switch {
	case f.esc == 1:
		if c == 'u' {
			f.esc = 2
			return true
		}
		if !slices.Contains([]byte(`"\/bfnrt`), c) {
			return false
		}
		f.esc = 0
		return true
	case f.esc >= 2:
		if !isDigit(c) && !(c >= 'a' && c <= 'f') && !(c >= 'A' && c <= 'F') {
			return false
		}
		f.esc++
		if f.esc == 6 {
			f.esc = 0
		}
		return true
	case c == '"':
		if f.count < f.n.minLen {
			return false
		}
		p.pop()
		return true
	case c < 0x20:
		return false
	}
	if c&0xC0 != 0x80 { // a character starts
		if f.count >= f.n.maxLen {
			return false
		}
		f.count++
	}
	if c == '\\' {
		f.esc = 1
	}
	return true
}

// numberByte takes one byte of a number: ok says c was taken; otherwise
// done says the number is whole and c belongs to what follows.
func numberByte(f *frame, c byte) (ok, done bool) {
	if f.count >= maxNumberLen {
		return false, f.accepting()
	}
	integer := f.n.kind == kInteger
	next := f.st
	switch {
	case f.count == 0 && c == '-':
		next = nSign
	case f.count == 0 && c == '0', f.st == nSign && c == '0':
		next = nZero
	case f.count == 0 && isDigit(c), f.st == nSign && isDigit(c):
		next = nInt
	case f.st == nInt && isDigit(c) && f.idx < maxIntDigits:
	case (f.st == nZero || f.st == nInt) && c == '.' && !integer:
		next = nDot
	case (f.st == nDot || f.st == nFrac) && isDigit(c):
		next = nFrac
	case (f.st == nZero || f.st == nInt || f.st == nFrac) && (c == 'e' || c == 'E') && !integer:
		next = nExp
	case f.st == nExp && (c == '+' || c == '-'):
		next = nExpSign
	case (f.st == nExp || f.st == nExpSign || f.st == nExpInt) && isDigit(c) && (f.st != nExpInt || f.lit == "" || len(f.lit) < maxExpDigits):
		next = nExpInt
	default:
		return false, f.accepting()
	}
	switch next {
	case nInt, nZero:
		f.idx++ // integer digits
	case nExpInt:
		f.lit += "0" // exponent digits, counted in lit's length
	}
	f.st = next
	f.count++
	return true, false
}

// keyByte takes one byte of a schema object's property name.
func (p *Parser) keyByte(f *frame, c byte) bool {
	obj := &p.stack[len(p.stack)-2]
	props := obj.n.props
	if c == '"' {
		for i := obj.idx; i < len(props); i++ {
			if props[i].key == f.lit {
				p.pop()
				obj.idx = i + 1
				obj.st = sColon
				return true
			}
			if props[i].required {
				break
			}
		}
		return false
	}
	next := f.lit + string(c)
	for i := obj.idx; i < len(props); i++ {
		if k := props[i].key; len(k) >= len(next) && k[:len(next)] == next {
			f.lit = next
			return true
		}
		if props[i].required {
			break
		}
	}
	return false
}

// canEnd reports whether a schema object may close: no required property
// is left.
func canEnd(f *frame) bool {
	for _, pr := range f.n.props[f.idx:] {
		if pr.required {
			return false
		}
	}
	return true
}

func (p *Parser) objectByte(f *frame, c byte) bool {
	switch f.st {
	case sOpen, sComma:
		if c == '}' && f.st == sOpen && (f.n.free || canEnd(f)) {
			p.pop()
			return true
		}
		if c != '"' {
			return false
		}
		f.st = sColon
		if f.n.free {
			p.push(frame{kind: fString, n: anyNode})
		} else {
			if f.idx >= len(f.n.props) {
				return false
			}
			p.push(frame{kind: fKey, n: f.n})
		}
		return true
	case sColon:
		if c != ':' {
			return false
		}
		f.st = sAfter
		val := anyNode
		if !f.n.free {
			val = f.n.props[f.idx-1].val
		}
		p.push(frame{kind: fValue, n: val})
		return true
	case sAfter:
		switch {
		case c == '}' && (f.n.free || canEnd(f)):
			p.pop()
			return true
		case c == ',' && (f.n.free || f.idx < len(f.n.props)):
			f.st = sComma
			return true
		}
	}
	return false
}

func (p *Parser) arrayByte(f *frame, c byte) bool {
	switch f.st {
	case sOpen:
		if c == ']' && f.n.minLen == 0 {
			p.pop()
			return true
		}
		if f.n.maxLen == 0 {
			return false
		}
		f.st, f.count = sAfter, 1
		p.push(frame{kind: fValue, n: f.n.items})
		return p.feed(c)
	case sAfter:
		switch {
		case c == ']' && f.count >= f.n.minLen:
			p.pop()
			return true
		case c == ',' && f.count < f.n.maxLen:
			f.st = sComma
			return true
		}
	case sComma:
		f.st = sAfter
		f.count++
		p.push(frame{kind: fValue, n: f.n.items})
		return p.feed(c)
	}
	return false
}
