package plans

import (
	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/schedule"
)

// decodeSchedule reads the schedule key; package schedule parses it, and
// each bad field is reported at its own line and column.
func (d *decoder) decodeSchedule(n *yaml.Node) {
	cron, tz, cu := get(n, "cron"), get(n, "timezone"), get(n, "catch_up")
	ok := true
	if cron != nil && cron.Kind == yaml.ScalarNode {
		if err := schedule.CheckCron(scalar(cron)); err != nil {
			d.errorAt(d.p.posAt(cron, err.Off), "schedule.cron", "%v", err)
			ok = false
		}
	} else {
		ok = false
	}
	if name := scalar(tz); name != "" {
		if _, err := schedule.LoadZone(name); err != nil {
			d.errorf(tz, "schedule.timezone", "%v", err)
			ok = false
		}
	}
	switch scalar(cu) {
	case "", schedule.CatchUpLatest, schedule.CatchUpAll, schedule.CatchUpNone:
	default:
		ok = false // reported by check
	}
	if !ok {
		return
	}
	s, err := schedule.New(scalar(cron), scalar(tz), scalar(cu))
	if err != nil {
		d.errorf(n, "schedule", "%v", err) // not reached: each field was checked above
		return
	}
	d.p.Schedule = s
}
