package schedule

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// cronExpr is a parsed 5-field cron expression: one bit per allowed value.
type cronExpr struct {
	minute, hour, dom, month, dow uint64
	// domStar and dowStar say the day fields start with '*': as in Vixie
	// cron, a day matches both fields when either starts with '*', and
	// either field when both are restricted ("0 0 1 * MON": the 1st and
	// every Monday).
	domStar, dowStar bool
	// hourStar says the hour field starts with '*' (hourly or more often);
	// see Schedule for what that changes across DST.
	hourStar bool
}

type cronField struct {
	name     string
	min, max int
	names    []string // names for values min, min+1, ...
}

var cronFields = [5]cronField{
	{name: "minute", min: 0, max: 59},
	{name: "hour", min: 0, max: 23},
	{name: "day-of-month", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
	{name: "day-of-week", min: 0, max: 7, names: []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}

var cronMacros = map[string]string{
	"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
	"@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}

// CronError is a problem at a character offset of the expression.
type CronError struct {
	Off int // in runes
	Msg string
}

func (e *CronError) Error() string { return "cron: " + e.Msg }

// parseCron parses minute hour day-of-month month day-of-week, each a list
// of *, N, N-M, with optional /STEP, months and weekdays also by their
// three-letter English names; 7 is Sunday too. The macros @hourly, @daily
// (@midnight), @weekly, @monthly and @yearly (@annually) stand for their
// usual expressions.
func parseCron(s string) (cronExpr, *CronError) {
	var c cronExpr
	src := strings.TrimSpace(s)
	lead := len([]rune(s)) - len([]rune(strings.TrimLeftFunc(s, unicode.IsSpace)))
	if strings.HasPrefix(src, "@") {
		m, ok := cronMacros[strings.ToLower(src)]
		if !ok {
			return c, &CronError{lead, fmt.Sprintf("unknown macro %q (want @hourly, @daily, @weekly, @monthly or @yearly)", src)}
		}
		s, lead = m, 0
	}
	// Split into fields, keeping each one's rune offset.
	var fields []string
	var offs []int
	rs := []rune(s)
	for i := 0; i < len(rs); {
		if unicode.IsSpace(rs[i]) {
			i++
			continue
		}
		j := i
		for j < len(rs) && !unicode.IsSpace(rs[j]) {
			j++
		}
		fields, offs = append(fields, string(rs[i:j])), append(offs, i)
		i = j
	}
	if len(fields) != 5 {
		return c, &CronError{lead, fmt.Sprintf("want 5 fields (minute hour day-of-month month day-of-week), got %d", len(fields))}
	}
	sets := []*uint64{&c.minute, &c.hour, &c.dom, &c.month, &c.dow}
	for i, f := range fields {
		set, err := parseCronField(f, cronFields[i])
		if err != nil {
			err.Off += offs[i]
			return c, err
		}
		*sets[i] = set
	}
	if c.dow&(1<<7) != 0 {
		c.dow = c.dow&^(1<<7) | 1
	}
	c.domStar, c.dowStar, c.hourStar = fields[2][0] == '*', fields[4][0] == '*', fields[1][0] == '*'
	if c.dowStar && !c.daysExist() {
		return c, &CronError{offs[2], "day-of-month and month never meet (no month in the expression has those days): the job would never run"}
	}
	return c, nil
}

func parseCronField(f string, spec cronField) (uint64, *CronError) {
	var set uint64
	off := 0
	for _, part := range strings.Split(f, ",") {
		fail := func(format string, args ...any) *CronError {
			return &CronError{off, fmt.Sprintf("%s field %q: %s", spec.name, part, fmt.Sprintf(format, args...))}
		}
		if part == "" {
			return 0, fail("empty list item")
		}
		rng, stepText, hasStep := strings.Cut(part, "/")
		lo, hi := spec.min, spec.max
		if spec.name == "day-of-week" {
			hi = 6 // * is Sunday to Saturday once
		}
		switch {
		case rng == "*":
		default:
			a, b, isRange := strings.Cut(rng, "-")
			var err error
			if lo, err = cronValue(a, spec); err != nil {
				return 0, fail("%v", err)
			}
			hi = lo
			if isRange {
				if hi, err = cronValue(b, spec); err != nil {
					return 0, fail("%v", err)
				}
				if hi < lo {
					return 0, fail("range %d-%d runs backwards", lo, hi)
				}
			} else if hasStep {
				hi = spec.max // N/STEP: from N to the end
			}
		}
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepText)
			if err != nil || n < 1 {
				return 0, fail("step %q: want a positive integer", stepText)
			}
			step = n
		}
		for v := lo; v <= hi; v += step {
			set |= 1 << v
		}
		off += len([]rune(part)) + 1
	}
	return set, nil
}

func cronValue(s string, spec cronField) (int, error) {
	for i, n := range spec.names {
		if strings.EqualFold(s, n) {
			return spec.min + i, nil
		}
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		if spec.names != nil {
			return 0, fmt.Errorf("%q is not a number or a name (%s-%s)", s, spec.names[0], spec.names[len(spec.names)-1])
		}
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if v < spec.min || v > spec.max {
		return 0, fmt.Errorf("%d is out of range %d-%d", v, spec.min, spec.max)
	}
	return v, nil
}

// daysExist reports whether some allowed month has some allowed day (30
// February never comes; 29 February does, in leap years).
func (c *cronExpr) daysExist() bool {
	days := [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
	for m := 1; m <= 12; m++ {
		if c.month&(1<<m) != 0 && bits.TrailingZeros64(c.dom) <= days[m] {
			return true
		}
	}
	return false
}

func (c *cronExpr) dayMatches(t time.Time) bool {
	dom := c.dom&(1<<t.Day()) != 0
	dow := c.dow&(1<<int(t.Weekday())) != 0
	if c.domStar || c.dowStar {
		return dom && dow
	}
	return dom || dow
}

// nextCivil is the first wall-clock time at or after t (a civil time coded
// in UTC, whole minutes) that the expression matches, within 30 years.
func (c *cronExpr) nextCivil(t time.Time) (time.Time, bool) {
	limit := t.AddDate(30, 0, 0)
	for t.Before(limit) {
		switch {
		case c.month&(1<<int(t.Month())) == 0:
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
		case !c.dayMatches(t):
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC)
		case c.hour&(1<<t.Hour()) == 0:
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour()+1, 0, 0, 0, time.UTC)
		case c.minute&(1<<t.Minute()) == 0:
			t = t.Add(time.Minute)
		default:
			return t, true
		}
	}
	return time.Time{}, false
}
