package coordinator

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
)

// TestScheduleListRemove: GET /v1/schedules lists a registered schedule
// (without its plan); DELETE /v1/schedules/{name or id} removes it through
// the log, so every coordinator drops it; an unknown one is a 404 naming it.
func TestScheduleListRemove(t *testing.T) {
	h := start(t, 2)
	cl := h.client()
	ctx := context.Background()
	for _, name := range []string{"hourly", "daily"} {
		plan := "name: " + name + "\nschedule: {cron: \"0 * * * *\"}\nread: {parquet: in/}\nwrite: {parquet: out/}\n"
		var r api.IDResponse
		if err := cl.Do(ctx, http.MethodPost, "/v1/jobs", api.SubmitRequest{Plan: plan}, &r); err != nil || r.Kind != "schedule" {
			t.Fatalf("submit %s: %+v %v", name, r, err)
		}
	}
	var list []state.Schedule
	if err := cl.Do(ctx, http.MethodGet, "/v1/schedules", nil, &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Cron != "0 * * * *" || list[0].Plan != nil {
		t.Fatalf("schedules: %+v", list)
	}
	var daily string
	for _, s := range list {
		if s.Name == "daily" {
			daily = s.ID
		}
	}
	var r api.IDResponse
	if err := cl.Do(ctx, http.MethodDelete, "/v1/schedules/hourly", nil, &r); err != nil {
		t.Fatal(err)
	}
	if err := cl.Do(ctx, http.MethodDelete, "/v1/schedules/"+daily, nil, &r); err != nil || r.ID != daily {
		t.Fatalf("remove by id: %+v %v", r, err)
	}
	for _, n := range h.nodes {
		h.waitFor("schedules removed on every node", func() bool {
			left := -1
			n.Read(func(s *state.State) { left = len(s.Schedules) })
			return left == 0
		})
	}
	err := cl.Do(ctx, http.MethodDelete, "/v1/schedules/hourly", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "not found") || !strings.Contains(err.Error(), `"hourly"`) {
		t.Errorf("removing it again: %v", err)
	}
}
