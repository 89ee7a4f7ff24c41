package expr

import (
	"bytes"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/scalar"
)

func init() {
	funcs["strptime"] = &funcDef{2, 2, bindStrptime}
	funcs["split"] = &funcDef{2, 2, bindSplit}
	funcs["string_split"] = funcs["split"]
	delete(unsupported, "strptime")
	delete(unsupported, "split")
	delete(unsupported, "string_split")
}

// strptimeSpecs are the % codes strptime reads, as Go layouts. Day and
// month take one or two digits, as C's strptime does.
var strptimeSpecs = map[byte]string{
	'Y': "2006", 'y': "06", 'm': "1", 'd': "2", 'H': "15", 'I': "3", 'M': "04", 'S': "05",
	'p': "PM", 'a': "Mon", 'A': "Monday", 'b': "Jan", 'B': "January", 'j': "002",
	'F': "2006-1-2", 'T': "15:04:05",
}

// goLayoutWords are the runs of text Go's time package would read as a
// layout element, so a literal part of a format may not hold them.
var goLayoutWords = []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "Jan", "Mon", "MST", "PM", "pm", "Z07", "Z0"}

// strptimeLayout compiles a C format into a Go layout. %f (fractions of a
// second) must follow "%S." and reads any number of digits, as Go reads a
// fraction after the seconds on its own.
func strptimeLayout(f string) (string, string) {
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			j := i
			for j < len(f) && f[j] != '%' {
				j++
			}
			lit := f[i:j]
			if j+1 < len(f) && f[j+1] == 'f' && strings.HasSuffix(lit, ".") && strings.HasSuffix(f[:i], "%S") {
				lit = strings.TrimSuffix(lit, ".")
			}
			for _, w := range goLayoutWords {
				if strings.Contains(lit, w) {
					return "", "the literal text " + quoteString(lit) + " holds " + quoteString(w) + ", which strptime cannot match yet"
				}
			}
			b.WriteString(lit)
			i = j - 1
			continue
		}
		if i+1 >= len(f) {
			return "", "format " + quoteString(f) + " ends with a lone %"
		}
		i++
		switch c := f[i]; c {
		case '%':
			b.WriteByte('%')
		case 'f':
			if !strings.HasSuffix(f[:i-1], "%S.") {
				return "", "%f must follow %S. (as in %S.%f)"
			}
		default:
			l, ok := strptimeSpecs[c]
			if !ok {
				return "", "%" + string(c) + " is not supported (have %Y %y %m %d %H %I %M %S %f %p %a %A %b %B %j %F %T %%)"
			}
			b.WriteString(l)
		}
	}
	return b.String(), ""
}

// bindStrptime is strptime(s, 'format'): text read as a timestamp[us] in
// UTC with the C codes strftime writes. A value that does not match is an
// error naming the value and the format, as in DuckDB.
func bindStrptime(b *binder, c *Call, args []node) (node, error) {
	s, err := stringArg(c, args, 0)
	if err != nil {
		return nil, err
	}
	f, null, err := literalString(c, args, 1, "format")
	if err != nil {
		return nil, err
	}
	if null {
		return &constNode{sc: scalar.MakeNullScalar(tsMicro), src: c}, nil
	}
	layout, bad := strptimeLayout(f)
	if bad != "" {
		return nil, errorf(ErrType, c.Args[1].Pos(), "strptime: %s", bad)
	}
	if n := strictNull(c, []node{s}, tsMicro); n != nil {
		return n, nil
	}
	return maybeFold(&fnNode{label: c.Name, args: []node{s}, dt: tsMicro, null: s.nullable(), src: c,
		run: func(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
			n := ec.n
			valid, nulls, allNull := intersectValidity(ec.mem, n, args[0])
			if allNull {
				return compute.NewDatum(scalar.MakeNullScalar(tsMicro)), nil
			}
			x := newStrView(args[0])
			outBuf, out := newFixedOut[int64](ec.mem, n)
			for i := 0; i < n; i++ {
				if !x.ok(i) {
					continue
				}
				t, err := time.Parse(layout, string(x.at(i)))
				if err != nil {
					outBuf.Release()
					if valid != nil {
						valid.Release()
					}
					return nil, errorf(ErrEval, c.NamePos, "strptime: %s does not match the format %s", quoteString(string(x.at(i))), quoteString(f))
				}
				out[i] = t.UnixMicro()
			}
			return makeDatum(tsMicro, n, nulls, valid, outBuf), nil
		}})
}

var typStringList = arrow.ListOf(arrow.BinaryTypes.String)

// bindSplit is split(s, 'sep'): the parts of s between occurrences of sep,
// as a list<string> (DuckDB's string_split): split('a,,b', ',') is
// ['a', ”, 'b']; an empty sep splits into characters; NULL is NULL.
func bindSplit(b *binder, c *Call, args []node) (node, error) {
	s, err := stringArg(c, args, 0)
	if err != nil {
		return nil, err
	}
	sep, null, err := literalString(c, args, 1, "separator")
	if err != nil {
		return nil, err
	}
	if null {
		return &constNode{sc: scalar.MakeNullScalar(typStringList), src: c}, nil
	}
	if n := strictNull(c, []node{s}, typStringList); n != nil {
		return n, nil
	}
	sb := []byte(sep)
	return &fnNode{label: c.Name, args: []node{s}, dt: typStringList, null: s.nullable(), src: c,
		run: func(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
			x := newStrView(args[0])
			lb := array.NewListBuilder(ec.mem, arrow.BinaryTypes.String)
			defer lb.Release()
			vb := lb.ValueBuilder().(*array.StringBuilder)
			for i := 0; i < ec.n; i++ {
				if !x.ok(i) {
					lb.AppendNull()
					continue
				}
				lb.Append(true)
				v := x.at(i)
				if len(sb) == 0 {
					for _, r := range string(v) {
						vb.Append(string(r))
					}
					continue
				}
				for {
					j := bytes.Index(v, sb)
					if j < 0 {
						vb.Append(string(v))
						break
					}
					vb.Append(string(v[:j]))
					v = v[j+len(sb):]
				}
			}
			arr := lb.NewArray()
			defer arr.Release()
			return compute.NewDatum(arr), nil
		}}, nil
}
