package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"reflect"
	"testing"
)

// FuzzReadHeader feeds arbitrary files to ReadHeader: it must never panic,
// every error must be an *Error, and an accepted header must describe
// tensors that tile the data exactly and survive a Write round trip.
func FuzzReadHeader(f *testing.F) {
	var buf bytes.Buffer
	Write(&buf, map[string]string{"k": "v"},
		Tensor{Name: "a", DType: F32, Shape: []int{2}, Data: make([]byte, 8)},
		Tensor{Name: "b", DType: BF16, Shape: []int{1, 3}, Data: make([]byte, 6)},
		Tensor{Name: "z", DType: I64, Shape: []int{0}})
	f.Add(buf.Bytes())
	f.Add(raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)))
	f.Add(raw(`{"__metadata__":{"a":"b"},"x":{"dtype":"U8","shape":[],"data_offsets":[0,1]}}`, []byte{7}))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0})
	if b, err := os.ReadFile("../model/testdata/fixtures/mistral/model.safetensors"); err == nil {
		n := binary.LittleEndian.Uint64(b)
		f.Add(b[:8+n]) // the header alone: its tensors run past the end
	}
	f.Fuzz(func(t *testing.T, file []byte) {
		h, err := ReadHeader("F", bytes.NewReader(file), int64(len(file)))
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, ErrHeader) {
				t.Fatalf("error %v is not a header *Error", err)
			}
			return
		}
		at := h.DataStart
		var tensors []Tensor
		for _, ti := range h.Tensors {
			if ti.Offset != at || ti.Size != int64(ti.Len()*ti.DType.Size()) {
				t.Fatalf("tensor %+v does not follow offset %d", ti, at)
			}
			at += ti.Size
			tensors = append(tensors, Tensor{Name: ti.Name, DType: ti.DType, Shape: ti.Shape, Data: file[ti.Offset : ti.Offset+ti.Size]})
		}
		if at != int64(len(file)) {
			t.Fatalf("tensors end at %d of %d", at, len(file))
		}
		var out bytes.Buffer
		if err := Write(&out, h.Metadata, tensors...); err != nil {
			t.Fatalf("Write of an accepted header: %v", err)
		}
		h2, err := ReadHeader("F", bytes.NewReader(out.Bytes()), int64(out.Len()))
		if err != nil {
			t.Fatalf("reading back: %v", err)
		}
		if len(h2.Tensors) != len(h.Tensors) || !reflect.DeepEqual(h2.Metadata, h.Metadata) && len(h.Metadata)+len(h2.Metadata) > 0 {
			t.Fatalf("round trip changed the header: %+v → %+v", h, h2)
		}
		for i, ti := range h.Tensors {
			t2 := h2.Tensors[i]
			if t2.Name != ti.Name || t2.DType != ti.DType || !reflect.DeepEqual(t2.Shape, ti.Shape) || t2.Size != ti.Size {
				t.Fatalf("round trip changed tensor %+v → %+v", ti, t2)
			}
		}
	})
}
