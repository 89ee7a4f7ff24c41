package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"time"
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
		b = appendString(append(b, 0), string(c.Op))
	}
	if mask&fRequestID != 0 {
		b = appendString(b, c.RequestID)
	}
	if mask&fAt != 0 {
		b = appendTime(b, c.At)
	}
	if mask&fID != 0 {
		b = appendString(b, c.ID)
	}
	if mask&fWorker != 0 {
		b = appendString(b, c.Worker)
	}
	if mask&fAttempt != 0 {
		b = binary.AppendVarint(b, int64(c.Attempt))
	}
	if mask&fError != 0 {
		b = appendString(b, c.Error)
	}
	if mask&fRows != 0 {
		b = binary.AppendVarint(b, c.Rows)
	}
	if mask&fTime != 0 {
		b = appendTime(b, c.Time)
	}
	if mask&fNeeds != 0 {
		b = binary.AppendVarint(b, int64(c.Needs.CPU))
		b = binary.AppendVarint(b, int64(c.Needs.GPU))
		b = binary.AppendVarint(b, c.Needs.Memory)
	}
	if mask&fLocality != 0 {
		b = appendString(b, c.Locality)
	}
	if mask&fLayout != 0 {
		b = appendString(b, string(c.Layout))
	}
	if mask&fLost != 0 {
		b = appendStrings(b, c.Lost)
	}
	if mask&fOutput != 0 {
		b = appendStrings(b, c.Output)
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
		b = appendString(b, string(j))
	}
	return b
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

func appendTime(b []byte, t time.Time) []byte {
	return binary.AppendUvarint(binary.AppendVarint(b, t.Unix()), uint64(t.Nanosecond()))
}

// Decode reads a log entry: format 1, or the JSON of older logs.
func Decode(b []byte) (Command, error) {
	var c Command
	if len(b) > 0 && b[0] == formatV1 {
		d := decoder{b: b, off: 1}
		d.command(&c, 0)
		if d.err == nil && d.off != len(b) {
			d.fail("%d bytes after the command", len(b)-d.off)
		}
		if d.err != nil {
			return Command{}, fmt.Errorf("%w: %w", ErrBadCommand, d.err)
		}
		return c, nil
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%w: %w", ErrBadCommand, err)
	}
	return c, nil
}

// errEntry is a malformed format 1 entry.
var errEntry = errors.New("malformed log entry")

// decoder reads a format 1 entry; the first error stops it, and each
// read after it returns zero values.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w at byte %d: %s", errEntry, d.off, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) int() int {
	v := d.varint()
	if v < math.MinInt || v > math.MaxInt || (bits.UintSize == 32 && (v < math.MinInt32 || v > math.MaxInt32)) {
		d.fail("integer %d out of range", v)
		return 0
	}
	return int(v)
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("entry ends early")
		return 0
	}
	d.off++
	return d.b[d.off-1]
}

// bytes is the next length-prefixed byte string (aliasing the entry).
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail("a string of %d bytes in %d left", n, len(d.b)-d.off)
		return nil
	}
	s := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return s
}

func (d *decoder) string() string { return string(d.bytes()) }

func (d *decoder) strings() []string {
	n := d.uvarint()
	// Each string takes at least a byte: a count past what is left is
	// malformed (and must not size an allocation).
	if d.err == nil && n > uint64(len(d.b)-d.off) {
		d.fail("%d strings in %d bytes", n, len(d.b)-d.off)
	}
	if d.err != nil || n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = d.string()
	}
	return out
}

// The times a log entry may hold: years 0 to 9999, as in JSON (and so
// in snapshots).
const (
	minUnix = -62167219200 // 0000-01-01T00:00:00Z
	maxUnix = 253402300799 // 9999-12-31T23:59:59Z
)

func (d *decoder) time() time.Time {
	s, ns := d.varint(), d.uvarint()
	switch {
	case d.err != nil:
	case ns >= 1e9:
		d.fail("%d nanoseconds", ns)
	case s < minUnix || s > maxUnix:
		d.fail("time %d s outside years 0 to 9999", s)
	}
	if d.err != nil {
		return time.Time{}
	}
	return time.Unix(s, int64(ns)).UTC()
}

// maxDepth is how deep batches may nest in an entry (Apply refuses a
// nested batch; the bound only keeps a malformed entry from exhausting
// the stack).
const maxDepth = 8

func (d *decoder) command(c *Command, depth int) {
	mask := d.uvarint()
	if d.err == nil && mask&^fAll != 0 {
		d.fail("unknown fields %#x", mask&^fAll)
	}
	code := d.byte()
	if d.err != nil {
		return
	}
	if code == 0 {
		c.Op = Op(d.string())
	} else if op, ok := opOfCode[code]; ok {
		c.Op = op
	} else {
		d.fail("unknown op code %d", code)
		return
	}
	if mask&fRequestID != 0 {
		c.RequestID = d.string()
	}
	if mask&fAt != 0 {
		c.At = d.time()
	}
	if mask&fID != 0 {
		c.ID = d.string()
	}
	if mask&fWorker != 0 {
		c.Worker = d.string()
	}
	if mask&fAttempt != 0 {
		c.Attempt = d.int()
	}
	c.OK = mask&fOK != 0
	if mask&fError != 0 {
		c.Error = d.string()
	}
	if mask&fRows != 0 {
		c.Rows = d.varint()
	}
	if mask&fTime != 0 {
		c.Time = d.time()
	}
	if mask&fNeeds != 0 {
		c.Needs = Resources{CPU: d.int(), GPU: d.int(), Memory: d.varint()}
	}
	if mask&fLocality != 0 {
		c.Locality = d.string()
	}
	if mask&fLayout != 0 {
		c.Layout = append([]byte(nil), d.bytes()...)
	}
	if mask&fLost != 0 {
		c.Lost = d.strings()
	}
	if mask&fOutput != 0 {
		c.Output = d.strings()
	}
	if mask&fBytes != 0 {
		c.Bytes = d.varint()
	}
	c.Assign = mask&fAssign != 0
	if mask&fBatch != 0 {
		n := d.uvarint()
		switch {
		case d.err != nil:
			return
		case depth >= maxDepth:
			d.fail("batches nested over %d deep", maxDepth)
			return
		case n > uint64(len(d.b)-d.off)/2: // a command takes at least 2 bytes
			d.fail("%d commands in %d bytes", n, len(d.b)-d.off)
			return
		}
		if n > 0 {
			c.Batch = make([]Command, n)
		}
		for i := range c.Batch {
			d.command(&c.Batch[i], depth+1)
		}
	}
	if mask&fRare != 0 {
		j := d.bytes()
		if d.err != nil {
			return
		}
		var r rare
		if err := json.Unmarshal(j, &r); err != nil {
			d.fail("the JSON fields: %v", err)
			return
		}
		if len(r.Stages) == 0 {
			r.Stages = nil // as Encode leaves them out
		}
		c.Job, c.Schedule, c.Register, c.Node, c.Experiment, c.Stages = r.Job, r.Schedule, r.Register, r.Node, r.Experiment, r.Stages
	}
}
