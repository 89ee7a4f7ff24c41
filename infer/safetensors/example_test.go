package safetensors_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/sluicehq/sluice/infer/safetensors"
)

// Write a file of two tensors, then open it (memory-mapped) and read one.
func Example() {
	var buf bytes.Buffer
	err := safetensors.Write(&buf, map[string]string{"format": "pt"},
		safetensors.Tensor{Name: "w", DType: safetensors.U8, Shape: []int{2, 2}, Data: []byte{1, 2, 3, 4}},
		safetensors.Tensor{Name: "b", DType: safetensors.U8, Shape: []int{2}, Data: []byte{5, 6}})
	if err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "safetensors")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "model.safetensors")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}

	f, err := safetensors.Open(context.Background(), path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	info, _ := f.Tensor("w")
	data, err := f.Data("w")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(info.DType, info.Shape, data, f.Header().Metadata)
	// Output: U8 [2 2] [1 2 3 4] map[format:pt]
}
