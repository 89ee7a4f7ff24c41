package state

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/sluicehq/sluice/executor/cluster/internal/wire"
)

// The log's entries are binary since format 1: a leading byte names the
// format, so the JSON entries written before it (which start with '{',
// or white space) still decode from existing logs.
//
// Format 1 is the command: a uvarint field mask, the op (a byte code, or
// 0 and the op's name for an op without one), then each field of the
// mask in bit order: strings and byte strings as a uvarint length and
// the bytes, integers as varints, times as varint Unix seconds and
// uvarint nanoseconds (read back in UTC), a batch as a uvarint count and
// its commands (each without the leading byte). The rare fields (a job,
// a schedule, a worker's registration, a node, an experiment, a planning
// task's stages) travel as one JSON object in the last field, so their
// encoding is the snapshot's.
const formatV1 byte = 0x01

// Field bits of a format 1 command.
const (
	fRequestID = 1 << iota
	fAt
	fID
	fWorker
	fAttempt
	fOK
	fError
	fRows
	fTime
	fNeeds
	fLocality
	fLayout
	fLost
	fOutput
	fBytes
	fAssign
	fBatch
	fRare
	fAll = 1<<iota - 1
)

// opCodes numbers the ops for format 1; 0 is an op spelled out. Codes
// are never reused or renumbered: they are in logs on disk.
var opCodes = map[Op]byte{
	OpSubmit: 1, OpSchedule: 2, OpUnschedule: 3, OpFire: 4, OpSkip: 5, OpCancel: 6, OpRegister: 7,
	OpHeartbeat: 8, OpExpire: 9, OpAssign: 10, OpStart: 11, OpFinish: 12, OpNode: 13, OpRemove: 14,
	OpBatch: 15, OpExperiment: 16,
}

var opOfCode = func() map[byte]Op {
	m := map[byte]Op{}
	for op, c := range opCodes {
		m[c] = op
	}
	return m
}()

// rare holds a command's fields that format 1 keeps as JSON.
type rare struct {
	Job        *Job        `json:"job,omitempty"`
	Schedule   *Schedule   `json:"schedule,omitempty"`
	Register   *Worker     `json:"register,omitempty"`
	Node       *Node       `json:"node,omitempty"`
	Experiment *Experiment `json:"experiment,omitempty"`
	Stages     []Stage     `json:"stages,omitempty"`
}

// Encode is the command as a log entry (format 1).
func (c Command) Encode() []byte {
	return c.appendBinary(append(make([]byte, 0, 64+48*len(c.Batch)), formatV1))
}

// EncodeJSON is the command as a log entry of before format 1, which
// Decode still reads.
func (c Command) EncodeJSON() []byte {
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // only plain data: cannot fail
	}
	return b
}

func (c *Command) appendBinary(b []byte) []byte {
	var mask uint64
	set := func(bit uint64, on bool) {
		if on {
			mask |= bit
		}
	}
	set(fRequestID, c.RequestID != "")
	set(fAt, !c.At.IsZero())
	set(fID, c.ID != "")
	set(fWorker, c.Worker != "")
	set(fAttempt, c.Attempt != 0)
	set(fOK, c.OK)
	set(fError, c.Error != "")
	set(fRows, c.Rows != 0)
	set(fTime, !c.Time.IsZero())
	set(fNeeds, c.Needs != Resources{})
	set(fLocality, c.Locality != "")
	set(fLayout, len(c.Layout) > 0)
	set(fLost, len(c.Lost) > 0)
	set(fOutput, len(c.Output) > 0)
	set(fBytes, c.Bytes != 0)
	set(fAssign, c.Assign)
	set(fBatch, len(c.Batch) > 0)
	set(fRare, c.Job != nil || c.Schedule != nil || c.Register != nil || c.Node != nil || c.Experiment != nil || len(c.Stages) > 0)

	b = binary.AppendUvarint(b, mask)
	if code, ok := opCodes[c.Op]; ok {
		b = append(b, code)
	} else {
		b = wire.AppendString(append(b, 0), string(c.Op))
	}
	if mask&fRequestID != 0 {
		b = wire.AppendString(b, c.RequestID)
	}
	if mask&fAt != 0 {
		b = wire.AppendTime(b, c.At)
	}
	if mask&fID != 0 {
		b = wire.AppendString(b, c.ID)
	}
	if mask&fWorker != 0 {
		b = wire.AppendString(b, c.Worker)
	}
	if mask&fAttempt != 0 {
		b = binary.AppendVarint(b, int64(c.Attempt))
	}
	if mask&fError != 0 {
		b = wire.AppendString(b, c.Error)
	}
	if mask&fRows != 0 {
		b = binary.AppendVarint(b, c.Rows)
	}
	if mask&fTime != 0 {
		b = wire.AppendTime(b, c.Time)
	}
	if mask&fNeeds != 0 {
		b = binary.AppendVarint(b, int64(c.Needs.CPU))
		b = binary.AppendVarint(b, int64(c.Needs.GPU))
		b = binary.AppendVarint(b, c.Needs.Memory)
	}
	if mask&fLocality != 0 {
		b = wire.AppendString(b, c.Locality)
	}
	if mask&fLayout != 0 {
		b = wire.AppendString(b, string(c.Layout))
	}
	if mask&fLost != 0 {
		b = wire.AppendStrings(b, c.Lost)
	}
	if mask&fOutput != 0 {
		b = wire.AppendStrings(b, c.Output)
	}
	if mask&fBytes != 0 {
		b = binary.AppendVarint(b, c.Bytes)
	}
	if mask&fBatch != 0 {
		b = binary.AppendUvarint(b, uint64(len(c.Batch)))
		for i := range c.Batch {
			b = c.Batch[i].appendBinary(b)
		}
	}
	if mask&fRare != 0 {
		j, err := json.Marshal(rare{Job: c.Job, Schedule: c.Schedule, Register: c.Register, Node: c.Node,
			Experiment: c.Experiment, Stages: c.Stages})
		if err != nil {
			panic(err) // only plain data: cannot fail
		}
		b = wire.AppendString(b, string(j))
	}
	return b
}

