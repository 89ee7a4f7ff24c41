package engine

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/cpu"
	"github.com/sluicehq/sluice/infer/model"
)

func TestConfigValidateGPUMemoryUtilization(t *testing.T) {
	cases := []struct {
		util float64
		want string
	}{
		{1, ""},
		{0.5, ""},
		{1e-9, ""},
		{0, "GPUMemoryUtilization must be in (0, 1], got 0"},
		{-0.1, "GPUMemoryUtilization must be in (0, 1], got -0.1"},
		{1.01, "GPUMemoryUtilization must be in (0, 1], got 1.01"},
		{math.NaN(), "GPUMemoryUtilization must be in (0, 1], got NaN"},
	}
	for _, c := range cases {
		cfg := DefaultConfig()
		cfg.GPUMemoryUtilization = c.util
		err := cfg.Validate()
		if c.want == "" && err != nil || c.want != "" && (err == nil || err.Error() != "infer: invalid config: "+c.want) {
			t.Errorf("%g: got %v, want %q", c.util, err, c.want)
		}
		if err != nil && !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%g: %v is not ErrInvalidConfig", c.util, err)
		}
	}
	if got := DefaultConfig().GPUMemoryUtilization; got != 0.9 {
		t.Errorf("default GPUMemoryUtilization %g, want 0.9", got)
	}
}

func TestKVCacheBlocks(t *testing.T) {
	const gib = 1 << 30
	cases := []struct {
		name                        string
		free, total                 int64
		util                        float64
		transient, perBlock, useful int64
		want                        int
		wantErr                     string
	}{
		// 80 GiB card, 10 GiB in use: 72 − 10 − 2 = 60 GiB of 2 MiB blocks.
		{"budget", 70 * gib, 80 * gib, 0.9, 2 * gib, 2 << 20, 1 << 40, 30720, ""},
		{"capped by useful", 70 * gib, 80 * gib, 0.9, 2 * gib, 2 << 20, 1000, 1000, ""},
		{"partial block dropped", 1000, 1000, 1, 0, 300, 100, 3, ""},
		{"exactly one block", 900, 1000, 1, 850, 50, 100, 1, ""},
		{"no transient", 600, 1000, 0.5, 0, 100, 100, 1, ""},
		{"less than a block", 900, 1000, 1, 851, 50, 100, 0,
			"infer: invalid config: GPUMemoryUtilization (1) leaves 49 bytes for the KV cache, less than one block (50 bytes): " +
				"1 × 1000 total − 100 in use − 851 of activations; raise gpu_memory_utilization or set num_blocks"},
		{"negative budget", 300, 1000, 0.5, 10, 64, 100, 0,
			"infer: invalid config: GPUMemoryUtilization (0.5) leaves -210 bytes for the KV cache, less than one block (64 bytes): " +
				"0.5 × 1000 total − 700 in use − 10 of activations; raise gpu_memory_utilization or set num_blocks"},
	}
	for _, c := range cases {
		got, err := kvCacheBlocks(c.free, c.total, c.util, c.transient, c.perBlock, c.useful)
		switch {
		case c.wantErr != "":
			if err == nil || err.Error() != c.wantErr || !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("%s: got %d, %v; want error %q", c.name, got, err, c.wantErr)
			}
		case err != nil || got != c.want:
			t.Errorf("%s: got %d, %v; want %d", c.name, got, err, c.want)
		}
	}
}

