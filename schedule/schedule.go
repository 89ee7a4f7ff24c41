package schedule

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // schedules must load IANA zones on hosts without zoneinfo

	"github.com/sluicehq/sluice/internal/didyoumean"
)

// Schedule is when a plan runs: a 5-field cron expression read in an IANA
// time zone, and what to do with runs missed while nothing was running.
//
// Daylight saving time. Cron expressions name wall-clock times, and a DST
// change skips or repeats some of them. Sluice follows cronie (Vixie cron):
//
//   - A job with fixed hours (the hour field does not start with '*', e.g.
//     "30 2 * * *") runs once per matching wall-clock time. A time that the
//     spring-forward change skips runs at the first instant after the gap
//     (02:30 in Europe/Paris on the last Sunday of March runs at 03:00
//     CEST); a time that the fall-back change repeats runs once, at its
//     first occurrence (02:30 CEST, not again at 02:30 CET).
//   - A job whose hour field starts with '*' ("0 * * * *", "*/15 * * * *")
//     runs at every instant whose wall-clock time matches: skipped times
//     do not run and repeated times run twice, so an hourly job still runs
//     once per real hour across both changes.
type Schedule struct {
	Cron     string
	TimeZone string // the IANA name, "UTC" by default
	CatchUp  string // latest (default), all or none
	Location *time.Location
	expr     cronExpr
}

// Catch-up policies.
const (
	CatchUpLatest = "latest"
	CatchUpAll    = "all"
	CatchUpNone   = "none"
)

// New parses a cron expression, a time zone ("" is UTC) and a
// catch-up policy ("" is latest).
func New(cron, timezone, catchUp string) (*Schedule, error) {
	e, cerr := parseCron(cron)
	if cerr != nil {
		return nil, fmt.Errorf("schedule: %w", cerr)
	}
	loc, err := LoadZone(timezone)
	if err != nil {
		return nil, fmt.Errorf("schedule: %w", err)
	}
	switch catchUp {
	case "":
		catchUp = CatchUpLatest
	case CatchUpLatest, CatchUpAll, CatchUpNone:
	default:
		return nil, fmt.Errorf("schedule: catch_up %q: want latest, all or none", catchUp)
	}
	if timezone == "" {
		timezone = "UTC"
	}
	return &Schedule{Cron: cron, TimeZone: timezone, CatchUp: catchUp, Location: loc, expr: e}, nil
}

// CheckCron parses a cron expression: nil, or where and what is wrong.
func CheckCron(s string) *CronError {
	_, err := parseCron(s)
	return err
}

// LoadZone is the IANA zone name ("" is UTC); "Local" is refused because
// it depends on the machine, and an unknown name suggests a close one.
func LoadZone(name string) (*time.Location, error) {
	switch name {
	case "":
		return time.UTC, nil
	case "Local":
		return nil, fmt.Errorf("time zone \"Local\" depends on the machine; name an IANA zone such as Europe/Paris")
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q%s", name, didyoumean.Suggest(name, zoneNames()))
	}
	return loc, nil
}

// zoneNames lists the zones of the system's zoneinfo, for suggestions.
var zoneNames = sync.OnceValue(func() []string {
	var out []string
	root := "/usr/share/zoneinfo"
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		if r := rel[0]; r >= 'A' && r <= 'Z' && !strings.Contains(rel, ".") {
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if _, err := os.Stat(root); err != nil {
		out = append(out, "UTC", "Europe/Paris", "Europe/London", "America/New_York", "America/Los_Angeles", "Asia/Tokyo")
	}
	slices.Sort(out)
	return out
})

// civil is t's wall-clock time coded as a UTC time, to the minute.
func civil(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), 0, 0, time.UTC)
}

// instants are the instants whose wall-clock time in loc is c: one, two
// in a repeated (fall-back) hour, none in a skipped (spring-forward) one,
// where gapEnd is the first instant after the gap.
func instants(c time.Time, loc *time.Location) (ts []time.Time, gapEnd time.Time) {
	var before int
	for i, probe := range []time.Time{c.Add(-14 * time.Hour), c.Add(14 * time.Hour)} {
		_, off := probe.In(loc).Zone()
		if i == 0 {
			before = off
		}
		t := c.Add(-time.Duration(off) * time.Second).In(loc)
		if civil(t).Equal(c) && t.Second() == 0 && !slices.ContainsFunc(ts, t.Equal) {
			ts = append(ts, t)
		}
	}
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	if len(ts) == 0 {
		gapEnd, _ = c.Add(-time.Duration(before) * time.Second).In(loc).ZoneBounds()
	}
	return ts, gapEnd
}

// occurrences are the instants a matching wall-clock time c runs at.
func (s *Schedule) occurrences(c time.Time) []time.Time {
	ts, gapEnd := instants(c, s.Location)
	switch {
	case s.expr.hourStar:
		return ts
	case len(ts) == 0:
		return []time.Time{gapEnd}
	}
	return ts[:1]
}

// Next is the first run strictly after the instant after, in the
// schedule's time zone, or the zero time when the expression never
// matches again within 30 years.
func (s *Schedule) Next(after time.Time) time.Time {
	loc := s.Location
	local := after.In(loc)
	// Fast path: no zone change from 3h before after to the candidate, so
	// wall clock and instants correspond one to one.
	start, end := local.ZoneBounds()
	if start.IsZero() || after.Sub(start) >= 3*time.Hour {
		c, ok := s.expr.nextCivil(civil(local).Add(time.Minute))
		if !ok {
			return time.Time{}
		}
		_, off := local.Zone()
		t := c.Add(-time.Duration(off) * time.Second).In(loc)
		if (end.IsZero() || t.Before(end)) && civil(t).Equal(c) {
			return t
		}
	}
	// Near a change: scan wall-clock matches from 3h before (a repeated
	// hour can put a later instant at an earlier wall-clock time) until 3h
	// past the best instant found.
	var best time.Time
	c := civil(local).Add(-3 * time.Hour)
	for {
		var ok bool
		if c, ok = s.expr.nextCivil(c); !ok {
			break
		}
		if !best.IsZero() && c.After(civil(best).Add(3*time.Hour)) {
			break
		}
		for _, t := range s.occurrences(c) {
			if t.After(after) && (best.IsZero() || t.Before(best)) {
				best = t
			}
		}
		c = c.Add(time.Minute)
	}
	return best
}

// Missed are the runs due in (last, now] that the catch-up policy keeps:
// all of them, only the latest, or none. A plan that never ran (last is
// zero) has missed nothing.
func (s *Schedule) Missed(last, now time.Time) []time.Time {
	if last.IsZero() || !now.After(last) {
		return nil
	}
	switch s.CatchUp {
	case CatchUpNone:
		return nil
	case CatchUpAll:
		var out []time.Time
		for t := s.Next(last); !t.IsZero() && !t.After(now); t = s.Next(t) {
			out = append(out, t)
		}
		return out
	}
	// latest: look back over growing windows so a frequent job missed for
	// a long time does not walk every missed run.
	for w := time.Hour; ; w *= 8 {
		from := now.Add(-w)
		if !from.After(last) {
			from = last
		}
		var got time.Time
		for t := s.Next(from); !t.IsZero() && !t.After(now); t = s.Next(t) {
			got = t
		}
		if !got.IsZero() {
			return []time.Time{got}
		}
		if from.Equal(last) {
			return nil
		}
	}
}

// Upcoming is the next n runs after the instant after.
func (s *Schedule) Upcoming(after time.Time, n int) []time.Time {
	var out []time.Time
	for t := after; len(out) < n; {
		if t = s.Next(t); t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out
}
