package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Errors, matched with errors.Is; the *Error that wraps them names the file
// and the tensor.
var (
	// ErrHeader: a file's header is malformed or disagrees with the file.
	ErrHeader = errors.New("safetensors: invalid header")
	// ErrIndex: model.safetensors.index.json is malformed or disagrees with
	// the shards.
	ErrIndex = errors.New("safetensors: invalid index")
	// ErrNotFound: the checkpoint holds no tensor of that name.
	ErrNotFound = errors.New("safetensors: no such tensor")
	// ErrNoCheckpoint: a directory holds neither model.safetensors nor
	// model.safetensors.index.json.
	ErrNoCheckpoint = errors.New("safetensors: no checkpoint")
)

// MaxHeaderSize is the largest JSON header accepted, as in the reference
// implementation: a larger length field means a corrupt or hostile file.
const MaxHeaderSize = 100 << 20

// Error is what every function of the package returns on bad input.
type Error struct {
	Path   string // the file
	Tensor string // the tensor, or "" when the error is not about one
	Msg    string
	Err    error // ErrHeader, ErrIndex, ErrNotFound, ErrNoCheckpoint or an I/O error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("safetensors: ")
	b.WriteString(e.Path)
	if e.Tensor != "" {
		fmt.Fprintf(&b, ": tensor %q", e.Tensor)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

func headerError(path, tensor, format string, args ...any) error {
	return &Error{Path: path, Tensor: tensor, Msg: fmt.Sprintf(format, args...), Err: ErrHeader}
}

// DType is a tensor element type as the header spells it ("F32", "BF16").
type DType string

// The element types of the format.
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U64  DType = "U64"
	U32  DType = "U32"
	U16  DType = "U16"
	U8   DType = "U8"
	Bool DType = "BOOL"
	// The 8-bit floats of FP8 checkpoints.
	F8E4M3 DType = "F8_E4M3"
	F8E5M2 DType = "F8_E5M2"
)

// Size is the size of one element in bytes; 0 for an unknown DType.
func (d DType) Size() int {
	switch d {
	case F64, I64, U64:
		return 8
	case F32, I32, U32:
		return 4
	case F16, BF16, I16, U16:
		return 2
	case I8, U8, Bool, F8E4M3, F8E5M2:
		return 1
	}
	return 0
}

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	Name  string
	DType DType
	Shape []int
	// Offset is where the tensor's bytes start, from the start of the file;
	// Size is their length, the product of Shape times DType.Size().
	Offset, Size int64
}

// Len is the number of elements.
func (t TensorInfo) Len() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Header is a validated header.
type Header struct {
	// Metadata is the "__metadata__" object; nil when the file has none.
	Metadata map[string]string
	// Tensors are in the order of their bytes in the file.
	Tensors []TensorInfo
	// DataStart is the offset of the first tensor byte: 8 + the JSON length.
	DataStart int64

	byName map[string]int
}

// Tensor returns the tensor called name.
func (h *Header) Tensor(name string) (TensorInfo, bool) {
	i, ok := h.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return h.Tensors[i], true
}

// entry is one tensor of the JSON header; pointers tell missing fields.
type entry struct {
	DType   *string  `json:"dtype"`
	Shape   *[]int64 `json:"shape"`
	Offsets *[]int64 `json:"data_offsets"`
}

// ReadHeader reads and validates the header of the safetensors file r, of
// size bytes; path names it in errors.
func ReadHeader(path string, r io.ReaderAt, size int64) (*Header, error) {
	if size < 8 {
		return nil, headerError(path, "", "file of %d bytes is too short for the 8-byte header length", size)
	}
	var lenBuf [8]byte
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, &Error{Path: path, Msg: "reading the header length: " + err.Error(), Err: err}
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderSize {
		return nil, headerError(path, "", "header length %d exceeds the limit of %d bytes", n, MaxHeaderSize)
	}
	if int64(n) > size-8 {
		return nil, headerError(path, "", "header length %d exceeds the %d bytes after the length field", n, size-8)
	}
	js := make([]byte, n)
	if _, err := r.ReadAt(js, 8); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
		return nil, &Error{Path: path, Msg: "reading the header: " + err.Error(), Err: err}
	}
	return parseHeader(path, js, 8+int64(n), size)
}

