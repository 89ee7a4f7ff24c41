package model

import (
	"fmt"
	"math"

	"github.com/sluicehq/sluice/gpu"
)

// DefaultBlockSize is the block size NewCache uses when given 0.
const DefaultBlockSize = 16

// Cache is the paged key/value cache of every layer: per layer, a key and a
// value tensor [blocks, blockSize, KVHeads, HeadDim] in the model's dtype.
// Which blocks a sequence owns is the caller's business (the engine's block
// manager); Forward writes and reads the blocks its Batch names.
type Cache struct {
	m             *Model
	id            uint64 // tells the caches a model's graphs were recorded with apart
	k, v          []*gpu.Tensor
	blocks, size  int
	bytesPerBlock int64
	freed         bool
}

// NewCache allocates a cache of numBlocks blocks of blockSize tokens
// (DefaultBlockSize when 0) on the model's device.
func (m *Model) NewCache(numBlocks, blockSize int) (*Cache, error) {
	if m.closed {
		return nil, fmt.Errorf("model: NewCache: %w", ErrClosed)
	}
	if blockSize == 0 {
		blockSize = DefaultBlockSize
	}
	if numBlocks <= 0 || blockSize <= 0 {
		return nil, fmt.Errorf("model: NewCache: numBlocks (%d) and blockSize (%d) must be positive: %w", numBlocks, blockSize, ErrConfig)
	}
	if int64(numBlocks)*int64(blockSize) > math.MaxInt32 {
		return nil, fmt.Errorf("model: NewCache: %d blocks of %d tokens exceed the 2³¹ slots an I32 slot number holds: %w", numBlocks, blockSize, ErrConfig)
	}
	cfg := m.cfg
	m.step.caches++
	c := &Cache{m: m, id: m.step.caches, blocks: numBlocks, size: blockSize,
		bytesPerBlock: int64(2*cfg.Layers*blockSize*cfg.KVHeads*cfg.HeadDim) * int64(m.kvDType.Size())}
	for range cfg.Layers {
		for _, dst := range []*[]*gpu.Tensor{&c.k, &c.v} {
			t, err := m.dev.Alloc(m.kvDType, numBlocks, blockSize, cfg.KVHeads, cfg.HeadDim)
			if err != nil {
				c.Free()
				return nil, fmt.Errorf("model: NewCache of %d blocks of %d tokens: %w", numBlocks, blockSize, err)
			}
			*dst = append(*dst, t)
		}
	}
	return c, nil
}

// BytesPerBlock is the device memory one block takes over all layers, keys
// and values.
func (c *Cache) BytesPerBlock() int64 { return c.bytesPerBlock }

// NumBlocks is the number of blocks.
func (c *Cache) NumBlocks() int { return c.blocks }

// BlockSize is the number of tokens per block.
func (c *Cache) BlockSize() int { return c.size }

// Free releases the cache's device memory; a second Free does nothing.
func (c *Cache) Free() error {
	if c.freed {
		return nil
	}
	c.freed = true
	for _, t := range c.k {
		t.Free()
	}
	for _, t := range c.v {
		t.Free()
	}
	c.k, c.v = nil, nil
	return nil
}