// TestProfileBatch checks the profiling step's shape: MaxNumSeqs
// sequences, MaxNumBatchedTokens tokens, every one wanting logits, the
// first at the end of a MaxModelLen context, the prompt in as few
// sequences as MaxModelLen allows, and block tables that cover each
// context within the cache's blocks.
func TestProfileBatch(t *testing.T) {
	cases := []struct {
		seqs, tokens, maxLen int
		wantLens             []int
	}{
		{4, 64, 512, []int{1, 61, 1, 1}},
		{4, 64, 20, []int{1, 20, 20, 20}}, // 3 short of 64: the scheduler cannot form more
		{1, 64, 512, []int{64}},           // one sequence prefills at the end of its context
		{1, 64, 40, []int{40}},            //
		{3, 3, 100, []int{1, 1, 1}},       // decode only
		{3, 30, 10, []int{1, 10, 10}},     //
		{2, 2048, 4096, []int{1, 2047}},   //
		{5, 8, 3, []int{1, 3, 2, 1, 1}},   //
		{8, 8, 1, []int{1, 1, 1, 1, 1, 1, 1, 1}},
	}
	for _, c := range cases {
		cfg := DefaultConfig()
		cfg.BlockSize, cfg.MaxNumSeqs, cfg.MaxNumBatchedTokens, cfg.MaxModelLen = 4, c.seqs, c.tokens, c.maxLen
		b := profileBatch(cfg, 3)
		var lens []int
		for i, s := range b.Seqs {
			lens = append(lens, len(s.Tokens))
			ctx := s.StartPos + len(s.Tokens)
			if i == 0 && ctx != c.maxLen || i > 0 && s.StartPos != 0 {
				t.Errorf("%+v: sequence %d has StartPos %d, %d tokens", c, i, s.StartPos, len(s.Tokens))
			}
			if !s.WantLogits || len(s.BlockTable) != (ctx+3)/4 {
				t.Errorf("%+v: sequence %d: WantLogits %v, %d blocks for %d positions", c, i, s.WantLogits, len(s.BlockTable), ctx)
			}
			for _, blk := range s.BlockTable {
				if blk < 0 || blk >= 3 {
					t.Errorf("%+v: sequence %d names block %d of 3", c, i, blk)
				}
			}
		}
		if !equalInts(lens, c.wantLens) {
			t.Errorf("%+v: token counts %v, want %v", c, lens, c.wantLens)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// memDevice is a cpu device that reports memory as a GPU would: a total,
// reserved bytes standing for the driver's context and other processes,
// and its tensors. Its peak is sampled at each Alloc.
type memDevice struct {
	*cpu.Device
	total, reserved int64
	peak            int64
	memInfoCalls    int
}

var _ gpu.MemInfo = (*memDevice)(nil)

func (d *memDevice) Alloc(dt gpu.DType, shape ...int) (*gpu.Tensor, error) {
	t, err := d.Device.Alloc(dt, shape...)
	d.peak = max(d.peak, d.LiveBytes())
	return t, err
}

func (d *memDevice) MemInfo() (free, total int64, err error) {
	d.memInfoCalls++
	if err := d.Sync(); err != nil {
		return 0, 0, err
	}
	return d.total - d.reserved - d.LiveBytes(), d.total, nil
}

func (d *memDevice) PeakBytes() int64 { return d.peak }
func (d *memDevice) ResetPeak()       { d.peak = d.LiveBytes() }

// loadMemFixture loads a fixture model on a memDevice.
func loadMemFixture(t *testing.T, name string, total, reserved int64) (*model.Model, *memDevice) {
	t.Helper()
	c, err := cpu.New(cpu.Config{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	dev := &memDevice{Device: c, total: total, reserved: reserved}
	m, err := model.Load(fixtureDir(name), dev, model.Options{})
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
		if n := dev.LiveBytes(); n != 0 {
			t.Errorf("%d device bytes live after Close", n)
		}
		c.Close()
	})
	return m, dev
}

func logTo(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// TestEngineSizesFromMemInfo runs New's profiling path on a cpu device
// that reports memory: the cache gets what GPUMemoryUtilization leaves
// after the weights and the largest step's buffers, the start-up line
// reports it, and a full workload afterwards grows no buffer (the
// profiled step was the largest).
func TestEngineSizesFromMemInfo(t *testing.T) {
	const total, reserved = 6 << 20, 1 << 20
	m, dev := loadMemFixture(t, "llama3", total, reserved)
	weights := dev.LiveBytes()
	var buf bytes.Buffer
	cfg := DefaultConfig()
	cfg.BlockSize, cfg.MaxNumSeqs, cfg.MaxNumBatchedTokens = 4, 8, 64
	cfg.GPUMemoryUtilization = 0.5
	cfg.Logger = logTo(&buf)
	e, err := New(FromModel(m), nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	}()
	if dev.memInfoCalls != 1 {
		t.Errorf("MemInfo called %d times, want 1", dev.memInfoCalls)
	}
	n := e.Config().NumBlocks
	c, err := m.NewCache(1, 4)
	if err != nil {
		t.Fatal(err)
	}
	per := c.BytesPerBlock()
	c.Free()
	// What the model keeps (weights and step buffers) is in use; the cpu
	// backend frees nothing it allocated during the step (no transient).
	kept := dev.LiveBytes() - int64(n)*per
	budget := int64(total*0.5) - reserved - kept
	if int64(n)*per > budget || int64(n+1)*per <= budget {
		t.Errorf("%d blocks of %d bytes for a budget of %d bytes", n, per, budget)
	}
	if n < 100 {
		t.Errorf("only %d blocks", n)
	}
	line := buf.String()
	t.Log(line)
	for _, want := range []string{"level=INFO", `msg="infer: engine started"`, "device=cpu", "weights_bytes=" + itoa(weights),
		"activation_bytes=" + itoa(kept-weights), "kv_block_bytes=" + itoa(per), "kv_blocks=" + itoa(int64(n)),
		"kv_bytes=" + itoa(int64(n)*per), "max_concurrent_tokens=" + itoa(int64(n*4)), `kv_sizing="gpu_memory_utilization 0.5"`,
		"device_total_bytes=" + itoa(total)} {
		if !strings.Contains(line, want) {
			t.Errorf("log line lacks %s:\n%s", want, line)
		}
	}
	if strings.Count(line, "\n") != 1 {
		t.Errorf("want one log line, got:\n%s", line)
	}

	// A workload of full steps allocates nothing more.
	live := dev.LiveBytes()
	var reqs []Request
	for i := range 12 {
		ids := make([]int32, 10+i*7)
		for j := range ids {
			ids[j] = int32((i*31 + j) % 500)
		}
		reqs = append(reqs, Request{PromptIDs: ids, Params: SamplingParams{MaxTokens: 8, IgnoreEOS: true}})
	}
	if _, err := e.Generate(context.Background(), reqs); err != nil {
		t.Fatal(err)
	}
	if got := dev.LiveBytes(); got != live {
		t.Errorf("LiveBytes %d after the workload, %d before: a step outgrew the profiled one", got, live)
	}
}

func TestEngineMemInfoTooSmall(t *testing.T) {
	m, dev := loadMemFixture(t, "llama3", 64<<20, 0)
	cfg := DefaultConfig()
	cfg.BlockSize, cfg.MaxNumSeqs, cfg.MaxNumBatchedTokens = 4, 8, 64
	dev.reserved = int64(float64(dev.total)*cfg.GPUMemoryUtilization) - dev.LiveBytes() // the weights fill the share
	_, err := New(FromModel(m), nil, cfg)
	if err == nil || !errors.Is(err, ErrInvalidConfig) ||
		!strings.Contains(err.Error(), "GPUMemoryUtilization (0.9) leaves -") || !strings.Contains(err.Error(), "raise gpu_memory_utilization") {
		t.Fatalf("New: %v", err)
	}
	// An explicit NumBlocks skips the sizing.
	cfg.NumBlocks = 16
	e, err := New(FromModel(m), nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Error(err)
	}
}

// TestEngineSizesFromCacheBytesOnCPU: a device without MemInfo keeps
// sizing from CacheBytes, and says so.
func TestEngineSizesFromCacheBytesOnCPU(t *testing.T) {
	m := loadFixture(t, "llama3")
	var buf bytes.Buffer
	cfg := DefaultConfig()
	cfg.BlockSize, cfg.MaxNumSeqs, cfg.MaxNumBatchedTokens = 4, 8, 64
	cfg.CacheBytes = 1 << 20
	cfg.Logger = logTo(&buf)
	e, err := New(FromModel(m), nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	c, err := m.NewCache(1, 4)
	if err != nil {
		t.Fatal(err)
	}
	per := c.BytesPerBlock()
	c.Free()
	if got, want := e.Config().NumBlocks, int(min(int64(1<<20)/per, 8*512/4)); got != want {
		t.Errorf("NumBlocks %d, want %d", got, want)
	}
	line := buf.String()
	for _, want := range []string{"device=cpu", `activation_bytes="not profiled"`, "kv_sizing=cache_bytes", "kv_blocks=" + itoa(int64(e.Config().NumBlocks))} {
		if !strings.Contains(line, want) {
			t.Errorf("log line lacks %s:\n%s", want, line)
		}
	}
	// A runner with no device is logged as such.
	buf.Reset()
	cfg = DefaultConfig()
	cfg.Logger = logTo(&buf)
	e2, err := New(NewFakeRunner(100), nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if line := buf.String(); !strings.Contains(line, "weights_bytes=unknown") || !strings.Contains(line, `activation_bytes="not profiled"`) {
		t.Errorf("fake runner's log line:\n%s", line)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
