package safetensors

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluicehq/sluice/storage/miniotest"
)

func writeFile(t *testing.T, path string, tensors ...Tensor) {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, map[string]string{"format": "pt"}, tensors...); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func u8(name string, vals ...byte) Tensor {
	return Tensor{Name: name, DType: U8, Shape: []int{len(vals)}, Data: vals}
}

func TestOpenDirSingle(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, SingleFile), u8("b", 3, 4), u8("a", 1, 2))
	c, err := OpenDir(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.Names(); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("Names %v", got)
	}
	if d, err := c.Data("b"); err != nil || !bytes.Equal(d, []byte{3, 4}) {
		t.Errorf("Data(b) %v %v", d, err)
	}
	_, err = c.Data("c")
	if want := `safetensors: ` + dir + `: tensor "c": no such tensor in the checkpoint`; !errors.Is(err, ErrNotFound) || err.Error() != want {
		t.Errorf("Data(c): %v", err)
	}
}

func TestOpenDirSharded(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "s1.safetensors"), u8("a", 1), u8("b", 2, 2))
	writeFile(t, filepath.Join(dir, "s2.safetensors"), u8("c", 3, 3, 3), u8("unlisted", 9))
	index := `{"metadata":{"total_size":6},"weight_map":{"a":"s1.safetensors","b":"s1.safetensors","c":"s2.safetensors"}}`
	os.WriteFile(filepath.Join(dir, IndexFile), []byte(index), 0o644)
	c, err := OpenDir(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if len(c.Files()) != 2 || len(c.Names()) != 3 {
		t.Errorf("%d files, names %v", len(c.Files()), c.Names())
	}
	for name, want := range map[string][]byte{"a": {1}, "b": {2, 2}, "c": {3, 3, 3}} {
		info, f, ok := c.Tensor(name)
		if !ok || info.Name != name {
			t.Fatalf("Tensor(%s) missing", name)
		}
		if d, err := f.Data(name); err != nil || !bytes.Equal(d, want) {
			t.Errorf("%s: %v %v", name, d, err)
		}
	}
	if _, _, ok := c.Tensor("unlisted"); ok {
		t.Error("a tensor not in weight_map is served")
	}
}

func TestOpenDirErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		index string // "" writes no index
		want  string // after "safetensors: DIR"
		is    error
	}{
		{"nothing", "", ": holds neither model.safetensors nor model.safetensors.index.json", ErrNoCheckpoint},
		{"bad JSON", `{"weight_map":`, "/model.safetensors.index.json: not valid JSON: unexpected end of JSON input", ErrIndex},
		{"no map", `{"metadata":{}}`, "/model.safetensors.index.json: weight_map is missing or empty", ErrIndex},
		{"escaping shard", `{"weight_map":{"a":"../s1.safetensors"}}`, `/model.safetensors.index.json: tensor "a": shard "../s1.safetensors" is not a file name in the directory`, ErrIndex},
		{"URL shard", `{"weight_map":{"a":"s3://b/s1.safetensors"}}`, `/model.safetensors.index.json: tensor "a": shard "s3://b/s1.safetensors" is not a file name in the directory`, ErrIndex},
		{"not in shard", `{"weight_map":{"a":"s1.safetensors","z":"s1.safetensors"}}`, `/model.safetensors.index.json: tensor "z": listed in shard s1.safetensors, which does not hold it`, ErrIndex},
		{"missing shard", `{"weight_map":{"a":"s9.safetensors"}}`, `/s9.safetensors: open DIR/s9.safetensors: no such file or directory`, os.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "s1.safetensors"), u8("a", 1))
			if tc.index != "" {
				os.WriteFile(filepath.Join(dir, IndexFile), []byte(tc.index), 0o644)
			}
			_, err := OpenDir(t.Context(), dir)
			if !errors.Is(err, tc.is) {
				t.Fatalf("err %v is not %v", err, tc.is)
			}
			want := "safetensors: " + dir + strings.ReplaceAll(tc.want, "DIR", dir)
			if err.Error() != want {
				t.Errorf("got  %s\nwant %s", err, want)
			}
		})
	}
}

// TestFixtures opens checkpoints written by transformers' save_pretrained:
// one file, and two shards with an index.
func TestFixtures(t *testing.T) {
	for _, tc := range []struct {
		dir          string
		files, names int
	}{
		{"../model/testdata/fixtures/llama3", 1, 20},
		{"../model/testdata/fixtures/llama2", 2, 30},
	} {
		c, err := OpenDir(t.Context(), tc.dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Files()) != tc.files || len(c.Names()) != tc.names {
			t.Errorf("%s: %d files, %d tensors; want %d, %d", tc.dir, len(c.Files()), len(c.Names()), tc.files, tc.names)
		}
		info, _, ok := c.Tensor("model.embed_tokens.weight")
		if !ok || info.DType != F32 || len(info.Shape) != 2 {
			t.Errorf("%s: embed_tokens %+v", tc.dir, info)
		}
		c.Close()
	}
}

// TestS3 reads the sharded fixture from a real S3 server and compares every
// tensor with the memory-mapped local copy.
func TestS3(t *testing.T) {
	srv := miniotest.Start(t)
	srv.SetEnv(t)
	srv.MakeBucket("models")
	const local = "../model/testdata/fixtures/llama2"
	ents, err := os.ReadDir(local)
	if err != nil {
		t.Fatal(err)
	}
	cl := srv.Client()
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(local, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		putObject(t, cl, "models", "llama2/"+e.Name(), b)
	}
	remote, err := OpenDir(t.Context(), "s3://models/llama2")
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	loc, err := OpenDir(t.Context(), local)
	if err != nil {
		t.Fatal(err)
	}
	defer loc.Close()
	if len(remote.Names()) != len(loc.Names()) {
		t.Fatalf("%d tensors over S3, %d locally", len(remote.Names()), len(loc.Names()))
	}
	for _, name := range loc.Names() {
		a, err := remote.Data(name)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := loc.Data(name)
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs over S3", name)
		}
	}
	if _, err := OpenDir(t.Context(), "s3://models/none"); !errors.Is(err, ErrNoCheckpoint) {
		t.Errorf("missing S3 dir: %v", err)
	}
}
func putObject(t *testing.T, cl *s3.Client, bucket, key string, b []byte) {
	t.Helper()
	if _, err := cl.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(b)}); err != nil {
		t.Fatal(err)
	}
}
