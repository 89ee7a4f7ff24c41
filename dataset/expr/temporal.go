package expr

import (
	"math"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// tsMicro is the type of TIMESTAMP literals and of CAST(x AS timestamp).
var tsMicro = &arrow.TimestampType{Unit: arrow.Microsecond}

const (
	secondsPerDay = 86400
	nanosPerDay   = secondsPerDay * 1e9
)

// unitsPerSecond is the number of ticks of u in one second.
func unitsPerSecond(u arrow.TimeUnit) int64 {
	switch u {
	case arrow.Second:
		return 1
	case arrow.Millisecond:
		return 1e3
	case arrow.Microsecond:
		return 1e6
	}
	return 1e9
}

// daysFromCivil returns the number of days from 1970-01-01 to y-m-d in the
// proleptic Gregorian calendar (Howard Hinnant's algorithm).
func daysFromCivil(y int64, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := int64(m+9) % 12
	doy := (153*mp+2)/5 + int64(d) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// civilFromDays is the inverse of daysFromCivil.
func civilFromDays(z int64) (y int64, m, d int) {
	z += 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era = (z - 146096) / 146097
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = int(doy - (153*mp+2)/5 + 1)
	if mp < 10 {
		m = int(mp + 3)
	} else {
		m = int(mp - 9)
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

// floorDiv divides rounding toward negative infinity, so that instants
// before 1970 land on the right day.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func daysIn(y int64, m int) int {
	switch m {
	case 4, 6, 9, 11:
		return 30
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	}
	return 31
}

// digits parses s[i:i+n] as a decimal number.
func digits(s string, i, n int) (int, bool) {
	if i+n > len(s) {
		return 0, false
	}
	v := 0
	for _, c := range []byte(s[i : i+n]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// parseDatePart parses "YYYY-MM-DD" at the start of s.
func parseDatePart(s string) (days int64, ok bool) {
	y, ok1 := digits(s, 0, 4)
	m, ok2 := digits(s, 5, 2)
	d, ok3 := digits(s, 8, 2)
	if !ok1 || !ok2 || !ok3 || s[4] != '-' || s[7] != '-' || m < 1 || m > 12 || d < 1 || d > daysIn(int64(y), m) {
		return 0, false
	}
	return daysFromCivil(int64(y), m, d), true
}

// parseDate parses exactly "YYYY-MM-DD".
func parseDate(s string) (arrow.Date32, bool) {
	if len(s) != 10 {
		return 0, false
	}
	days, ok := parseDatePart(s)
	return arrow.Date32(days), ok
}

// parseTimestampNanos parses "YYYY-MM-DD", optionally followed by ' ' or
// 'T' and "HH:MM[:SS[.fraction]]", optionally followed by a zone: "Z",
// "±HH", "±HHMM" or "±HH:MM". It returns seconds since the epoch (UTC) and
// the nanosecond fraction. It allocates nothing, as CAST runs it per row.
func parseTimestampNanos(s string) (sec int64, nsec int64, ok bool) {
	if len(s) < 10 {
		return 0, 0, false
	}
	days, ok := parseDatePart(s)
	if !ok {
		return 0, 0, false
	}
	sec = days * secondsPerDay
	rest := s[10:]
	if len(rest) == 0 {
		return sec, 0, true
	}
	if rest[0] != ' ' && rest[0] != 'T' && rest[0] != 't' {
		return 0, 0, false
	}
	rest = rest[1:]
	hh, ok1 := digits(rest, 0, 2)
	mm, ok2 := digits(rest, 3, 2)
	if !ok1 || !ok2 || rest[2] != ':' || hh > 23 || mm > 59 {
		return 0, 0, false
	}
	sec += int64(hh*3600 + mm*60)
	rest = rest[5:]
	if len(rest) > 0 && rest[0] == ':' {
		ss, ok := digits(rest, 1, 2)
		if !ok || ss > 59 {
			return 0, 0, false
		}
		sec += int64(ss)
		rest = rest[3:]
		if len(rest) > 0 && rest[0] == '.' {
			rest = rest[1:]
			n := 0
			for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
				if n < 9 {
					nsec = nsec*10 + int64(rest[n]-'0')
				}
				n++
			}
			if n == 0 {
				return 0, 0, false
			}
			for k := n; k < 9; k++ {
				nsec *= 10
			}
			rest = rest[n:]
		}
	}
	switch {
	case len(rest) == 0:
	case rest == "Z" || rest == "z":
	case rest[0] == '+' || rest[0] == '-':
		sign := int64(1)
		if rest[0] == '-' {
			sign = -1
		}
		z := rest[1:]
		oh, ok := digits(z, 0, 2)
		if !ok || oh > 18 {
			return 0, 0, false
		}
		om := 0
		switch {
		case len(z) == 2:
		case len(z) == 4:
			om, ok = digits(z, 2, 2)
		case len(z) == 5 && z[2] == ':':
			om, ok = digits(z, 3, 2)
		default:
			ok = false
		}
		if !ok || om > 59 {
			return 0, 0, false
		}
		// 12:00+02:00 is 10:00 UTC.
		sec -= sign * int64(oh*3600+om*60)
	default:
		return 0, 0, false
	}
	return sec, nsec, true
}

// parseTimestamp parses a TIMESTAMP literal into a UTC time.
func parseTimestamp(s string) (time.Time, bool) {
	sec, nsec, ok := parseTimestampNanos(s)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(sec, nsec).UTC(), true
}

// timeToUnit converts t to ticks of u, reporting whether the conversion is
// exact and in range.
func timeToUnit(t time.Time, u arrow.TimeUnit) (v int64, exact bool) {
	per := unitsPerSecond(u)
	sec := t.Unix()
	nsec := int64(t.Nanosecond())
	if sec > math.MaxInt64/per || sec < math.MinInt64/per {
		return 0, false
	}
	v = sec * per
	frac := nsec / (1e9 / per)
	if v > math.MaxInt64-frac {
		return 0, false
	}
	return v + frac, nsec%(1e9/per) == 0
}

// unitToTime converts ticks of u to a UTC time.
func unitToTime(v int64, u arrow.TimeUnit) time.Time {
	per := unitsPerSecond(u)
	sec := floorDiv(v, per)
	return time.Unix(sec, (v-sec*per)*(1e9/per)).UTC()
}

// finerUnit returns the more precise of two units.
func finerUnit(a, b arrow.TimeUnit) arrow.TimeUnit {
	if a > b {
		return a
	}
	return b
}
