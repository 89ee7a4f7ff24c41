package api

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/state"
)

func wireSamples() (ReportBatch, ReportBatchResponse, HeartbeatResponse) {
	at := time.Date(2026, 12, 7, 9, 0, 0, 123456789, time.UTC)
	reps := ReportBatch{Reports: []TaskReport{
		{RequestID: "w/j-1-t0/1/finish", Worker: "w", Attempt: 1, OK: true, Rows: 1 << 40, Task: "j-1-t0", Phase: "finish",
			Bytes: 77, Layout: []byte{0, 255, '{'}, Stages: []state.Stage{{Name: "scan", Tasks: 4, Inputs: []state.StageInput{{Stage: 0, All: true}}}},
			Lost: []string{"j-1-t9"}, Output: []string{"out/a.parquet", "out/b.parquet"}},
		{RequestID: "w/j-1-t1/2/start", Worker: "w", Attempt: -2, Task: "j-1-t1", Phase: "start", Error: "boom ✓ \x00"},
	}}
	res := ReportBatchResponse{Results: []ReportResult{{Task: "j-1-t0"}, {Task: "j-1-t1", Error: "stale", Stale: true}}}
	hb := HeartbeatResponse{Tasks: []Assignment{
		{Task: state.Task{ID: "j-1-t3", Job: "j-1", State: state.TaskAssigned, Attempt: 3, Failures: 1, Stage: 2, Index: 7, Lost: 1,
			Deaths: 2, Bytes: 9, Worker: "w", Needs: state.Resources{CPU: 1, GPU: 2, Memory: 1 << 33}, Locality: "h:1", Error: "e",
			Rows: 5, Updated: at, Assigned: at.Add(time.Second), Submitted: at.Add(-time.Hour), Reported: 9, ReportedBy: "w-1"},
			Spec: "abc123", StageTasks: 100, Kind: state.StageExec, Failing: true, Workers: 4, CPUs: 64, GPUs: 8,
			Inputs: []Input{{Stage: 1, Producers: []Producer{{ID: "j-1-t1", Index: 0, Attempt: 1, Addr: "w:7"},
				{ID: "j-1-t2", Index: 1, Attempt: 2, Missing: true}}}, {Stage: 0, Producers: []Producer{}},
				{Stage: 3, Producers: []Producer{}, Runs: []ProducerRun{{Index: 0, Count: 300, Attempt: 1}, {Index: 300, Count: 1, Attempt: 4}}}}},
		{Task: state.Task{ID: "j-2-t0", Job: "j-2", State: state.TaskRunning, Updated: at, Submitted: at}, Spec: "def"},
	}, Free: []string{"j-0/"}}
	return reps, res, hb
}

// TestWireMatchesJSON: each binary body reads back as its JSON does.
func TestWireMatchesJSON(t *testing.T) {
	reps, res, hb := wireSamples()
	for _, tc := range []struct {
		in       wireBody
		bin, old wireAnswer
	}{
		{reps, new(ReportBatch), new(ReportBatch)},
		{res, new(ReportBatchResponse), new(ReportBatchResponse)},
		{hb, new(HeartbeatResponse), new(HeartbeatResponse)},
		{HeartbeatResponse{Tasks: []Assignment{}}, new(HeartbeatResponse), new(HeartbeatResponse)},
	} {
		b := tc.in.AppendWire(nil)
		if err := tc.bin.ReadWire(b); err != nil {
			t.Fatalf("%T: %v", tc.in, err)
		}
		j, err := json.Marshal(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(j, tc.old); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(tc.bin, tc.old) {
			t.Errorf("%T: binary reads\n%+v\nJSON reads\n%+v", tc.in, tc.bin, tc.old)
		}
		if len(b) >= len(j) {
			t.Errorf("%T: binary %d bytes, JSON %d", tc.in, len(b), len(j))
		}
	}
}

// TestWireFields: a field added to a type on the wire must be added to
// its binary encoding (and these counts).
func TestWireFields(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want int
	}{
		{TaskReport{}, taskReportFields}, {ReportResult{}, 3}, {ReportBatch{}, 1}, {ReportBatchResponse{}, 1},
		{HeartbeatResponse{}, 2}, {Assignment{}, assignmentFields + 1}, {state.Task{}, taskFields},
		{state.Resources{}, 3}, {Input{}, inputFields}, {Producer{}, producerFields},
		{ProducerRun{}, runFields},
	} {
		if n := reflect.TypeOf(tc.v).NumField(); n != tc.want {
			t.Errorf("%T has %d fields, its binary encoding %d: encode the new one in wire.go", tc.v, n, tc.want)
		}
	}
}

// TestWireMalformed: bad bodies are errors (ErrWire), never panics.
func TestWireMalformed(t *testing.T) {
	reps, _, hb := wireSamples()
	good := hb.AppendWire(nil)
	for name, b := range map[string][]byte{
		"empty":          nil,
		"JSON":           []byte(`{"tasks":[]}`),
		"other kind":     reps.AppendWire(nil),
		"cut short":      good[:len(good)-4],
		"trailing":       append(append([]byte(nil), good...), 0),
		"huge count":     {wireV1, kindHeartbeatResponse, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"bad bool":       {wireV1, kindReportBatchResponse, 1, 0, 0, 7},
		"bad stages":     append(ReportBatch{Reports: []TaskReport{{}}}.AppendWire(nil)[:13], 2, '{', '"', 0, 0),
		"bad time nanos": {wireV1, kindHeartbeatResponse, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x94, 0xeb, 0xdc, 0x03},
	} {
		var out HeartbeatResponse
		err := out.ReadWire(b)
		if name == "bad stages" || name == "bad bool" {
			var rb ReportBatch
			if name == "bad bool" {
				err = new(ReportBatchResponse).ReadWire(b)
			} else {
				err = rb.ReadWire(b)
			}
		}
		if !errors.Is(err, ErrWire) {
			t.Errorf("%s: err %v, want ErrWire", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// FuzzReadWire: any body reads or fails with ErrWire, never panics; one
// that reads encodes back to the same body.
func FuzzReadWire(f *testing.F) {
	reps, res, hb := wireSamples()
	for _, w := range []wireBody{reps, res, hb} {
		f.Add(w.AppendWire(nil))
	}
	f.Add([]byte{wireV1, kindHeartbeatResponse, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, out := range []interface {
			wireAnswer
			wireBody
		}{new(ReportBatch), new(ReportBatchResponse), new(HeartbeatResponse)} {
			if err := out.ReadWire(b); err != nil {
				if !errors.Is(err, ErrWire) {
					t.Fatalf("%T: %v is not ErrWire", out, err)
				}
				continue
			}
			again := reflect.New(reflect.TypeOf(out).Elem()).Interface().(wireAnswer)
			if err := again.ReadWire(out.AppendWire(nil)); err != nil {
				t.Fatalf("%T re-encoded: %v", out, err)
			}
			j1, _ := json.Marshal(out)
			j2, _ := json.Marshal(again)
			if string(j1) != string(j2) {
				t.Fatalf("%T re-encoded reads\n%s\nwant\n%s", out, j2, j1)
			}
		}
	})
}
