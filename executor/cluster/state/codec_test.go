package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

var rewriteLog = flag.Bool("rewrite-log", false, "print logV0 from codecLog (the JSON entries of before format 1)")

// codecCommands have every field of a command set somewhere.
func codecCommands() []Command {
	exp := &Experiment{Name: "e", Record: json.RawMessage(`{"trials":[1,2]}`), Updated: at(3), Version: 2}
	return []Command{
		{Op: OpHeartbeat, ID: "w-1", At: at(1)},
		{Op: OpAssign, ID: "j-000001-t3", Worker: "w-1", At: at(2).Add(123456789)},
		{Op: OpSubmit, RequestID: "r1", At: at(0), Job: &Job{Name: "n", File: "p.yaml", Plan: []byte("name: n\n"),
			Params: map[string]string{"a": "b"}, MaxRetries: 2}, Needs: Resources{CPU: 2, GPU: 1, Memory: -1 << 40}, Locality: "h:1"},
		{Op: OpRegister, At: at(0), Register: &Worker{ID: "w", Addr: "w:1", Resources: Resources{CPU: 4, Memory: 1 << 30}}},
		{Op: OpFire, ID: "s-1", Time: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), At: at(5)},
		{Op: OpSkip, ID: "s-1", Time: time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC), At: at(5)},
		{Op: OpNode, Node: &Node{ID: "n1", RaftAddr: "r:1", APIAddr: "a:1"}},
		{Op: OpExperiment, At: at(3), Experiment: exp},
		{Op: "an-op-of-tomorrow", ID: "x"},
		{Op: OpBatch, At: at(9), Assign: true, Batch: []Command{
			{Op: OpStart, RequestID: "w/j-1-t0/1/start", ID: "j-1-t0", Worker: "w", Attempt: 1},
			{Op: OpFinish, RequestID: "w/j-1-t0/1/finish", ID: "j-1-t0", Worker: "w", Attempt: 1, OK: true, Rows: 1 << 50,
				Bytes: -7, Layout: []byte{0, 1, 2, 255}, Stages: []Stage{{Name: "s", Tasks: 3, Inputs: []StageInput{{Stage: 0, All: true}}}},
				Output: []string{"out/a", ""}},
			{Op: OpFinish, ID: "j-1-t1", Worker: "w", Attempt: -3, Error: "boom \x00 ✓", Lost: []string{"j-1-t0"}, At: at(8)},
			{Op: OpBatch}, // nested: decodes, and Apply refuses it
		}},
	}
}

// TestCodecMatchesJSON: every command reads back from format 1 as from
// the JSON of before, and as it was.
func TestCodecMatchesJSON(t *testing.T) {
	for _, c := range codecCommands() {
		bin, err := Decode(c.Encode())
		if err != nil {
			t.Fatalf("%s: %v", c.Op, err)
		}
		old, err := Decode(c.EncodeJSON())
		if err != nil {
			t.Fatalf("%s (JSON): %v", c.Op, err)
		}
		if !reflect.DeepEqual(bin, old) {
			t.Errorf("%s: format 1 reads\n%+v\nJSON reads\n%+v", c.Op, bin, old)
		}
		if c.Op != OpExperiment && !reflect.DeepEqual(bin, c) { // a record's JSON is compacted
			t.Errorf("%s: read\n%+v\nwant\n%+v", c.Op, bin, c)
		}
		if e := c.Encode(); e[0] != formatV1 || len(e) >= len(c.EncodeJSON()) {
			t.Errorf("%s: format 1 entry %d bytes (JSON %d)", c.Op, len(e), len(c.EncodeJSON()))
		}
	}
}

