package plans

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const templated = `name: nightly
schedule: {cron: "0 2 * * *", timezone: Europe/Paris}
env_allow: [REGION]
params:
  day: "{{ .ScheduledTime | date \"2006-01-02\" }}"
  yesterday: "{{ .ScheduledTime | addDays -1 | date \"2006-01-02\" }}"
  region: "{{ env \"REGION\" | default \"eu\" | upper }}"
  bucket: "{{ env \"SLUICE_BUCKET\" | lower }}"
  n: 10
read:
  parquet: s3://{{ .Params.bucket }}/raw/day={{ .Params.day }}/
steps:
  - filter: "region = '{{ .Params.region }}' AND day >= '{{ .Params.yesterday }}'"
  - limit: "{{ .Params.n }}"
write:
  parquet: out/{{ .Name }}/{{ .RunID }}/
  header: false
`

func parseOK(t *testing.T, src string) *Plan {
	t.Helper()
	p, lints := Parse("plan.yaml", []byte(src))
	if len(lints) > 0 {
		t.Fatalf("Parse:\n%v", lints)
	}
	return p
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestRender(t *testing.T) {
	p, lints := Parse("plan.yaml", []byte(templated))
	// header on a parquet write is the one lint; it does not stop rendering.
	if got := lints.Error(); got != `plan.yaml:17:3: write: header applies to csv output only, not parquet` {
		t.Fatalf("Parse: %v", got)
	}
	vars := Vars{ScheduledTime: mustTime(t, "2024-01-15T01:00:00Z"), LookupEnv: env(map[string]string{"SLUICE_BUCKET": "Data", "HOME": "/root"})}
	q, err := p.Render(vars)
	if err == nil || !strings.Contains(err.Error(), "header applies to csv") {
		t.Fatalf("Render: %v", err)
	}
	if got, want := q.Read.Path, "s3://data/raw/day=2024-01-15/"; got != want {
		t.Errorf("read path %q, want %q", got, want)
	}
	if got, want := q.Steps[0].(*Filter).Expr, "region = 'EU' AND day >= '2024-01-14'"; got != want {
		t.Errorf("filter %q, want %q", got, want)
	}
	if got := q.Steps[1].(*Limit).N; got != 10 {
		t.Errorf("limit %d, want 10", got)
	}
	if got, want := q.Write.Path, "out/nightly/nightly-20240115T010000Z/"; got != want {
		t.Errorf("write path %q, want %q", got, want)
	}
	if got := q.Vars().ScheduledTime.Location().String(); got != "Europe/Paris" {
		t.Errorf(".ScheduledTime in %s, want the schedule's zone", got)
	}
	// The template text stays in p.
	if !strings.Contains(p.Read.Path, "{{") {
		t.Errorf("Render changed the original: %q", p.Read.Path)
	}
}

func TestRenderOverrides(t *testing.T) {
	p := parseOK(t, strings.Replace(templated, "  header: false\n", "", 1))
	vars := Vars{ScheduledTime: mustTime(t, "2024-01-15T01:00:00Z"), RunID: "r1", LookupEnv: env(nil),
		Params: map[string]string{"day": "2023-12-31", "n": "5", "region": "{{ not a template }}"}}
	q, err := p.Render(vars)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := q.Read.Path, "s3:///raw/day=2023-12-31/"; got != want {
		t.Errorf("read path %q, want %q", got, want)
	}
	if got, want := q.Steps[0].(*Filter).Expr, "region = '{{ not a template }}' AND day >= '2024-01-14'"; got != want {
		t.Errorf("filter %q, want %q (overrides are used as is)", got, want)
	}
	if got := q.Steps[1].(*Limit).N; got != 5 {
		t.Errorf("limit %d, want 5", got)
	}
	if got := q.Write.Path; got != "out/nightly/r1/" {
		t.Errorf("write path %q", got)
	}

	_, err = p.Render(Vars{Params: map[string]string{"dya": "x"}})
	if !errors.Is(err, ErrUnknownParam) || !strings.Contains(err.Error(), `"dya" (did you mean "day"?): plan.yaml declares day, yesterday, region, bucket, n`) {
		t.Errorf("unknown param: %v", err)
	}

	_, err = p.Render(Vars{Params: map[string]string{"n": "ten"}})
	if err == nil || err.Error() != `plan.yaml:14:12: steps[1].limit: want an integer, got the string "ten"` {
		t.Errorf("bad override: %v", err)
	}
}

func TestRenderErrors(t *testing.T) {
	// Parse checks names statically; Render reports what only running finds.
	src := `name: x
params:
  a: "{{ .ScheduledTime | date 5 }}"
read: {parquet: "in/{{ .Params.nope }}"}
write: {parquet: out}
`
	p, _ := Parse("plan.yaml", []byte(src))
	_, err := p.Render(Vars{LookupEnv: env(nil)})
	want := `plan.yaml:3:32: params.a: template: <5>: expected string; found 5
plan.yaml:4:24: read.parquet: template: <.Params.nope>: map has no entry for key "nope"`
	if err == nil || err.Error() != want {
		t.Errorf("Render:\n%v\nwant\n%s", err, want)
	}
}

func TestTemplateLints(t *testing.T) {
	src := `name: x
env_allow: [REGION]
params:
  a: "{{ .Params.b }}"
  b: "{{ env \"HOME\" }}{{ env \"REGION\" }}{{ env \"SLUICE_X\" }}"
  c: "{{ .RunId }}"
  d: "{{ .Params.a | nosuch }}"
  e: "{{ range .Params }}{{ .Whatever }}{{ end }}{{ $.Params.zz }}"
read: {parquet: "{{ .Params.a"}
write: {parquet: out}
`
	_, lints := Parse("plan.yaml", []byte(src))
	want := `plan.yaml:4:10: params.a: template: param "b" is declared below this one; a param may use only the params above it
plan.yaml:5:10: params.b: template: env "HOME" is not allowed: templates read SLUICE_* variables and those listed under env_allow
plan.yaml:6:10: params.c: template: unknown field .RunId (did you mean ".RunID"?) (have .ScheduledTime, .RunID, .Name, .Params.NAME)
plan.yaml:7:7: params.d: template: function "nosuch" not defined
plan.yaml:8:53: params.e: template: unknown param "zz" (declared: a, b, c, d, e)
plan.yaml:9:18: read.parquet: template: unclosed action`
	if got := lints.Error(); got != want {
		t.Errorf("lints:\n%s\nwant\n%s", got, want)
	}
}

func TestRenderDefaults(t *testing.T) {
	p := parseOK(t, "name: x\nread: {parquet: \"in/{{ .RunID }}/{{ .ScheduledTime.Year }}\"}\nwrite: {parquet: out}\n")
	before := time.Now()
	q, err := p.Render(Vars{})
	if err != nil {
		t.Fatal(err)
	}
	st := q.Vars().ScheduledTime
	if st.Before(before.Truncate(time.Second)) || st.After(time.Now()) || st.Location() != time.UTC {
		t.Errorf("default scheduled time %v", st)
	}
	if want := "in/x-" + st.UTC().Format("20060102T150405Z") + "/" + st.Format("2006"); q.Read.Path != want {
		t.Errorf("path %q, want %q", q.Read.Path, want)
	}
}
