package schedule

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustSchedule(t *testing.T, cron, tz, catchUp string) *Schedule {
	t.Helper()
	s, err := New(cron, tz, catchUp)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func formatTimes(ts []time.Time) string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Format(time.RFC3339))
	}
	return strings.Join(out, " ")
}

func TestParseCron(t *testing.T) {
	for _, tc := range []struct {
		cron string
		err  string // "" for valid
		off  int
	}{
		{cron: "0 2 * * *"},
		{cron: "*/15 * * * *"},
		{cron: "0 0 1,15 * MON-FRI"},
		{cron: "0 0 * jan-mar,dec sun"},
		{cron: "0 0 * * 7"},
		{cron: "5/20 1-23/2 * * *"},
		{cron: "@daily"},
		{cron: "  @HOURLY "},
		{cron: "0 0 29 2 *"},
		{cron: "0 2 * *", err: "want 5 fields (minute hour day-of-month month day-of-week), got 4"},
		{cron: "60 * * * *", err: `minute field "60": 60 is out of range 0-59`},
		{cron: "0 25 * * *", err: `hour field "25": 25 is out of range 0-23`, off: 2},
		{cron: "0 0 0 * *", err: `day-of-month field "0": 0 is out of range 1-31`, off: 4},
		{cron: "* * * * 8", err: `day-of-week field "8": 8 is out of range 0-7`, off: 8},
		{cron: "5-1 * * * *", err: `minute field "5-1": range 5-1 runs backwards`},
		{cron: "1,2,x * * * *", err: `minute field "x": "x" is not a number`, off: 4},
		{cron: "*/0 * * * *", err: `minute field "*/0": step "0": want a positive integer`},
		{cron: "0 0 * JANX *", err: `month field "JANX": "JANX" is not a number or a name (jan-dec)`, off: 6},
		{cron: "0 0 30 2 *", err: "day-of-month and month never meet", off: 4},
		{cron: "@fortnightly", err: `unknown macro "@fortnightly"`},
		{cron: "0 0 1,,2 * *", err: `day-of-month field "": empty list item`, off: 6},
	} {
		_, err := parseCron(tc.cron)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("parseCron(%q) = %v", tc.cron, err)
		case tc.err != "" && err == nil:
			t.Errorf("parseCron(%q) parsed; want error %q", tc.cron, tc.err)
		case tc.err != "" && (!strings.Contains(err.Msg, tc.err) || err.Off != tc.off):
			t.Errorf("parseCron(%q) = %q at %d; want %q at %d", tc.cron, err.Msg, err.Off, tc.err, tc.off)
		}
	}
}

