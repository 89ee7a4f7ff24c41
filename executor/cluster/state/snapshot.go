package state

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"

	"github.com/sluicehq/sluice/executor/cluster/internal/wire"
)

// Snapshots are binary since format 1 (a JSON snapshot of a state of a
// million tasks took seconds under the FSM's lock in each replica and
// hundreds of megabytes: BENCHMARKS.md, cluster/noop-1m). Restore still
// reads the JSON snapshots written before, which start with '{' (or white
// space).
//
// Format 1: the bytes snapV1, a uvarint length and a JSON header (the
// state without its tasks, and each job whose Tasks are its own id with
// -t0, -t1, ... in order listed by id instead of its Tasks), then the
// tasks: for each job in id order, each of its Tasks present (a bool),
// then the tasks no job lists (with their ids). A task is a uvarint field
// mask and its non-zero fields (tField bits, in order); its id and job
// come from the job that lists it; strings repeated across tasks (job,
// worker, locality) are a uvarint index into the strings seen before, or
// 0 and the string.
var snapV1 = []byte{0x01, 'S'}

// snapHeader is a format 1 snapshot's JSON part.
type snapHeader struct {
	State *State `json:"state"`
	// Regular are the jobs whose Tasks were left out: job j's are
	// j-t0 ... j-tN-1, N its stages' tasks.
	Regular []string `json:"regular,omitempty"`
	// Tasks counts the state's tasks, to size the map and check.
	Tasks int `json:"tasks"`
}

// Field bits of a task in a format 1 snapshot.
const (
	tState = 1 << iota
	tAttempt
	tFailures
	tStage
	tIndex
	tLost
	tDeaths
	tBytes
	tWorker
	tNeeds
	tLocality
	tError
	tRows
	tUpdated
	tAssigned
	tSubmitted
	tReported
	tReportedBy
	tID // only for a task no job lists: its id and job follow the mask
)

var taskStates = []TaskState{"", TaskPending, TaskAssigned, TaskRunning, TaskSucceeded, TaskFailed}

// Snapshot writes the state (format 1).
func (s *State) Snapshot(w io.Writer) error {
	_, err := w.Write(s.AppendSnapshot(nil))
	return err
}

// AppendSnapshot appends the state's snapshot (format 1) to b: one pass
// over the tasks with no allocation per task, so the FSM holds its lock
// for tens of milliseconds per 100,000 tasks.
func (s *State) AppendSnapshot(b []byte) []byte {
	h := snapHeader{Tasks: len(s.Tasks)}
	st := *s
	st.Tasks = nil
	st.Jobs = make(map[string]*Job, len(s.Jobs))
	ids := slices.Sorted(maps.Keys(s.Jobs))
	var scratch []byte
	for _, id := range ids {
		j := s.Jobs[id]
		if regularTasks(j, &scratch) {
			jc := *j
			jc.Tasks = nil
			st.Jobs[id] = &jc
			h.Regular = append(h.Regular, id)
		} else {
			st.Jobs[id] = j
		}
	}
	h.State = &st
	js, err := json.Marshal(h)
	if err != nil {
		panic(err) // only plain data: cannot fail
	}
	if b == nil {
		b = make([]byte, 0, len(js)+64*len(s.Tasks)+64)
	}
	b = append(b, snapV1...)
	b = wire.AppendString(b, string(js))
	e := taskEncoder{strs: map[string]int{}}
	listed := 0
	for _, id := range ids {
		for _, tid := range s.Jobs[id].Tasks {
			t := s.Tasks[tid]
			b = wire.AppendBool(b, t != nil && t.Job == id)
			if t != nil && t.Job == id {
				b = e.append(b, t, false)
				listed++
			}
		}
	}
	var orphans []*Task
	if listed != len(s.Tasks) { // a task no job lists (or one listed twice): not made by Apply
		seen := make(map[string]bool, listed)
		for _, id := range ids {
			for _, tid := range s.Jobs[id].Tasks {
				if t := s.Tasks[tid]; t != nil && t.Job == id {
					seen[tid] = true
				}
			}
		}
		for _, tid := range slices.Sorted(maps.Keys(s.Tasks)) {
			if !seen[tid] {
				orphans = append(orphans, s.Tasks[tid])
			}
		}
	}
	b = binary.AppendUvarint(b, uint64(len(orphans)))
	for _, t := range orphans {
		b = e.append(b, t, true)
	}
	return b
}