// codecLog is a job's life as the leader and a worker log it: planning,
// two tasks in report batches that assign, the commit.
func codecLog() []Command {
	w := func(id string) *Worker {
		return &Worker{ID: id, Addr: id + ":1", Resources: Resources{CPU: 1, Memory: 1 << 30}}
	}
	rep := func(op Op, task string, ok bool) Command {
		return Command{Op: op, RequestID: "w1/" + task + "/1/" + string(op), ID: task, Worker: "w1", Attempt: 1, OK: ok, Rows: 5}
	}
	return []Command{
		{Op: OpRegister, At: at(0), Register: w("w1")},
		{Op: OpSubmit, RequestID: "sub", At: at(0), Job: &Job{Name: "n", Plan: []byte("name: n\n")}, Needs: Resources{CPU: 1}},
		{Op: OpBatch, At: at(1), Batch: []Command{{Op: OpAssign, ID: "j-000001-t0", Worker: "w1"}}},
		{Op: OpBatch, At: at(2), Assign: true, Batch: []Command{rep(OpStart, "j-000001-t0", false),
			{Op: OpFinish, RequestID: "w1/j-000001-t0/1/finish", ID: "j-000001-t0", Worker: "w1", Attempt: 1, OK: true,
				Layout: []byte(`{"stages":2}`), Stages: []Stage{{Name: "scan", Tasks: 2}}}}},
		{Op: OpHeartbeat, ID: "w1", At: at(3)},
		{Op: OpBatch, At: at(4), Assign: true, Batch: []Command{rep(OpFinish, "j-000001-t1", true)}},
		{Op: OpBatch, At: at(5), Assign: true, Batch: []Command{rep(OpFinish, "j-000001-t2", true)}},
		{Op: OpBatch, At: at(6), Batch: []Command{{Op: OpFinish, RequestID: "c", ID: "j-000001-t3", Worker: "w1", Attempt: 1,
			OK: true, Output: []string{"out/part-0.parquet"}}}},
	}
}

// logV0 is codecLog as the JSON entries of before format 1 (written by
// the old Command.Encode, json.Marshal; -rewrite-log prints it again).
const logV0 = `{"op":"register","at":"2026-11-25T06:00:00Z","register":{"id":"w1","addr":"w1:1","resources":{"cpu":1,"gpu":0,"memory":1073741824},"alive":false,"last_heartbeat":"0001-01-01T00:00:00Z","registered":"0001-01-01T00:00:00Z"}}
{"op":"submit","request_id":"sub","at":"2026-11-25T06:00:00Z","needs":{"cpu":1,"gpu":0,"memory":0},"job":{"id":"","name":"n","file":"","plan":"bmFtZTogbgo=","max_retries":0,"state":"","submitted":"0001-01-01T00:00:00Z","tasks":null,"succeeded":0}}
{"op":"batch","at":"2026-11-25T06:00:01Z","batch":[{"op":"assign","at":"0001-01-01T00:00:00Z","id":"j-000001-t0","worker":"w1"}]}
{"op":"batch","at":"2026-11-25T06:00:02Z","batch":[{"op":"start","request_id":"w1/j-000001-t0/1/start","at":"0001-01-01T00:00:00Z","id":"j-000001-t0","worker":"w1","attempt":1,"rows":5},{"op":"finish","request_id":"w1/j-000001-t0/1/finish","at":"0001-01-01T00:00:00Z","id":"j-000001-t0","worker":"w1","attempt":1,"ok":true,"layout":"eyJzdGFnZXMiOjJ9","stages":[{"name":"scan","tasks":2,"max_retries":0,"needs":{"cpu":0,"gpu":0,"memory":0}}]}],"assign":true}
{"op":"heartbeat","at":"2026-11-25T06:00:03Z","id":"w1"}
{"op":"batch","at":"2026-11-25T06:00:04Z","batch":[{"op":"finish","request_id":"w1/j-000001-t1/1/finish","at":"0001-01-01T00:00:00Z","id":"j-000001-t1","worker":"w1","attempt":1,"ok":true,"rows":5}],"assign":true}
{"op":"batch","at":"2026-11-25T06:00:05Z","batch":[{"op":"finish","request_id":"w1/j-000001-t2/1/finish","at":"0001-01-01T00:00:00Z","id":"j-000001-t2","worker":"w1","attempt":1,"ok":true,"rows":5}],"assign":true}
{"op":"batch","at":"2026-11-25T06:00:06Z","batch":[{"op":"finish","request_id":"c","at":"0001-01-01T00:00:00Z","id":"j-000001-t3","worker":"w1","attempt":1,"ok":true,"output":["out/part-0.parquet"]}]}
`