func parseHeader(path string, js []byte, dataStart, size int64) (*Header, error) {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, headerError(path, "", "header is not a JSON object")
	}
	h := &Header{DataStart: dataStart, byName: map[string]int{}}
	seenMeta := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, headerError(path, "", "header is not valid JSON: %v", err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, headerError(path, "", "header is not valid JSON: key %v", tok)
		}
		if name == "__metadata__" {
			if seenMeta {
				return nil, headerError(path, "", "header has __metadata__ twice")
			}
			seenMeta = true
			if err := dec.Decode(&h.Metadata); err != nil {
				return nil, headerError(path, "", "__metadata__ is not an object of strings: %v", err)
			}
			continue
		}
		if _, dup := h.byName[name]; dup {
			return nil, headerError(path, name, "listed twice in the header")
		}
		var e entry
		if err := dec.Decode(&e); err != nil {
			return nil, headerError(path, name, "entry is not {dtype, shape, data_offsets}: %v", err)
		}
		t, err := checkEntry(path, name, e, size-dataStart)
		if err != nil {
			return nil, err
		}
		t.Offset += dataStart
		h.byName[name] = len(h.Tensors)
		h.Tensors = append(h.Tensors, t)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, headerError(path, "", "header is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, headerError(path, "", "header has data after its JSON object")
	}
	if err := checkLayout(path, h, size); err != nil {
		return nil, err
	}
	for i, t := range h.Tensors {
		h.byName[t.Name] = i
	}
	return h, nil
}

// checkEntry validates one tensor entry; dataLen is the size of the data
// section. The returned Offset is relative to the data section.
func checkEntry(path, name string, e entry, dataLen int64) (TensorInfo, error) {
	switch {
	case e.DType == nil:
		return TensorInfo{}, headerError(path, name, "entry has no dtype")
	case e.Shape == nil:
		return TensorInfo{}, headerError(path, name, "entry has no shape")
	case e.Offsets == nil:
		return TensorInfo{}, headerError(path, name, "entry has no data_offsets")
	}
	dt := DType(*e.DType)
	es := int64(dt.Size())
	if es == 0 {
		return TensorInfo{}, headerError(path, name, "unknown dtype %q", *e.DType)
	}
	shape := make([]int, len(*e.Shape))
	need := es
	for i, d := range *e.Shape {
		if d < 0 {
			return TensorInfo{}, headerError(path, name, "shape %v has a negative dimension", *e.Shape)
		}
		if d > 0 && need > (1<<62)/d {
			return TensorInfo{}, headerError(path, name, "shape %v of %s is too large", *e.Shape, dt)
		}
		need *= d
		shape[i] = int(d)
	}
	off := *e.Offsets
	if len(off) != 2 {
		return TensorInfo{}, headerError(path, name, "data_offsets %v must be [begin, end]", off)
	}
	begin, end := off[0], off[1]
	if begin < 0 || end < begin {
		return TensorInfo{}, headerError(path, name, "data_offsets [%d, %d] are not 0 <= begin <= end", begin, end)
	}
	if end > dataLen {
		return TensorInfo{}, headerError(path, name, "data_offsets [%d, %d] run past the %d bytes of data", begin, end, dataLen)
	}
	if end-begin != need {
		return TensorInfo{}, headerError(path, name, "data_offsets [%d, %d] hold %d bytes, shape %v of %s needs %d",
			begin, end, end-begin, *e.Shape, dt, need)
	}
	return TensorInfo{Name: name, DType: dt, Shape: shape, Offset: begin, Size: need}, nil
}

// checkLayout sorts h.Tensors by offset and checks that they tile the data
// section exactly: no overlaps, no gaps, nothing after the last, as the
// reference implementation requires.
func checkLayout(path string, h *Header, size int64) error {
	slices.SortStableFunc(h.Tensors, func(a, b TensorInfo) int {
		if c := cmpInt(a.Offset, b.Offset); c != 0 {
			return c
		}
		return cmpInt(a.Size, b.Size)
	})
	at := h.DataStart
	prev := ""
	for _, t := range h.Tensors {
		switch {
		case t.Offset < at:
			return headerError(path, t.Name, "bytes [%d, %d) overlap tensor %q", t.Offset-h.DataStart, t.Offset+t.Size-h.DataStart, prev)
		case t.Offset > at:
			return headerError(path, t.Name, "bytes [%d, %d) before it belong to no tensor", at-h.DataStart, t.Offset-h.DataStart)
		}
		at += t.Size
		prev = t.Name
	}
	if at != size {
		return headerError(path, "", "%d bytes after the last tensor belong to no tensor", size-at)
	}
	return nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
