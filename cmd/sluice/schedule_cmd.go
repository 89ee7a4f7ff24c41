package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/sluicehq/sluice/cli"
	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
)

// The cluster's schedules: schedule list, schedule remove.

func init() {
	var cf cli.Client
	register(&command{
		name:    "schedule list",
		summary: "list the schedules registered with the cluster (sluice submit of a plan with a schedule: registers one)",
		flags:   cf.Flags,
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 0 {
				return errUsage
			}
			cl, err := cf.Client()
			if err != nil {
				return err
			}
			var list []state.Schedule
			if err := cl.Do(ctx, http.MethodGet, "/v1/schedules", nil, &list); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tCRON\tTIME ZONE\tCATCH UP\tLAST FIRED\tJOBS\tFILE")
			for _, s := range list {
				tz := s.TimeZone
				if tz == "" {
					tz = "UTC"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", s.ID, s.Name, s.Cron, tz, s.CatchUp,
					s.LastFired.UTC().Format(time.RFC3339), s.Jobs, s.File)
			}
			return tw.Flush()
		},
	})
	register(&command{
		name:    "schedule remove",
		args:    "ID|NAME",
		summary: "remove a schedule from the cluster (the jobs it made stay)",
		flags:   cf.Flags,
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 1 {
				return errUsage
			}
			cl, err := cf.Client()
			if err != nil {
				return err
			}
			var r api.IDResponse
			if err := cl.Do(ctx, http.MethodDelete, "/v1/schedules/"+url.PathEscape(args[0]), nil, &r); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "schedule %s removed\n", r.ID)
			return nil
		},
	})
}
