package api

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/sluicehq/sluice/executor/cluster/internal/wire"
	"github.com/sluicehq/sluice/executor/cluster/state"
)

// ContentTypeBinary is the media type of the compact binary bodies of the
// hot worker calls: a worker's report batches and their answers, and
// heartbeat answers. A client sends a binary body with this Content-Type
// and asks for a binary answer with Accept; a coordinator answers JSON
// to a call without them (curl, older workers), and errors always.
//
// A body starts with its format (1) and its kind, then the message:
// strings as a uvarint length and the bytes, integers as varints,
// booleans as one byte, times as varint Unix seconds and uvarint
// nanoseconds, lists as a uvarint count and their items, in the field
// order of the Go types; the rare planning fields (a report's stages) as
// embedded JSON.
const ContentTypeBinary = "application/x-sluice-binary"

const wireV1 byte = 1

// wireBody and wireAnswer are the request bodies and answers that Client
// sends and asks for in binary.
type (
	wireBody   interface{ AppendWire([]byte) []byte }
	wireAnswer interface{ ReadWire([]byte) error }
)

var (
	_ wireBody   = ReportBatch{}
	_ wireAnswer = (*ReportBatchResponse)(nil)
	_ wireAnswer = (*HeartbeatResponse)(nil)
)

// The kinds of binary bodies.
const (
	kindReportBatch byte = iota + 1
	kindReportBatchResponse
	kindHeartbeatResponse
)

// ErrWire is a binary body that does not decode.
var ErrWire = wire.ErrMalformed

func header(b []byte, kind byte) []byte { return append(b, wireV1, kind) }

func readHeader(data []byte, kind byte, what string) (*wire.Reader, error) {
	if len(data) < 2 || data[0] != wireV1 || data[1] != kind {
		return nil, fmt.Errorf("%w: not a format %d %s body (it starts %x)", ErrWire, wireV1, what, data[:min(len(data), 2)])
	}
	return wire.NewReader(data[2:]), nil
}

