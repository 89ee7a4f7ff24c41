package safetensors

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Tensor is a tensor to Write: Data holds its elements, little-endian.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// Write writes tensors, in the order given, and metadata (nil for none) to
// w as one safetensors file. The header is padded with spaces to a multiple
// of 8 bytes, so that the data is aligned as the reference writer aligns it.
func Write(w io.Writer, metadata map[string]string, tensors ...Tensor) error {
	hdr := make(map[string]any, len(tensors)+1)
	if metadata != nil {
		hdr["__metadata__"] = metadata
	}
	var at int64
	for _, t := range tensors {
		if t.Name == "__metadata__" {
			return fmt.Errorf("safetensors: Write: a tensor cannot be called __metadata__: %w", ErrHeader)
		}
		if _, dup := hdr[t.Name]; dup {
			return fmt.Errorf("safetensors: Write: tensor %q given twice: %w", t.Name, ErrHeader)
		}
		need := int64(t.DType.Size())
		if need == 0 {
			return fmt.Errorf("safetensors: Write: tensor %q: unknown dtype %q: %w", t.Name, t.DType, ErrHeader)
		}
		for _, d := range t.Shape {
			if d < 0 {
				return fmt.Errorf("safetensors: Write: tensor %q: shape %v has a negative dimension: %w", t.Name, t.Shape, ErrHeader)
			}
			need *= int64(d)
		}
		if need != int64(len(t.Data)) {
			return fmt.Errorf("safetensors: Write: tensor %q: shape %v of %s needs %d bytes, Data has %d: %w",
				t.Name, t.Shape, t.DType, need, len(t.Data), ErrHeader)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		hdr[t.Name] = map[string]any{"dtype": t.DType, "shape": shape, "data_offsets": []int64{at, at + need}}
		at += need
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		return fmt.Errorf("safetensors: Write: %w", err)
	}
	if pad := (8 - len(js)%8) % 8; pad > 0 {
		js = append(js, strings.Repeat(" ", pad)...)
	}
	bw := bufio.NewWriter(w)
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(js)))
	bw.Write(n[:])
	bw.Write(js)
	for _, t := range tensors {
		bw.Write(t.Data)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("safetensors: Write: %w", err)
	}
	return nil
}
