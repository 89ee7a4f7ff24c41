package expr

import (
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/scalar"
)

func init() {
	funcs["strftime"] = &funcDef{2, 2, bindStrftime}
}

// strftimeSpecs are the % codes strftime knows, as in C and DuckDB, each
// as a Go layout (or "" for those written by hand).
var strftimeSpecs = map[byte]string{
	'Y': "2006", 'y': "06", 'm': "01", 'd': "02", 'H': "15", 'I': "03", 'M': "04", 'S': "05",
	'p': "PM", 'a': "Mon", 'A': "Monday", 'b': "Jan", 'B': "January",
	'F': "2006-01-02", 'T': "15:04:05", 'f': "", 'j': "", '%': "",
}

// bindStrftime is strftime(t, 'format'): a timestamp or date as text in
// UTC, with the C codes %Y %y %m %d %H %I %M %S %f (microseconds, 6
// digits) %p %a %A %b %B %j %F %T %%.
func bindStrftime(b *binder, c *Call, args []node) (node, error) {
	x, err := temporalArg(c, args, 0)
	if err != nil {
		return nil, err
	}
	f, null, err := literalString(c, args, 1, "format")
	if err != nil {
		return nil, err
	}
	if null {
		return &constNode{sc: scalar.MakeNullScalar(typString), src: c}, nil
	}
	// Compile the format into a Go layout where it can be one, and the
	// codes Go has no layout for.
	type piece struct {
		layout string
		code   byte // 'f', 'j' or 0
	}
	var pieces []piece
	lit := []byte{}
	flush := func() {
		if len(lit) > 0 {
			pieces = append(pieces, piece{layout: "\x00" + string(lit)})
			lit = lit[:0]
		}
	}
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			lit = append(lit, f[i])
			continue
		}
		if i+1 >= len(f) {
			return nil, errorf(ErrType, c.Args[1].Pos(), "strftime: format %s ends with a lone %%", quoteString(f))
		}
		i++
		l, ok := strftimeSpecs[f[i]]
		if !ok {
			return nil, errorf(ErrType, c.Args[1].Pos(), "strftime: %%%c is not supported (have %%Y %%y %%m %%d %%H %%I %%M %%S %%f %%p %%a %%A %%b %%B %%j %%F %%T %%%%)", f[i])
		}
		switch f[i] {
		case '%':
			lit = append(lit, '%')
		case 'f', 'j':
			flush()
			pieces = append(pieces, piece{code: f[i]})
		default:
			flush()
			pieces = append(pieces, piece{layout: l})
		}
	}
	flush()
	if n := strictNull(c, []node{x}, typString); n != nil {
		return n, nil
	}
	return maybeFold(&fnNode{label: c.Name, args: []node{x}, dt: typString, null: x.nullable(), src: c,
		run: func(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
			n := ec.n
			valid, nulls, allNull := intersectValidity(ec.mem, n, args[0])
			if allNull {
				return compute.NewDatum(scalar.MakeNullScalar(typString)), nil
			}
			v := newFixedView[int64](args[0])
			so := newStrOut(ec.mem, n, n*len(f)*2)
			for i := 0; i < n; i++ {
				if v.ok(i) {
					us := v.at(i)
					t := time.UnixMicro(us).UTC()
					so.reserve(len(f) * 2)
					for _, p := range pieces {
						switch {
						case p.code == 'f':
							frac := us % 1e6
							if frac < 0 {
								frac += 1e6
							}
							s := strconv.FormatInt(frac+1e6, 10)[1:]
							so.data = append(so.data, s...)
						case p.code == 'j':
							s := strconv.Itoa(t.YearDay() + 1000)[1:]
							so.data = append(so.data, s...)
						case len(p.layout) > 0 && p.layout[0] == 0:
							so.data = append(so.data, p.layout[1:]...)
						default:
							so.data = t.AppendFormat(so.data, p.layout)
						}
					}
				}
				if err := so.end(i); err != nil {
					so.release()
					if valid != nil {
						valid.Release()
					}
					return nil, err
				}
			}
			return so.finish(n, valid, nulls), nil
		}})
}