// TestOldJSONLogApplies: a log written before format 1 (JSON entries,
// logV0) still applies, to the same state as the same
// commands in format 1, and a log mixing both does too.
func TestOldJSONLogApplies(t *testing.T) {
	if *rewriteLog {
		for _, c := range codecLog() {
			fmt.Printf("%s\n", c.EncodeJSON())
		}
	}
	const file = "logV0"
	var entries [][]byte
	for _, l := range strings.Split(strings.TrimSpace(logV0), "\n") {
		entries = append(entries, []byte(l))
	}
	if len(entries) != len(codecLog()) {
		t.Fatalf("%s: %d entries, want %d", file, len(entries), len(codecLog()))
	}
	old, bin, mixed := New(), New(), New()
	for i, e := range entries {
		if e[0] != '{' {
			t.Fatalf("%s:%d: not a JSON entry", file, i+1)
		}
		c, err := Decode(e)
		if err != nil {
			t.Fatalf("%s:%d: %v", file, i+1, err)
		}
		old.Apply(c)
		b, err := Decode(codecLog()[i].Encode())
		if err != nil {
			t.Fatalf("entry %d in format 1: %v", i+1, err)
		}
		bin.Apply(b)
		if i%2 == 0 {
			mixed.Apply(b)
		} else {
			mixed.Apply(c)
		}
	}
	j := old.Jobs["j-000001"]
	if j == nil || j.State != JobSucceeded || len(j.Tasks) != 4 || j.Output[0] != "out/part-0.parquet" {
		t.Fatalf("the old log gives %+v\n%s", j, trace(old))
	}
	for _, s := range []*State{bin, mixed} {
		if got, want := snapshotOf(t, s), snapshotOf(t, old); got != want {
			t.Fatalf("states differ:\n%s\n%s", got, want)
		}
	}
}

func snapshotOf(t *testing.T, s *State) string {
	var b bytes.Buffer
	if err := s.Snapshot(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestDecodeMalformed: a bad format 1 entry is an error naming where, and
// never a panic or a huge allocation.
func TestDecodeMalformed(t *testing.T) {
	good := codecCommands()[9].Encode()
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"only the format", []byte{formatV1}},
		{"unknown field", []byte{formatV1, 0x80, 0x80, 0x80, 0x80, 0x10, 10}},
		{"unknown op code", []byte{formatV1, 0, 200}},
		{"string past the end", []byte{formatV1, fID, 10, 0xff, 0x01, 'a'}},
		{"huge batch count", []byte{formatV1, 0x80, 0x80, 0x04, 15, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"nanoseconds", []byte{formatV1, fAt, 10, 0, 0x80, 0x94, 0xeb, 0xdc, 0x03}},
		{"year 10000", append([]byte{formatV1, fAt, 10}, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10, 0)},
		{"trailing bytes", append(append([]byte(nil), good...), 0)},
		{"cut short", good[:len(good)-3]},
		{"bad JSON fields", []byte{formatV1, 0x80, 0x80, 0x08, 1, 2, '{', '"'}},
	} {
		if _, err := Decode(tc.b); !errors.Is(err, ErrBadCommand) {
			t.Errorf("%s: err %v, want ErrBadCommand", tc.name, err)
		} else {
			t.Logf("%s: %v", tc.name, err)
		}
	}
}

// FuzzDecode: any entry decodes or fails with ErrBadCommand, never
// panics; one that decodes in format 1 encodes back to the same command.
func FuzzDecode(f *testing.F) {
	for _, c := range append(codecCommands(), codecLog()...) {
		f.Add(c.Encode())
		f.Add(c.EncodeJSON())
	}
	f.Add([]byte{formatV1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrBadCommand) {
				t.Fatalf("error %v is not ErrBadCommand", err)
			}
			return
		}
		if len(b) == 0 || b[0] != formatV1 {
			return
		}
		again, err := Decode(c.Encode())
		if err != nil {
			t.Fatalf("re-encoded: %v", err)
		}
		if !reflect.DeepEqual(jsonOf(t, again), jsonOf(t, c)) {
			t.Fatalf("re-encoded reads\n%s\nwant\n%s", jsonOf(t, again), jsonOf(t, c))
		}
	})
}

func jsonOf(t *testing.T, c Command) string {
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
