package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// raw builds a file from a literal JSON header and data bytes.
func raw(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func f32Bytes(v ...float32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, f := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	return b
}

func TestWriteOpenRoundTrip(t *testing.T) {
	tensors := []Tensor{
		{Name: "w", DType: F32, Shape: []int{2, 3}, Data: f32Bytes(1, 2, 3, 4, 5, 6)},
		{Name: "b", DType: BF16, Shape: []int{4}, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{Name: "scalar", DType: I64, Shape: nil, Data: []byte{9, 0, 0, 0, 0, 0, 0, 0}},
		{Name: "empty", DType: F16, Shape: []int{0, 5}, Data: nil},
	}
	var buf bytes.Buffer
	meta := map[string]string{"format": "pt"}
	if err := Write(&buf, meta, tensors...); err != nil {
		t.Fatal(err)
	}
	if n := binary.LittleEndian.Uint64(buf.Bytes()); n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}
	p := writeTemp(t, "m.safetensors", buf.Bytes())
	for _, path := range []string{p, "file://" + p} {
		f, err := Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		if f.mapped == nil {
			t.Errorf("%s: not memory-mapped", path)
		}
		if !reflect.DeepEqual(f.Header().Metadata, meta) {
			t.Errorf("metadata %v, want %v", f.Header().Metadata, meta)
		}
		if got := len(f.Header().Tensors); got != len(tensors) {
			t.Fatalf("%d tensors, want %d", got, len(tensors))
		}
		for _, want := range tensors {
			info, ok := f.Tensor(want.Name)
			if !ok {
				t.Fatalf("tensor %q missing", want.Name)
			}
			shape := want.Shape
			if shape == nil {
				shape = []int{}
			}
			if info.DType != want.DType || !reflect.DeepEqual(info.Shape, shape) || info.Size != int64(len(want.Data)) {
				t.Errorf("tensor %q: %+v", want.Name, info)
			}
			got, err := f.Data(want.Name)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want.Data) {
				t.Errorf("tensor %q: data %v, want %v", want.Name, got, want.Data)
			}
		}
		if _, err := f.Data("nope"); !errors.Is(err, ErrNotFound) ||
			err.Error() != `safetensors: `+path+`: tensor "nope": no such tensor in the file` {
			t.Errorf("Data(nope): %v", err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWriteErrors(t *testing.T) {
	for _, tc := range []struct {
		t    Tensor
		want string
	}{
		{Tensor{Name: "x", DType: "F4", Shape: []int{1}}, `safetensors: Write: tensor "x": unknown dtype "F4": safetensors: invalid header`},
		{Tensor{Name: "x", DType: F32, Shape: []int{2}, Data: make([]byte, 4)}, `safetensors: Write: tensor "x": shape [2] of F32 needs 8 bytes, Data has 4: safetensors: invalid header`},
		{Tensor{Name: "__metadata__", DType: F32}, `safetensors: Write: a tensor cannot be called __metadata__: safetensors: invalid header`},
	} {
		err := Write(&bytes.Buffer{}, nil, tc.t)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Write(%+v): %v\nwant %s", tc.t, err, tc.want)
		}
	}
}

// TestHeaderErrors checks the exact message of every validation.
func TestHeaderErrors(t *testing.T) {
	ok := `"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}`
	eight := make([]byte, 8)
	for _, tc := range []struct {
		name string
		file []byte
		want string // after "safetensors: F: "
	}{
		{"short", []byte{1, 2, 3}, "file of 3 bytes is too short for the 8-byte header length"},
		{"huge length", binary.LittleEndian.AppendUint64(nil, 1<<40), "header length 1099511627776 exceeds the limit of 104857600 bytes"},
		{"length past end", append(binary.LittleEndian.AppendUint64(nil, 20), "{}"...), "header length 20 exceeds the 2 bytes after the length field"},
		{"not an object", raw(`[1,2]`, nil), "header is not a JSON object"},
		{"empty", raw(``, nil), "header is not a JSON object"},
		{"bad JSON", raw(`{"a":{"dtype":"F32",}}`, nil), `tensor "a": entry is not {dtype, shape, data_offsets}: invalid character '}' looking for beginning of object key string`},
		{"truncated", raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}`, eight), "header is not valid JSON: EOF"},
		{"trailing", raw(`{`+ok+`} x`, eight), "header has data after its JSON object"},
		{"duplicate", raw(`{`+ok+`,`+ok+`}`, eight), `tensor "a": listed twice in the header`},
		{"two metadata", raw(`{"__metadata__":{},"__metadata__":{}}`, nil), "header has __metadata__ twice"},
		{"metadata not strings", raw(`{"__metadata__":{"n":1}}`, nil), "__metadata__ is not an object of strings: json: cannot unmarshal number into Go value of type string"},
		{"no dtype", raw(`{"a":{"shape":[2],"data_offsets":[0,8]}}`, eight), `tensor "a": entry has no dtype`},
		{"no shape", raw(`{"a":{"dtype":"F32","data_offsets":[0,8]}}`, eight), `tensor "a": entry has no shape`},
		{"no offsets", raw(`{"a":{"dtype":"F32","shape":[2]}}`, eight), `tensor "a": entry has no data_offsets`},
		{"unknown dtype", raw(`{"a":{"dtype":"F12","shape":[2],"data_offsets":[0,8]}}`, eight), `tensor "a": unknown dtype "F12"`},
		{"negative dim", raw(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, eight), `tensor "a": shape [-2] has a negative dimension`},
		{"huge shape", raw(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, eight), `tensor "a": shape [4294967296 4294967296] of F32 is too large`},
		{"one offset", raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[8]}}`, eight), `tensor "a": data_offsets [8] must be [begin, end]`},
		{"reversed", raw(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}`, eight), `tensor "a": data_offsets [8, 0] are not 0 <= begin <= end`},
		{"past end", raw(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, eight), `tensor "a": data_offsets [0, 16] run past the 8 bytes of data`},
		{"size mismatch", raw(`{"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,8]}}`, eight), `tensor "a": data_offsets [0, 8] hold 8 bytes, shape [2 3] of BF16 needs 12`},
		{"overlap", raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight),
			`tensor "b": bytes [4, 8) overlap tensor "a"`},
		{"gap", raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), `tensor "a": bytes [0, 4) before it belong to no tensor`},
		{"trailing data", raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, eight), "4 bytes after the last tensor belong to no tensor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadHeader("F", bytes.NewReader(tc.file), int64(len(tc.file)))
			if !errors.Is(err, ErrHeader) {
				t.Fatalf("err %v does not match ErrHeader", err)
			}
			if got, want := err.Error(), "safetensors: F: "+tc.want; got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
			// Open reports the same through the memory map.
			p := writeTemp(t, "bad.safetensors", tc.file)
			_, err = Open(t.Context(), p)
			if got, want := err.Error(), "safetensors: "+p+": "+tc.want; got != want {
				t.Errorf("Open: got  %s\nwant %s", got, want)
			}
		})
	}
}

func TestHeaderAccepts(t *testing.T) {
	for _, tc := range []struct {
		name string
		file []byte
		n    int
	}{
		{"empty object", raw(`{}`, nil), 0},
		{"padded", raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}    `, make([]byte, 8)), 1},
		{"null metadata", raw(`{"__metadata__":null}`, nil), 0},
		{"extra fields", raw(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2],"x":1}}`, []byte{1, 2}), 1},
		{"zero-size among others", raw(`{"z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)), 3},
	} {
		h, err := ReadHeader("F", bytes.NewReader(tc.file), int64(len(tc.file)))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if len(h.Tensors) != tc.n {
			t.Errorf("%s: %d tensors, want %d", tc.name, len(h.Tensors), tc.n)
		}
	}
}
