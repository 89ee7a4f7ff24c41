package plans_test

import (
	"fmt"
	"time"

	"github.com/sluicehq/sluice/plans"
)

func Example() {
	src := `name: nightly
schedule: {cron: "30 2 * * *", timezone: Europe/Paris}
params:
  day: '{{ .ScheduledTime | addDays -1 | date "2006-01-02" }}'
read:
  parquet: s3://bucket/raw/day={{ .Params.day }}/
steps:
  - fliter: "price > 50"
write:
  parquet: s3://bucket/out/day={{ .Params.day }}/
`
	p, lints := plans.Parse("nightly.yaml", []byte(src))
	fmt.Println(lints)

	// Runs across the spring-forward change: 02:30 does not exist on
	// 31 March, so that run is at 03:00 CEST.
	for _, t := range p.Schedule.Upcoming(time.Date(2024, 3, 30, 12, 0, 0, 0, time.UTC), 3) {
		fmt.Println(t.Format(time.RFC3339))
	}

	q, _ := p.Render(plans.Vars{ScheduledTime: time.Date(2024, 3, 31, 1, 0, 0, 0, time.UTC)})
	fmt.Println(q.Read.Path)
	// Output:
	// nightly.yaml:8:5: steps[0]: unknown key "fliter" (did you mean "filter"?)
	// 2024-03-31T03:00:00+02:00
	// 2024-04-01T02:30:00+02:00
	// 2024-04-02T02:30:00+02:00
	// s3://bucket/raw/day=2024-03-30/
}
