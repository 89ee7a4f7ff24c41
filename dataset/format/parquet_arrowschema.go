package format

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/apache/arrow-go/v18/parquet/metadata"
)

// checkStoredSchema guards pqarrow from a corrupt "ARROW:schema" footer
// entry. arrow-go decodes that flatbuffer trusting its vector lengths and
// nesting: a damaged length makes it allocate terabytes, a cycle makes it
// recurse forever, and both kill the process where recover cannot help.
// This walks the same tables first and checks every vector arrow-go sizes a
// slice from (fields, children, custom metadata) fits in the buffer, with
// bounded depth and work.
func checkStoredSchema(kv metadata.KeyValueMetadata) (err error) {
	v := kv.FindValue("ARROW:schema")
	if v == nil {
		return nil
	}
	var raw []byte
	if len(*v)%4 == 0 {
		raw, err = base64.StdEncoding.DecodeString(*v)
	}
	if len(raw) == 0 || err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(*v); err != nil {
			return nil // pqarrow fails on this itself, with an error
		}
	}
	// An IPC message: [0xFFFFFFFF] int32 length, then the flatbuffer.
	if len(raw) >= 4 && binary.LittleEndian.Uint32(raw) == 0xFFFFFFFF {
		raw = raw[4:]
	}
	if len(raw) < 4 {
		return errors.New("too short")
	}
	n := int64(int32(binary.LittleEndian.Uint32(raw)))
	raw = raw[4:]
	if n < 4 || n > int64(len(raw)) {
		return fmt.Errorf("message length %d, %d bytes", n, len(raw))
	}
	c := &fbCheck{buf: raw[:n], budget: 1 << 16}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	msg, err := c.root()
	if err != nil {
		return err
	}
	// The reader allocates the message body before reading it.
	if o := msg.Offset(4 + 2*3); o != 0 {
		if err := c.at(uint32(msg.Pos)+uint32(o), 8); err != nil {
			return err
		}
		if body := msg.GetInt64(msg.Pos + flatbuffers.UOffsetT(o)); body < 0 || body > int64(len(raw))-n {
			return fmt.Errorf("message body of %d bytes, %d left", body, int64(len(raw))-n)
		}
	}
	// Message: version(0) header_type(1) header(2) bodyLength(3) custom_metadata(4)
	if err := c.vector(msg, 4); err != nil {
		return err
	}
	schema, ok, err := c.table(msg, 2)
	if err != nil || !ok {
		return err
	}
	// Schema: endianness(0) fields(1) custom_metadata(2) features(3)
	if err := c.vector(schema, 2); err != nil {
		return err
	}
	if err := c.vector(schema, 3); err != nil {
		return err
	}
	return c.fields(schema, 1, 0)
}

type fbCheck struct {
	buf    []byte
	budget int
}

func (c *fbCheck) at(pos uint32, n uint32) error {
	if uint64(pos)+uint64(n) > uint64(len(c.buf)) {
		return fmt.Errorf("offset %d+%d beyond %d bytes", pos, n, len(c.buf))
	}
	return nil
}

func (c *fbCheck) tableAt(pos uint32) (flatbuffers.Table, error) {
	if err := c.at(pos, 4); err != nil {
		return flatbuffers.Table{}, err
	}
	t := flatbuffers.Table{Bytes: c.buf, Pos: flatbuffers.UOffsetT(pos)}
	vt := int64(pos) - int64(int32(flatbuffers.GetUint32(c.buf[pos:])))
	if vt < 0 || vt+4 > int64(len(c.buf)) {
		return t, fmt.Errorf("vtable at %d beyond %d bytes", vt, len(c.buf))
	}
	if vlen := int64(flatbuffers.GetUint16(c.buf[vt:])); vt+vlen > int64(len(c.buf)) {
		return t, fmt.Errorf("vtable of %d bytes at %d beyond %d bytes", vlen, vt, len(c.buf))
	}
	return t, nil
}

func (c *fbCheck) root() (flatbuffers.Table, error) {
	return c.tableAt(flatbuffers.GetUint32(c.buf))
}

// table follows the table field in slot; false when the field is absent.
func (c *fbCheck) table(t flatbuffers.Table, slot int) (flatbuffers.Table, bool, error) {
	o := t.Offset(flatbuffers.VOffsetT(4 + 2*slot))
	if o == 0 {
		return flatbuffers.Table{}, false, nil
	}
	pos := uint32(t.Pos) + uint32(o)
	if err := c.at(pos, 4); err != nil {
		return flatbuffers.Table{}, false, err
	}
	sub, err := c.tableAt(pos + flatbuffers.GetUint32(c.buf[pos:]))
	return sub, err == nil, err
}

// vector checks the vector of 4-byte elements in slot fits in the buffer and
// returns where its elements start and how many there are.
func (c *fbCheck) vectorAt(t flatbuffers.Table, slot int) (start uint32, n int, err error) {
	o := t.Offset(flatbuffers.VOffsetT(4 + 2*slot))
	if o == 0 {
		return 0, 0, nil
	}
	pos := uint32(t.Pos) + uint32(o)
	if err := c.at(pos, 4); err != nil {
		return 0, 0, err
	}
	vec := uint64(pos) + uint64(flatbuffers.GetUint32(c.buf[pos:]))
	if vec+4 > uint64(len(c.buf)) {
		return 0, 0, fmt.Errorf("vector at %d beyond %d bytes", vec, len(c.buf))
	}
	count := uint64(flatbuffers.GetUint32(c.buf[vec:]))
	if vec+4+4*count > uint64(len(c.buf)) {
		return 0, 0, fmt.Errorf("vector of %d elements at %d beyond %d bytes", count, vec, len(c.buf))
	}
	return uint32(vec + 4), int(count), nil
}

func (c *fbCheck) vector(t flatbuffers.Table, slot int) error {
	_, _, err := c.vectorAt(t, slot)
	return err
}

// fields checks a vector of Field tables and, recursively, their children.
// Field: name(0) nullable(1) type_type(2) type(3) dictionary(4) children(5) custom_metadata(6)
func (c *fbCheck) fields(t flatbuffers.Table, slot, depth int) error {
	if depth > 64 {
		return errors.New("fields nested more than 64 deep")
	}
	start, n, err := c.vectorAt(t, slot)
	if err != nil {
		return err
	}
	for i := range n {
		if c.budget--; c.budget < 0 {
			return errors.New("too many fields")
		}
		elem := start + uint32(4*i)
		f, err := c.tableAt(elem + flatbuffers.GetUint32(c.buf[elem:]))
		if err != nil {
			return err
		}
		if err := c.vector(f, 6); err != nil {
			return err
		}
		const typeUnion = 14 // flatbuf.TypeUnion
		if o := f.Offset(4 + 2*2); o != 0 && f.GetUint8(f.Pos+flatbuffers.UOffsetT(o)) == typeUnion {
			// Union: mode(0) typeIds(1). Other type tables hold no vectors.
			if typ, ok, err := c.table(f, 3); err != nil {
				return err
			} else if ok {
				if err := c.vector(typ, 1); err != nil {
					return err
				}
			}
		}
		if err := c.fields(f, 5, depth+1); err != nil {
			return err
		}
	}
	return nil
}