// TestNext checks next-run times, including across DST changes in both
// directions in Europe/Paris (2024-03-31 02:00 CET -> 03:00 CEST;
// 2024-10-27 03:00 CEST -> 02:00 CET) and America/New_York (2024-03-10
// 02:00 EST -> 03:00 EDT; 2024-11-03 02:00 EDT -> 01:00 EST).
func TestNext(t *testing.T) {
	for _, tc := range []struct {
		name, cron, tz, after string
		want                  []string
	}{
		{"utc daily", "0 2 * * *", "", "2024-01-01T02:00:00Z",
			[]string{"2024-01-02T02:00:00Z", "2024-01-03T02:00:00Z"}},
		{"seconds past the minute", "* * * * *", "UTC", "2024-01-01T02:00:30Z",
			[]string{"2024-01-01T02:01:00Z", "2024-01-01T02:02:00Z"}},
		{"dom or dow when both are restricted", "0 0 13 * FRI", "UTC", "2024-09-01T00:00:00Z",
			[]string{"2024-09-06T00:00:00Z", "2024-09-13T00:00:00Z", "2024-09-20T00:00:00Z"}},
		{"leap day", "0 0 29 2 *", "UTC", "2024-03-01T00:00:00Z",
			[]string{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"}},

		// Spring forward: a daily job in the gap runs once, at the end of the gap.
		{"paris daily in the gap", "30 2 * * *", "Europe/Paris", "2024-03-30T02:30:00+01:00",
			[]string{"2024-03-31T03:00:00+02:00", "2024-04-01T02:30:00+02:00"}},
		{"paris daily at the gap's start", "0 2 * * *", "Europe/Paris", "2024-03-30T12:00:00+01:00",
			[]string{"2024-03-31T03:00:00+02:00", "2024-04-01T02:00:00+02:00"}},
		{"paris daily after the gap", "30 3 * * *", "Europe/Paris", "2024-03-30T12:00:00+01:00",
			[]string{"2024-03-31T03:30:00+02:00", "2024-04-01T03:30:00+02:00"}},
		{"new york daily in the gap", "30 2 * * *", "America/New_York", "2024-03-09T12:00:00-05:00",
			[]string{"2024-03-10T03:00:00-04:00", "2024-03-11T02:30:00-04:00"}},
		{"fixed hours through the gap", "30 1-3 * * *", "America/New_York", "2024-03-10T00:00:00-05:00",
			[]string{"2024-03-10T01:30:00-05:00", "2024-03-10T03:00:00-04:00", "2024-03-10T03:30:00-04:00", "2024-03-11T01:30:00-04:00"}},
		{"every minute of the skipped hour runs once", "* 2 * * *", "Europe/Paris", "2024-03-31T01:58:00+01:00",
			[]string{"2024-03-31T03:00:00+02:00", "2024-04-01T02:00:00+02:00"}},

		// Spring forward: hourly jobs keep one run per real hour.
		{"paris hourly", "0 * * * *", "Europe/Paris", "2024-03-31T00:30:00+01:00",
			[]string{"2024-03-31T01:00:00+01:00", "2024-03-31T03:00:00+02:00", "2024-03-31T04:00:00+02:00"}},
		{"new york hourly at :30", "30 * * * *", "America/New_York", "2024-03-10T01:00:00-05:00",
			[]string{"2024-03-10T01:30:00-05:00", "2024-03-10T03:30:00-04:00", "2024-03-10T04:30:00-04:00"}},
		{"every 15 minutes", "*/15 * * * *", "Europe/Paris", "2024-03-31T01:40:00+01:00",
			[]string{"2024-03-31T01:45:00+01:00", "2024-03-31T03:00:00+02:00", "2024-03-31T03:15:00+02:00"}},

		// Fall back: a daily job in the repeated hour runs once, at the first occurrence.
		{"paris daily in the repeated hour", "30 2 * * *", "Europe/Paris", "2024-10-26T12:00:00+02:00",
			[]string{"2024-10-27T02:30:00+02:00", "2024-10-28T02:30:00+01:00"}},
		{"paris daily, asked between the occurrences", "30 2 * * *", "Europe/Paris", "2024-10-27T02:10:00+01:00",
			[]string{"2024-10-28T02:30:00+01:00"}},
		{"paris daily, asked during the first occurrence's hour", "30 2 * * *", "Europe/Paris", "2024-10-27T02:10:00+02:00",
			[]string{"2024-10-27T02:30:00+02:00", "2024-10-28T02:30:00+01:00"}},
		{"new york daily in the repeated hour", "30 1 * * *", "America/New_York", "2024-11-02T12:00:00-04:00",
			[]string{"2024-11-03T01:30:00-04:00", "2024-11-04T01:30:00-05:00"}},

		// Fall back: hourly jobs run at both occurrences (one run per real hour).
		{"paris hourly in the repeated hour", "0 * * * *", "Europe/Paris", "2024-10-27T01:30:00+02:00",
			[]string{"2024-10-27T02:00:00+02:00", "2024-10-27T02:00:00+01:00", "2024-10-27T03:00:00+01:00"}},
		{"new york hourly, asked in the second occurrence", "0 * * * *", "America/New_York", "2024-11-03T01:10:00-05:00",
			[]string{"2024-11-03T02:00:00-05:00"}},
		{"new york every 15 minutes", "*/15 * * * *", "America/New_York", "2024-11-03T01:40:00-04:00",
			[]string{"2024-11-03T01:45:00-04:00", "2024-11-03T01:00:00-05:00", "2024-11-03T01:15:00-05:00"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustSchedule(t, tc.cron, tc.tz, "")
			got := s.Upcoming(mustTime(t, tc.after), len(tc.want))
			if g, w := formatTimes(got), strings.Join(tc.want, " "); g != w {
				t.Errorf("Upcoming(%s) =\n  %s\nwant\n  %s", tc.after, g, w)
			}
			for _, g := range got {
				if g.Location() != s.Location {
					t.Errorf("%s is in %s, want %s", g, g.Location(), s.Location)
				}
			}
		})
	}
}

// TestNextAgainstBruteForce compares Next with a minute-by-minute walk of
// real time over a year of Paris and New York for hourly-style jobs, which
// fire at every instant whose wall clock matches.
func TestNextAgainstBruteForce(t *testing.T) {
	for _, tz := range []string{"Europe/Paris", "America/New_York", "Australia/Lord_Howe"} {
		s := mustSchedule(t, "*/20 * * * 0", tz, "")
		start := mustTime(t, "2024-01-01T00:00:00Z")
		end := start.AddDate(1, 0, 0)
		var want []time.Time
		for t := start.Add(time.Minute); t.Before(end); t = t.Add(time.Minute) {
			l := t.In(s.Location)
			if l.Minute()%20 == 0 && l.Weekday() == time.Sunday {
				want = append(want, t)
			}
		}
		var got []time.Time
		for t := s.Next(start); t.Before(end); t = s.Next(t) {
			got = append(got, t)
		}
		if !slices.EqualFunc(got, want, time.Time.Equal) {
			t.Errorf("%s: %d runs, brute force %d", tz, len(got), len(want))
		}
	}
}

func TestMissed(t *testing.T) {
	last := mustTime(t, "2024-01-01T02:00:00Z")
	now := mustTime(t, "2024-01-04T12:00:00Z")
	for _, tc := range []struct {
		policy string
		want   string
	}{
		{"all", "2024-01-02T02:00:00Z 2024-01-03T02:00:00Z 2024-01-04T02:00:00Z"},
		{"latest", "2024-01-04T02:00:00Z"},
		{"", "2024-01-04T02:00:00Z"}, // latest is the default
		{"none", ""},
	} {
		s := mustSchedule(t, "0 2 * * *", "UTC", tc.policy)
		if got := formatTimes(s.Missed(last, now)); got != tc.want {
			t.Errorf("catch_up %q: Missed = %q, want %q", tc.policy, got, tc.want)
		}
	}
	s := mustSchedule(t, "0 2 * * *", "UTC", "all")
	if got := s.Missed(time.Time{}, now); got != nil {
		t.Errorf("never ran: Missed = %v, want none", got)
	}
	if got := s.Missed(last, mustTime(t, "2024-01-02T01:59:00Z")); got != nil {
		t.Errorf("nothing due yet: Missed = %v", got)
	}
	// A run due exactly at now is missed (the interval is (last, now]).
	if got := formatTimes(s.Missed(last, mustTime(t, "2024-01-02T02:00:00Z"))); got != "2024-01-02T02:00:00Z" {
		t.Errorf("due at now: Missed = %q", got)
	}
	// Missed across the Paris spring-forward: the gap's run is at 03:00 CEST.
	p := mustSchedule(t, "30 2 * * *", "Europe/Paris", "all")
	got := formatTimes(p.Missed(mustTime(t, "2024-03-30T02:30:00+01:00"), mustTime(t, "2024-04-01T12:00:00+02:00")))
	if want := "2024-03-31T03:00:00+02:00 2024-04-01T02:30:00+02:00"; got != want {
		t.Errorf("paris: Missed = %q, want %q", got, want)
	}
}

// TestMissedLatestIsQuick: latest over a year of a minutely job must not
// walk half a million runs.
func TestMissedLatestIsQuick(t *testing.T) {
	s := mustSchedule(t, "* * * * *", "Europe/Paris", "latest")
	start := time.Now()
	got := s.Missed(mustTime(t, "2023-01-01T00:00:00Z"), mustTime(t, "2024-01-01T00:00:30Z"))
	if formatTimes(got) != "2024-01-01T01:00:00+01:00" {
		t.Errorf("Missed = %v", got)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Missed took %s", d)
	}
}

func TestNew(t *testing.T) {
	for _, tc := range []struct{ cron, tz, catchUp, err string }{
		{"0 2 * * *", "Europe/Pariss", "", `unknown time zone "Europe/Pariss"`},
		{"0 2 * * *", "Local", "", `time zone "Local" depends on the machine`},
		{"0 2 * * *", "UTC", "sometimes", `catch_up "sometimes": want latest, all or none`},
		{"0 2 * *", "UTC", "", "want 5 fields"},
	} {
		_, err := New(tc.cron, tc.tz, tc.catchUp)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("New(%q, %q, %q) = %v, want %q", tc.cron, tc.tz, tc.catchUp, err, tc.err)
		}
	}
	s := mustSchedule(t, "0 2 * * *", "", "")
	if s.TimeZone != "UTC" || s.CatchUp != "latest" || s.Location != time.UTC {
		t.Errorf("defaults: %+v", s)
	}
}