// regularTasks reports whether j's Tasks are j.ID-t0, -t1, ... in order.
func regularTasks(j *Job, scratch *[]byte) bool {
	for i, id := range j.Tasks {
		*scratch = strconv.AppendInt(append(append((*scratch)[:0], j.ID...), "-t"...), int64(i), 10)
		if id != string(*scratch) { // no allocation: the conversion is only compared
			return false
		}
	}
	return true
}

type taskEncoder struct{ strs map[string]int }

// str appends s as an index into the strings seen before, or 0 and s.
func (e *taskEncoder) str(b []byte, s string) []byte {
	if i, ok := e.strs[s]; ok {
		return binary.AppendUvarint(b, uint64(i))
	}
	e.strs[s] = len(e.strs) + 1
	return wire.AppendString(append(b, 0), s)
}

func (e *taskEncoder) append(b []byte, t *Task, withID bool) []byte {
	code := slices.Index(taskStates, t.State)
	var mask uint64
	set := func(bit uint64, on bool) {
		if on {
			mask |= bit
		}
	}
	set(tState, code != 0 || t.State != "")
	set(tAttempt, t.Attempt != 0)
	set(tFailures, t.Failures != 0)
	set(tStage, t.Stage != 0)
	set(tIndex, t.Index != 0)
	set(tLost, t.Lost != 0)
	set(tDeaths, t.Deaths != 0)
	set(tBytes, t.Bytes != 0)
	set(tWorker, t.Worker != "")
	set(tNeeds, t.Needs != Resources{})
	set(tLocality, t.Locality != "")
	set(tError, t.Error != "")
	set(tRows, t.Rows != 0)
	set(tUpdated, !t.Updated.IsZero())
	set(tAssigned, !t.Assigned.IsZero())
	set(tSubmitted, !t.Submitted.IsZero())
	set(tReported, t.Reported != 0)
	set(tReportedBy, t.ReportedBy != "")
	set(tID, withID)
	b = binary.AppendUvarint(b, mask)
	if withID {
		b = wire.AppendString(b, t.ID)
		b = e.str(b, t.Job)
	}
	if mask&tState != 0 {
		if code > 0 {
			b = append(b, byte(code))
		} else {
			b = wire.AppendString(append(b, 0), string(t.State))
		}
	}
	for _, f := range []struct {
		bit uint64
		v   int64
	}{{tAttempt, int64(t.Attempt)}, {tFailures, int64(t.Failures)}, {tStage, int64(t.Stage)}, {tIndex, int64(t.Index)},
		{tLost, int64(t.Lost)}, {tDeaths, int64(t.Deaths)}, {tBytes, t.Bytes}} {
		if mask&f.bit != 0 {
			b = binary.AppendVarint(b, f.v)
		}
	}
	if mask&tWorker != 0 {
		b = e.str(b, t.Worker)
	}
	if mask&tNeeds != 0 {
		b = binary.AppendVarint(binary.AppendVarint(binary.AppendVarint(b, int64(t.Needs.CPU)), int64(t.Needs.GPU)), t.Needs.Memory)
	}
	if mask&tLocality != 0 {
		b = e.str(b, t.Locality)
	}
	if mask&tError != 0 {
		b = wire.AppendString(b, t.Error)
	}
	if mask&tRows != 0 {
		b = binary.AppendVarint(b, t.Rows)
	}
	if mask&tUpdated != 0 {
		b = wire.AppendTime(b, t.Updated)
	}
	if mask&tAssigned != 0 {
		b = wire.AppendTime(b, t.Assigned)
	}
	if mask&tSubmitted != 0 {
		b = wire.AppendTime(b, t.Submitted)
	}
	if mask&tReported != 0 {
		b = binary.AppendVarint(b, int64(t.Reported))
	}
	if mask&tReportedBy != 0 {
		b = e.str(b, t.ReportedBy)
	}
	return b
}

type taskDecoder struct {
	r    *wire.Reader
	strs []string
}

func (d *taskDecoder) str() string {
	i := d.r.Uvarint()
	if i == 0 {
		s := d.r.String()
		d.strs = append(d.strs, s)
		return s
	}
	if i > uint64(len(d.strs)) {
		d.r.Fail("string %d of %d", i, len(d.strs))
		return ""
	}
	return d.strs[i-1]
}

