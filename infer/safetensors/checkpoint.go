package safetensors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/sluicehq/sluice/storage"
)

// The file names of a Hugging Face checkpoint.
const (
	SingleFile = "model.safetensors"
	IndexFile  = "model.safetensors.index.json"
)

// Checkpoint is the tensors of a model directory, in one file or sharded
// over several. Its methods may be called from several goroutines at once;
// Close must come after every other call.
type Checkpoint struct {
	dir   string
	files []*File
	where map[string]*File
	names []string
}

// index is model.safetensors.index.json.
type index struct {
	WeightMap map[string]string `json:"weight_map"`
}

// OpenDir opens the checkpoint in dir (a local directory or an s3:// prefix):
// the shards that dir/model.safetensors.index.json lists, or else
// dir/model.safetensors.
func OpenDir(ctx context.Context, dir string) (*Checkpoint, error) {
	idxPath := storage.Join(dir, IndexFile)
	js, err := storage.ReadPath(ctx, idxPath)
	if errors.Is(err, storage.ErrNotExist) {
		single := storage.Join(dir, SingleFile)
		f, err := Open(ctx, single)
		if err != nil {
			if errors.Is(err, storage.ErrNotExist) || errors.Is(err, os.ErrNotExist) {
				return nil, &Error{Path: dir, Msg: fmt.Sprintf("holds neither %s nor %s", SingleFile, IndexFile), Err: ErrNoCheckpoint}
			}
			return nil, err
		}
		c := &Checkpoint{dir: dir, files: []*File{f}, where: map[string]*File{}}
		for _, t := range f.hdr.Tensors {
			c.where[t.Name] = f
			c.names = append(c.names, t.Name)
		}
		slices.Sort(c.names)
		return c, nil
	}
	if err != nil {
		return nil, err
	}
	var idx index
	if err := json.Unmarshal(js, &idx); err != nil {
		return nil, &Error{Path: idxPath, Msg: "not valid JSON: " + err.Error(), Err: ErrIndex}
	}
	if len(idx.WeightMap) == 0 {
		return nil, &Error{Path: idxPath, Msg: "weight_map is missing or empty", Err: ErrIndex}
	}
	c := &Checkpoint{dir: dir, where: map[string]*File{}}
	shards := map[string]*File{}
	for name := range idx.WeightMap {
		c.names = append(c.names, name)
	}
	slices.Sort(c.names)
	for _, name := range c.names {
		shard := idx.WeightMap[name]
		f, ok := shards[shard]
		if !ok {
			if !isBaseName(shard) {
				c.Close()
				return nil, &Error{Path: idxPath, Tensor: name, Msg: fmt.Sprintf("shard %q is not a file name in the directory", shard), Err: ErrIndex}
			}
			var err error
			if f, err = Open(ctx, storage.Join(dir, shard)); err != nil {
				c.Close()
				return nil, err
			}
			shards[shard] = f
			c.files = append(c.files, f)
		}
		if _, ok := f.Tensor(name); !ok {
			c.Close()
			return nil, &Error{Path: idxPath, Tensor: name, Msg: fmt.Sprintf("listed in shard %s, which does not hold it", shard), Err: ErrIndex}
		}
		c.where[name] = f
	}
	return c, nil
}

func isBaseName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, `/\`) && !storage.IsURL(s)
}

// Dir is the directory the checkpoint was opened from.
func (c *Checkpoint) Dir() string { return c.dir }

// Files are the files of the checkpoint, in the order first needed.
func (c *Checkpoint) Files() []*File { return c.files }

// Names are the tensors of the checkpoint, sorted.
func (c *Checkpoint) Names() []string { return c.names }

// Tensor returns the tensor called name and the file holding it.
func (c *Checkpoint) Tensor(name string) (TensorInfo, *File, bool) {
	f, ok := c.where[name]
	if !ok {
		return TensorInfo{}, nil, false
	}
	t, _ := f.Tensor(name)
	return t, f, true
}

// Data returns the bytes of the tensor called name, as File.Data does.
func (c *Checkpoint) Data(name string) ([]byte, error) {
	f, ok := c.where[name]
	if !ok {
		return nil, &Error{Path: c.dir, Tensor: name, Msg: "no such tensor in the checkpoint", Err: ErrNotFound}
	}
	return f.Data(name)
}

// Close closes every file; it returns the first error.
func (c *Checkpoint) Close() error {
	var first error
	for _, f := range c.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	c.files = nil
	return first
}
