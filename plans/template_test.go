package plans

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const templated = `name: nightly
schedule: {cron: "0 2 * * *", timezone: Europe/Paris}
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
	if got := lints.Error(); got != `plan.yaml:16:3: write: header applies to csv output only, not parquet` {
		t.Fatalf("Parse: %v", got)
	}
	vars := Vars{ScheduledTime: mustTime(t, "2024-01-15T01:00:00Z"), LookupEnv: env(map[string]string{"SLUICE_BUCKET": "Data", "HOME": "/root"}), EnvAllow: []string{"REGION", "SLUICE_BUCKET"}}
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
	vars := Vars{ScheduledTime: mustTime(t, "2024-01-15T01:00:00Z"), RunID: "r1", LookupEnv: env(nil), EnvAllow: []string{"REGION", "SLUICE_BUCKET"},
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

	_, err = p.Render(Vars{Params: map[string]string{"n": "ten"}, EnvAllow: []string{"*"}})
	if err == nil || err.Error() != `plan.yaml:13:12: steps[1].limit: want an integer, got the string "ten"` {
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
params:
  a: "{{ .Params.b }}"
  b: "{{ env \"HOME\" }}{{ env \"REGION\" }}{{ env \"SLUICE_TOKEN\" }}"
  c: "{{ .RunId }}"
  d: "{{ .Params.a | nosuch }}"
  e: "{{ range .Params }}{{ .Whatever }}{{ end }}{{ $.Params.zz }}"
read: {parquet: "{{ .Params.a"}
write: {parquet: out}
`
	_, lints := Parse("plan.yaml", []byte(src))
	want := `plan.yaml:3:10: params.a: template: param "b" is declared below this one; a param may use only the params above it
plan.yaml:4:48: params.b: template: env "SLUICE_TOKEN" holds a credential, which plans never read (the token, the cluster secret, cloud and API keys)
plan.yaml:5:10: params.c: template: unknown field .RunId (did you mean ".RunID"?) (have .ScheduledTime, .RunID, .Name, .Params.NAME)
plan.yaml:6:7: params.d: template: function "nosuch" not defined
plan.yaml:7:53: params.e: template: unknown param "zz" (declared: a, b, c, d, e)
plan.yaml:8:18: read.parquet: template: unclosed action`
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

// The variables a plan may read are the operator's to allow (Vars.EnvAllow,
// --env-allow), never the plan's; credentials are never readable, and no
// error carries their values.
func TestEnvIsTheOperators(t *testing.T) {
	const secret = "s3cr3t-value-never-shown"
	lookup := env(map[string]string{"REGION": "eu", "SLUICE_TOKEN": secret, "SLUICE_CLUSTER_SECRET": secret, "AWS_SECRET_ACCESS_KEY": secret, "MY_API_TOKEN": secret})
	_, lints := Parse("plan.yaml", []byte("name: x\nenv_allow: [AWS_SECRET_ACCESS_KEY]\nread: {parquet: in}\nwrite: {parquet: out}\n"))
	if got := lints.Error(); !strings.Contains(got, "plan.yaml:2:12: env_allow:") || !strings.Contains(got, "--env-allow AWS_SECRET_ACCESS_KEY") {
		t.Fatalf("env_allow in a plan: %v", got)
	}
	src := func(name string) string {
		return "name: x\nparams:\n  v: '{{ env \"" + name + "\" }}'\nread: {parquet: \"in/{{ .Params.v }}\"}\nwrite: {parquet: out}\n"
	}
	p := parseOK(t, src("REGION"))
	if _, err := p.Render(Vars{LookupEnv: lookup}); err == nil || !strings.Contains(err.Error(), `env "REGION" is not allowed`) || !strings.Contains(err.Error(), "--env-allow") {
		t.Fatalf("env without the operator's allow: %v", err)
	}
	q, err := p.Render(Vars{LookupEnv: lookup, EnvAllow: []string{"REGION"}})
	if err != nil || q.Read.Path != "in/eu" {
		t.Fatalf("allowed env: %v %v", q, err)
	}
	for _, name := range []string{"SLUICE_TOKEN", "SLUICE_CLUSTER_SECRET", "AWS_SECRET_ACCESS_KEY", "MY_API_TOKEN"} {
		_, lints := Parse("plan.yaml", []byte(src(name)))
		if !strings.Contains(lints.Error(), "holds a credential") {
			t.Errorf("%s: parse: %v", name, lints.Error())
		}
		// Built by hand past the parser's check, as a dynamic name would be.
		p := parseOK(t, strings.Replace(src("X"), `env "X"`, `env (printf "%s" "`+name+`")`, 1))
		_, err := p.Render(Vars{LookupEnv: lookup, EnvAllow: []string{"*", name}})
		if err == nil || !strings.Contains(err.Error(), "holds a credential") || strings.Contains(err.Error(), secret) {
			t.Errorf("%s: render: %v", name, err)
		}
	}
}