// Decode reads a log entry: format 1, or the JSON of older logs.
func Decode(b []byte) (Command, error) {
	var c Command
	if len(b) > 0 && b[0] == formatV1 {
		d := wire.NewReader(b[1:])
		decodeCommand(d, &c, 0)
		if err := d.End(); err != nil {
			return Command{}, fmt.Errorf("%w: %w", ErrBadCommand, err)
		}
		return c, nil
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%w: %w", ErrBadCommand, err)
	}
	return c, nil
}

// maxDepth is how deep batches may nest in an entry (Apply refuses a
// nested batch; the bound only keeps a malformed entry from exhausting
// the stack).
const maxDepth = 8

func decodeCommand(d *wire.Reader, c *Command, depth int) {
	mask := d.Uvarint()
	if d.Err() == nil && mask&^fAll != 0 {
		d.Fail("unknown fields %#x", mask&^fAll)
	}
	code := d.Byte()
	if d.Err() != nil {
		return
	}
	if code == 0 {
		c.Op = Op(d.String())
	} else if op, ok := opOfCode[code]; ok {
		c.Op = op
	} else {
		d.Fail("unknown op code %d", code)
		return
	}
	if mask&fRequestID != 0 {
		c.RequestID = d.String()
	}
	if mask&fAt != 0 {
		c.At = d.Time()
	}
	if mask&fID != 0 {
		c.ID = d.String()
	}
	if mask&fWorker != 0 {
		c.Worker = d.String()
	}
	if mask&fAttempt != 0 {
		c.Attempt = d.Int()
	}
	c.OK = mask&fOK != 0
	if mask&fError != 0 {
		c.Error = d.String()
	}
	if mask&fRows != 0 {
		c.Rows = d.Varint()
	}
	if mask&fTime != 0 {
		c.Time = d.Time()
	}
	if mask&fNeeds != 0 {
		c.Needs = Resources{CPU: d.Int(), GPU: d.Int(), Memory: d.Varint()}
	}
	if mask&fLocality != 0 {
		c.Locality = d.String()
	}
	if mask&fLayout != 0 {
		c.Layout = append([]byte(nil), d.Bytes()...)
	}
	if mask&fLost != 0 {
		c.Lost = d.Strings()
	}
	if mask&fOutput != 0 {
		c.Output = d.Strings()
	}
	if mask&fBytes != 0 {
		c.Bytes = d.Varint()
	}
	c.Assign = mask&fAssign != 0
	if mask&fBatch != 0 {
		if depth >= maxDepth {
			d.Fail("batches nested over %d deep", maxDepth)
			return
		}
		n := d.Count(2) // a command takes at least 2 bytes
		if d.Err() != nil {
			return
		}
		if n > 0 {
			c.Batch = make([]Command, n)
		}
		for i := range c.Batch {
			decodeCommand(d, &c.Batch[i], depth+1)
		}
	}
	if mask&fRare != 0 {
		j := d.Bytes()
		if d.Err() != nil {
			return
		}
		var r rare
		if err := json.Unmarshal(j, &r); err != nil {
			d.Fail("the JSON fields: %v", err)
			return
		}
		if len(r.Stages) == 0 {
			r.Stages = nil // as Encode leaves them out
		}
		c.Job, c.Schedule, c.Register, c.Node, c.Experiment, c.Stages = r.Job, r.Schedule, r.Register, r.Node, r.Experiment, r.Stages
	}
}