func end(r *wire.Reader, what string) error {
	if err := r.End(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// AppendWire appends the batch's binary body.
func (b ReportBatch) AppendWire(dst []byte) []byte {
	dst = header(dst, kindReportBatch)
	dst = binaryUvarint(dst, len(b.Reports))
	for i := range b.Reports {
		dst = b.Reports[i].appendWire(dst)
	}
	return dst
}

// ReadWire reads a body that AppendWire wrote.
func (b *ReportBatch) ReadWire(data []byte) error {
	r, err := readHeader(data, kindReportBatch, "report batch")
	if err != nil {
		return err
	}
	n := r.Count(13) // a report takes at least 13 bytes
	b.Reports = nil
	if n > 0 {
		b.Reports = make([]TaskReport, n)
	}
	for i := range b.Reports {
		b.Reports[i].readWire(r)
	}
	return end(r, "report batch")
}

// taskReportFields is how many fields TaskReport has: a test fails when
// a field is added and not encoded.
const taskReportFields = 13

func (t *TaskReport) appendWire(b []byte) []byte {
	b = wire.AppendString(b, t.RequestID)
	b = wire.AppendString(b, t.Worker)
	b = binaryVarint(b, int64(t.Attempt))
	b = wire.AppendBool(b, t.OK)
	b = wire.AppendString(b, t.Error)
	b = binaryVarint(b, t.Rows)
	b = wire.AppendString(b, t.Task)
	b = wire.AppendString(b, t.Phase)
	b = binaryVarint(b, t.Bytes)
	b = wire.AppendString(b, string(t.Layout))
	var stages []byte
	if len(t.Stages) > 0 {
		var err error
		if stages, err = json.Marshal(t.Stages); err != nil {
			panic(err) // plain data: cannot fail
		}
	}
	b = wire.AppendString(b, string(stages))
	b = wire.AppendStrings(b, t.Lost)
	return wire.AppendStrings(b, t.Output)
}

func (t *TaskReport) readWire(r *wire.Reader) {
	t.RequestID = r.String()
	t.Worker = r.String()
	t.Attempt = r.Int()
	t.OK = r.Bool()
	t.Error = r.String()
	t.Rows = r.Varint()
	t.Task = r.String()
	t.Phase = r.String()
	t.Bytes = r.Varint()
	if l := r.Bytes(); len(l) > 0 {
		t.Layout = append([]byte(nil), l...)
	}
	if s := r.Bytes(); len(s) > 0 && r.Err() == nil {
		if err := json.Unmarshal(s, &t.Stages); err != nil {
			r.Fail("the stages of the report of task %q: %v", t.Task, err)
		}
	}
	t.Lost = r.Strings()
	t.Output = r.Strings()
}

// AppendWire appends the answer's binary body.
func (b ReportBatchResponse) AppendWire(dst []byte) []byte {
	dst = header(dst, kindReportBatchResponse)
	dst = binaryUvarint(dst, len(b.Results))
	for _, res := range b.Results {
		dst = wire.AppendString(dst, res.Task)
		dst = wire.AppendString(dst, res.Error)
		dst = wire.AppendBool(dst, res.Stale)
	}
	return dst
}

// ReadWire reads a body that AppendWire wrote.
func (b *ReportBatchResponse) ReadWire(data []byte) error {
	r, err := readHeader(data, kindReportBatchResponse, "report answer")
	if err != nil {
		return err
	}
	n := r.Count(3)
	b.Results = nil
	if n > 0 {
		b.Results = make([]ReportResult, n)
	}
	for i := range b.Results {
		b.Results[i] = ReportResult{Task: r.String(), Error: r.String(), Stale: r.Bool()}
	}
	return end(r, "report answer")
}

// AppendWire appends the answer's binary body.
func (h HeartbeatResponse) AppendWire(dst []byte) []byte {
	dst = header(dst, kindHeartbeatResponse)
	dst = binaryUvarint(dst, len(h.Tasks))
	for i := range h.Tasks {
		dst = h.Tasks[i].appendWire(dst)
	}
	return wire.AppendStrings(dst, h.Free)
}

// ReadWire reads a body that AppendWire wrote. Tasks is never nil (as
// in the JSON a coordinator sends).
func (h *HeartbeatResponse) ReadWire(data []byte) error {
	r, err := readHeader(data, kindHeartbeatResponse, "heartbeat answer")
	if err != nil {
		return err
	}
	h.Tasks = make([]Assignment, r.Count(20)) // an assignment takes at least 20 bytes
	for i := range h.Tasks {
		h.Tasks[i].readWire(r)
	}
	h.Free = r.Strings()
	return end(r, "heartbeat answer")
}

// The fields of the types an Assignment carries: a test fails when a
// field is added and not encoded.
const (
	assignmentFields = 9 // and Job, never on the wire
	taskFields       = 20
	inputFields      = 3
	producerFields   = 5
	runFields        = 3
)

func (a *Assignment) appendWire(b []byte) []byte {
	t := &a.Task
	b = wire.AppendString(b, t.ID)
	b = wire.AppendString(b, t.Job)
	b = wire.AppendString(b, string(t.State))
	for _, v := range []int{t.Attempt, t.Failures, t.Stage, t.Index, t.Lost, t.Deaths} {
		b = binaryVarint(b, int64(v))
	}
	b = binaryVarint(b, t.Bytes)
	b = wire.AppendString(b, t.Worker)
	b = binaryVarint(b, int64(t.Needs.CPU))
	b = binaryVarint(b, int64(t.Needs.GPU))
	b = binaryVarint(b, t.Needs.Memory)
	b = wire.AppendString(b, t.Locality)
	b = wire.AppendString(b, t.Error)
	b = binaryVarint(b, t.Rows)
	b = wire.AppendTime(b, t.Updated)
	b = wire.AppendTime(b, t.Assigned)
	b = wire.AppendTime(b, t.Submitted)
	b = binaryVarint(b, int64(t.Reported))
	b = wire.AppendString(b, t.ReportedBy)

	b = wire.AppendString(b, a.Spec)
	b = binaryVarint(b, int64(a.StageTasks))
	b = wire.AppendString(b, string(a.Kind))
	b = binaryUvarint(b, len(a.Inputs))
	for _, in := range a.Inputs {
		b = binaryVarint(b, int64(in.Stage))
		b = binaryUvarint(b, len(in.Producers))
		for _, p := range in.Producers {
			b = wire.AppendString(b, p.ID)
			b = binaryVarint(b, int64(p.Index))
			b = binaryVarint(b, int64(p.Attempt))
			b = wire.AppendString(b, p.Addr)
			b = wire.AppendBool(b, p.Missing)
		}
		b = binaryUvarint(b, len(in.Runs))
		for _, ru := range in.Runs {
			b = binaryVarint(b, int64(ru.Index))
			b = binaryVarint(b, int64(ru.Count))
			b = binaryVarint(b, int64(ru.Attempt))
		}
	}
	b = wire.AppendBool(b, a.Failing)
	b = binaryVarint(b, int64(a.Workers))
	b = binaryVarint(b, int64(a.CPUs))
	return binaryVarint(b, int64(a.GPUs))
}

func (a *Assignment) readWire(r *wire.Reader) {
	t := &a.Task
	t.ID = r.String()
	t.Job = r.String()
	t.State = state.TaskState(r.String())
	for _, v := range []*int{&t.Attempt, &t.Failures, &t.Stage, &t.Index, &t.Lost, &t.Deaths} {
		*v = r.Int()
	}
	t.Bytes = r.Varint()
	t.Worker = r.String()
	t.Needs = state.Resources{CPU: r.Int(), GPU: r.Int(), Memory: r.Varint()}
	t.Locality = r.String()
	t.Error = r.String()
	t.Rows = r.Varint()
	t.Updated = r.Time()
	t.Assigned = r.Time()
	t.Submitted = r.Time()
	t.Reported = r.Int()
	t.ReportedBy = r.String()

	a.Spec = r.String()
	a.StageTasks = r.Int()
	a.Kind = state.StageKind(r.String())
	if n := r.Count(2); n > 0 {
		a.Inputs = make([]Input, n)
	}
	for i := range a.Inputs {
		in := &a.Inputs[i]
		in.Stage = r.Int()
		in.Producers = make([]Producer, r.Count(5))
		for j := range in.Producers {
			in.Producers[j] = Producer{ID: r.String(), Index: r.Int(), Attempt: r.Int(), Addr: r.String(), Missing: r.Bool()}
		}
		if n := r.Count(3); n > 0 {
			in.Runs = make([]ProducerRun, n)
		}
		for j := range in.Runs {
			ru := &in.Runs[j]
			ru.Index, ru.Count, ru.Attempt = r.Int(), r.Int(), r.Int()
			if ru.Count < 0 || ru.Count > state.MaxTasks {
				r.Fail("a run of %d producers", ru.Count)
			}
		}
	}
	a.Failing = r.Bool()
	a.Workers = r.Int()
	a.CPUs = r.Int()
	a.GPUs = r.Int()
}

func binaryVarint(b []byte, v int64) []byte { return binary.AppendVarint(b, v) }

func binaryUvarint(b []byte, n int) []byte { return binary.AppendUvarint(b, uint64(n)) }