func (d *taskDecoder) task(t *Task) {
	r := d.r
	mask := r.Uvarint()
	if mask&tID != 0 {
		t.ID = r.String()
		t.Job = d.str()
	}
	if mask&tState != 0 {
		if c := r.Byte(); c == 0 {
			t.State = TaskState(r.String())
		} else if int(c) < len(taskStates) {
			t.State = taskStates[c]
		} else {
			r.Fail("task state %d", c)
		}
	}
	for _, f := range []struct {
		bit uint64
		v   *int
	}{{tAttempt, &t.Attempt}, {tFailures, &t.Failures}, {tStage, &t.Stage}, {tIndex, &t.Index}, {tLost, &t.Lost}, {tDeaths, &t.Deaths}} {
		if mask&f.bit != 0 {
			*f.v = r.Int()
		}
	}
	if mask&tBytes != 0 {
		t.Bytes = r.Varint()
	}
	if mask&tWorker != 0 {
		t.Worker = d.str()
	}
	if mask&tNeeds != 0 {
		t.Needs = Resources{CPU: r.Int(), GPU: r.Int(), Memory: r.Varint()}
	}
	if mask&tLocality != 0 {
		t.Locality = d.str()
	}
	if mask&tError != 0 {
		t.Error = r.String()
	}
	if mask&tRows != 0 {
		t.Rows = r.Varint()
	}
	if mask&tUpdated != 0 {
		t.Updated = r.Time()
	}
	if mask&tAssigned != 0 {
		t.Assigned = r.Time()
	}
	if mask&tSubmitted != 0 {
		t.Submitted = r.Time()
	}
	if mask&tReported != 0 {
		t.Reported = r.Int()
	}
	if mask&tReportedBy != 0 {
		t.ReportedBy = d.str()
	}
	if mask >= tID<<1 {
		r.Fail("task field mask %#x", mask)
	}
}

// restoreBinary reads a format 1 snapshot (after its leading bytes).
func restoreBinary(data []byte) (*State, error) {
	r := wire.NewReader(data)
	var h snapHeader
	if err := json.Unmarshal(r.Bytes(), &h); r.Err() == nil && err != nil {
		return nil, fmt.Errorf("state: restore: the snapshot's header: %w", err)
	}
	if r.Err() != nil {
		return nil, fmt.Errorf("state: restore: %w", r.Err())
	}
	s := h.State
	if s == nil {
		s = New()
	}
	if s.Jobs == nil {
		s.Jobs = map[string]*Job{}
	}
	if h.Tasks < 0 || h.Tasks > r.Left() {
		return nil, fmt.Errorf("state: restore: %d tasks in %d bytes", h.Tasks, r.Left())
	}
	s.Tasks = make(map[string]*Task, h.Tasks)
	for _, id := range h.Regular {
		j := s.Jobs[id]
		if j == nil {
			return nil, fmt.Errorf("state: restore: regular job %s is not in the snapshot", id)
		}
		n := 0
		for _, st := range j.Stages {
			n += st.Tasks
		}
		if len(j.Stages) == 0 || n > MaxTasks {
			return nil, fmt.Errorf("state: restore: job %s has %d tasks", id, n)
		}
		j.Tasks = taskIDs(id, 0, n)
	}
	d := taskDecoder{r: r}
	// One allocation for the tasks of all jobs: a million tasks restore
	// as one block rather than a million objects.
	block := make([]Task, 0, h.Tasks)
	next := func() *Task {
		if len(block) < cap(block) {
			block = block[:len(block)+1]
			return &block[len(block)-1]
		}
		return new(Task)
	}
	for _, id := range slices.Sorted(maps.Keys(s.Jobs)) {
		j := s.Jobs[id]
		for _, tid := range j.Tasks {
			if !r.Bool() {
				continue
			}
			t := next()
			t.ID, t.Job = tid, j.ID
			d.task(t)
			s.Tasks[tid] = t
		}
		if r.Err() != nil {
			break
		}
	}
	for range r.Count(1) {
		t := next()
		d.task(t)
		s.Tasks[t.ID] = t
	}
	if err := r.End(); err != nil {
		return nil, fmt.Errorf("state: restore: %w", err)
	}
	return s, nil
}

// isJSON reports whether a snapshot is JSON (from before format 1).
func isJSON(data []byte) bool {
	data = bytes.TrimLeft(data, " \t\r\n")
	return len(data) > 0 && data[0] == '{'
}
