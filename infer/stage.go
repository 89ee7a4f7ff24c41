package infer

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/infer/engine"
	"github.com/sluicehq/sluice/infer/model"
	"github.com/sluicehq/sluice/infer/tokenizer"
)

// OnError values of StageConfig.
const (
	// OnErrorFail fails the batch, and so the job, on the first row that
	// cannot be served.
	OnErrorFail = "fail"
	// OnErrorColumn writes the row's error to the error column and goes on.
	OnErrorColumn = "column"
)

// OnNull values of StageConfig.
const (
	// OnNullError makes a null prompt an error of its row, which OnError
	// then handles (by default it fails the job, naming the row).
	OnNullError = "error"
	// OnNullSkip keeps a row whose prompt is null without generating: its
	// completion, token counts, finish_reason (and error column) are null.
	OnNullSkip = "skip"
)

// StageConfig configures the dataset stage Generate.
type StageConfig struct {
	// Model is the model directory, local or s3://.
	Model string `json:"model" yaml:"model"`
	// Device is the gpu device: "auto" (default), "cpu", "cuda".
	Device string `json:"device,omitempty" yaml:"device,omitempty"`
	// DType is the weights' and KV cache's dtype: "auto" (default: f32 on
	// the cpu, bf16 on a GPU), "f32", "bf16", "f16".
	DType string `json:"dtype,omitempty" yaml:"dtype,omitempty"`
	// Tokenizer is the directory of tokenizer.json when it is not the
	// model's.
	Tokenizer string `json:"tokenizer,omitempty" yaml:"tokenizer,omitempty"`
	// EngineConfig tunes the engine; the zero value is DefaultConfig(),
	// and a partial one must start from it (decode YAML into a
	// DefaultConfig()). Stages with equal Model, Device, Tokenizer and
	// EngineConfig share one engine.
	EngineConfig engine.Config `json:"engine" yaml:"engine"`
	// Engine, when set, is used instead of loading Model: the caller owns
	// it.
	Engine *engine.Engine `json:"-" yaml:"-"`
	// LoRA is the directory of a PEFT LoRA adapter (local or s3://) to
	// complete the stage's rows with; "" is the base model. It is loaded
	// once into the (shared) engine, under its directory as its name, and
	// stages of other adapters over the same model batch together
	// (EngineConfig.MaxLoRAs at once).
	LoRA string `json:"lora,omitempty" yaml:"lora,omitempty"`
	// Registry holds the loaded engines; nil is DefaultRegistry.
	Registry *Registry `json:"-" yaml:"-"`

	// Prompt is the input column: strings are text prompts, lists of
	// integers token ids (default "prompt").
	Prompt string `json:"prompt,omitempty" yaml:"prompt,omitempty"`
	// Chat renders text prompts as a user message through the tokenizer's
	// chat template, after System as a system message when set.
	Chat   bool   `json:"chat,omitempty" yaml:"chat,omitempty"`
	System string `json:"system,omitempty" yaml:"system,omitempty"`
	// Params choose the sampling; N must be 1.
	Params engine.SamplingParams `json:"params" yaml:"params"`

	// Output names the completion column (default "completion"). The
	// stage also adds prompt_tokens, completion_tokens and finish_reason.
	Output string `json:"output,omitempty" yaml:"output,omitempty"`
	// TokenIDs, when set, names a further column with the completion's
	// token ids (list<int32>).
	TokenIDs string `json:"token_ids,omitempty" yaml:"token_ids,omitempty"`
	// OnError is "fail" (default) or "column".
	OnError string `json:"on_error,omitempty" yaml:"on_error,omitempty"`
	// OnNull is what a null prompt does: "error" (default; handled as
	// OnError says) or "skip" (the row is kept with null outputs).
	OnNull string `json:"on_null,omitempty" yaml:"on_null,omitempty"`
	// ErrorColumn names the error column of OnError "column" (default
	// "error"): null where the row was served.
	ErrorColumn string `json:"error_column,omitempty" yaml:"error_column,omitempty"`
}

func (c StageConfig) withDefaults() StageConfig {
	if c.Prompt == "" {
		c.Prompt = "prompt"
	}
	if c.Output == "" {
		c.Output = "completion"
	}
	if c.OnError == "" {
		c.OnError = OnErrorFail
	}
	if c.OnNull == "" {
		c.OnNull = OnNullError
	}
	if c.ErrorColumn == "" {
		c.ErrorColumn = "error"
	}
	if c.Device == "" {
		c.Device = "auto"
	}
	if c.EngineConfig == (engine.Config{}) {
		c.EngineConfig = engine.DefaultConfig()
	}
	return c
}

// Validate checks the stage's own fields; the engine checks the rest when
// it loads.
func (c StageConfig) Validate() error {
	c = c.withDefaults()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: stage: "+format, append([]any{engine.ErrInvalidConfig}, args...)...)
	}
	switch {
	case c.Engine == nil && c.Model == "":
		return bad("model is required")
	case c.OnError != OnErrorFail && c.OnError != OnErrorColumn:
		return bad("on_error must be %q or %q, got %q", OnErrorFail, OnErrorColumn, c.OnError)
	case c.OnNull != OnNullError && c.OnNull != OnNullSkip:
		return bad("on_null must be %q or %q, got %q", OnNullError, OnNullSkip, c.OnNull)
	case c.Params.N != 0 && c.Params.N != 1: // 0 means 1
		return bad("params.n must be 1 (one completion per row), got %d", c.Params.N)
	}
	if _, err := gpu.ParseDType(c.DType); err != nil {
		return bad("%v", err)
	}
	if err := c.Params.Validate(); err != nil {
		return fmt.Errorf("stage: params: %w", err)
	}
	if c.Engine == nil {
		ec := c.EngineConfig
		if sp := &ec.Speculative; sp.Method == "draft_model" && sp.Draft == nil && sp.Model != "" {
			sp.Method = "ngram" // the Registry loads the draft; check the other fields
		}
		if err := ec.Validate(); err != nil {
			return fmt.Errorf("stage: engine: %w", err)
		}
	}
	names := map[string]bool{"prompt_tokens": true, "completion_tokens": true, "finish_reason": true}
	for _, nc := range []struct{ key, name string }{{"output", c.Output}, {"token_ids", c.TokenIDs}, {"error_column", c.ErrorColumn}} {
		if nc.name == "" || nc.key == "error_column" && c.OnError != OnErrorColumn {
			continue
		}
		if names[nc.name] {
			return bad("%s %q collides with another output column", nc.key, nc.name)
		}
		names[nc.name] = true
	}
	return nil
}

// Generate returns a dataset.MapBatches function that completes the
// prompts in the Prompt column. Every call, from every task and batch,
// feeds its rows into one engine per process (see Registry), whose
// continuous batch mixes them; the model loads on the first non-empty
// batch. The output is the input columns, then the completion,
// prompt_tokens, completion_tokens and finish_reason columns, and with
// OnError "column" the error column. A row that cannot be served (empty
// or null prompt, too long) fails the batch with an error naming the
// row, or with OnError "column" gets its error there and nulls in the
// other added columns. With OnNull "skip", a null prompt is no error: its
// row is kept with every added column null.
func Generate(cfg StageConfig) dataset.BatchFunc {
	cfg = cfg.withDefaults()
	verr := cfg.Validate()
	return func(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		if verr != nil {
			return nil, verr
		}
		col, err := promptColumn(rec, cfg.Prompt)
		if err != nil {
			return nil, err
		}
		schema := stageSchema(rec.Schema(), cfg)
		if rec.NumRows() == 0 {
			return emptyRecord(mem, rec, schema), nil
		}
		e := cfg.Engine
		if e == nil {
			reg := cfg.Registry
			if reg == nil {
				reg = DefaultRegistry
			}
			if e, err = reg.Engine(cfg); err != nil {
				return nil, err
			}
		}
		if err := ensureLoRA(e, cfg.LoRA); err != nil {
			return nil, err
		}
		return runStage(ctx, mem, rec, col, schema, e, cfg)
	}
}

// loraMu orders the loads of ensureLoRA, so that concurrent batches of one
// stage load its adapter once.
var loraMu sync.Mutex

// ensureLoRA loads the adapter in dir into e unless it is there or dir is
// "".
func ensureLoRA(e *engine.Engine, dir string) error {
	if dir == "" {
		return nil
	}
	loraMu.Lock()
	defer loraMu.Unlock()
	for _, a := range e.LoRAs() {
		if a.Name == dir {
			return nil
		}
	}
	if err := e.LoadLoRA(dir, dir); err != nil {
		return fmt.Errorf("infer: stage: lora: %w", err)
	}
	return nil
}

func promptColumn(rec arrow.RecordBatch, name string) (arrow.Array, error) {
	idx := rec.Schema().FieldIndices(name)
	if len(idx) == 0 {
		return nil, fmt.Errorf("infer: stage: no prompt column %q (have %v)", name, fieldNames(rec.Schema()))
	}
	col := rec.Column(idx[0])
	switch t := col.DataType().(type) {
	case *arrow.StringType, *arrow.LargeStringType:
		return col, nil
	case arrow.ListLikeType:
		if arrow.IsInteger(t.Elem().ID()) {
			return col, nil
		}
	}
	return nil, fmt.Errorf("infer: stage: prompt column %q is %s; want a string or a list of integer token ids", name, col.DataType())
}

func fieldNames(s *arrow.Schema) []string {
	out := make([]string, s.NumFields())
	for i, f := range s.Fields() {
		out[i] = f.Name
	}
	return out
}

func stageSchema(in *arrow.Schema, cfg StageConfig) *arrow.Schema {
	fields := append([]arrow.Field(nil), in.Fields()...)
	fields = append(fields,
		arrow.Field{Name: cfg.Output, Type: arrow.BinaryTypes.String, Nullable: true},
		arrow.Field{Name: "prompt_tokens", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		arrow.Field{Name: "completion_tokens", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		arrow.Field{Name: "finish_reason", Type: arrow.BinaryTypes.String, Nullable: true},
	)
	if cfg.TokenIDs != "" {
		fields = append(fields, arrow.Field{Name: cfg.TokenIDs, Type: arrow.ListOf(arrow.PrimitiveTypes.Int32), Nullable: true})
	}
	if cfg.OnError == OnErrorColumn {
		fields = append(fields, arrow.Field{Name: cfg.ErrorColumn, Type: arrow.BinaryTypes.String, Nullable: true})
	}
	md := in.Metadata()
	return arrow.NewSchema(fields, &md)
}

// emptyRecord is the output of an empty batch: the input's columns and
// empty added ones.
func emptyRecord(mem memory.Allocator, rec arrow.RecordBatch, schema *arrow.Schema) arrow.RecordBatch {
	cols := append([]arrow.Array(nil), rec.Columns()...)
	for _, f := range schema.Fields()[len(cols):] {
		a := array.MakeArrayOfNull(mem, f.Type, 0)
		defer a.Release()
		cols = append(cols, a)
	}
	return array.NewRecordBatch(schema, cols, 0)
}

// rowRequest turns row i of the prompt column into a request, or the
// reason it cannot be one.
func rowRequest(col arrow.Array, i int, cfg StageConfig) (engine.Request, error) {
	if col.IsNull(i) {
		return engine.Request{}, fmt.Errorf("%w: the prompt is null", engine.ErrInvalidPrompt)
	}
	r := engine.Request{Params: cfg.Params, LoRA: cfg.LoRA}
	switch c := col.(type) {
	case interface{ Value(int) string }:
		text := c.Value(i)
		if text == "" {
			return engine.Request{}, fmt.Errorf("%w: the prompt is empty", engine.ErrInvalidPrompt)
		}
		if !cfg.Chat {
			r.Prompt = text
			return r, nil
		}
		if cfg.System != "" {
			r.Messages = append(r.Messages, tokenizer.Message{Role: "system", Content: cfg.System})
		}
		r.Messages = append(r.Messages, tokenizer.Message{Role: "user", Content: text})
		return r, nil
	case array.ListLike:
		start, end := c.ValueOffsets(i)
		vals := c.ListValues()
		ids := make([]int32, 0, end-start)
		for j := start; j < end; j++ {
			if vals.IsNull(int(j)) {
				return engine.Request{}, fmt.Errorf("%w: token %d is null", engine.ErrInvalidPrompt, j-start)
			}
			v, ok := intAt(vals, int(j))
			if !ok || v < 0 || v > 1<<31-1 {
				return engine.Request{}, fmt.Errorf("%w: token %d (%d) is not a token id", engine.ErrInvalidPrompt, j-start, v)
			}
			ids = append(ids, int32(v))
		}
		r.PromptIDs = ids
		return r, nil
	}
	return engine.Request{}, fmt.Errorf("infer: stage: prompt column of type %s", col.DataType())
}

func intAt(a arrow.Array, i int) (int64, bool) {
	switch v := a.(type) {
	case *array.Int8:
		return int64(v.Value(i)), true
	case *array.Int16:
		return int64(v.Value(i)), true
	case *array.Int32:
		return int64(v.Value(i)), true
	case *array.Int64:
		return v.Value(i), true
	case *array.Uint8:
		return int64(v.Value(i)), true
	case *array.Uint16:
		return int64(v.Value(i)), true
	case *array.Uint32:
		return int64(v.Value(i)), true
	case *array.Uint64:
		x := v.Value(i)
		return int64(x), x <= 1<<62
	}
	return 0, false
}

func runStage(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch, col arrow.Array, schema *arrow.Schema, e *engine.Engine, cfg StageConfig) (arrow.RecordBatch, error) {
	n := int(rec.NumRows())
	rowErr := make([]error, n)
	var reqs []engine.Request
	var rows []int // row of each request
	for i := range n {
		if cfg.OnNull == OnNullSkip && col.IsNull(i) {
			continue // neither a request nor an error: all nulls below
		}
		r, err := rowRequest(col, i, cfg)
		if err != nil {
			rowErr[i] = err
			continue
		}
		reqs = append(reqs, r)
		rows = append(rows, i)
	}
	comps, err := e.Generate(ctx, reqs)
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, ctxErr
	}
	if errors.Is(err, engine.ErrClosed) && comps == nil {
		return nil, err
	}
	done := make([]*engine.Completion, n)
	for k := range comps {
		c := &comps[k]
		row := rows[c.Request]
		if c.Err != nil {
			rowErr[row] = c.Err
		} else {
			done[row] = c
		}
	}
	if cfg.OnError == OnErrorFail {
		for i, err := range rowErr {
			if err != nil {
				return nil, fmt.Errorf("infer: row %d of the batch (%s): %w", i, excerpt(col, i), err)
			}
		}
	}

	text := array.NewStringBuilder(mem)
	defer text.Release()
	ptoks := array.NewInt64Builder(mem)
	defer ptoks.Release()
	ctoks := array.NewInt64Builder(mem)
	defer ctoks.Release()
	reason := array.NewStringBuilder(mem)
	defer reason.Release()
	ids := array.NewListBuilder(mem, arrow.PrimitiveTypes.Int32)
	defer ids.Release()
	idVals := ids.ValueBuilder().(*array.Int32Builder)
	errCol := array.NewStringBuilder(mem)
	defer errCol.Release()
	for i := range n {
		c := done[i]
		if c == nil {
			text.AppendNull()
			ptoks.AppendNull()
			ctoks.AppendNull()
			reason.AppendNull()
			ids.AppendNull()
			if rowErr[i] != nil {
				errCol.Append(rowErr[i].Error())
			} else {
				errCol.AppendNull() // a skipped null prompt
			}
			continue
		}
		text.Append(c.Text)
		ptoks.Append(int64(c.PromptTokens))
		ctoks.Append(int64(c.CompletionTokens))
		reason.Append(c.FinishReason)
		ids.Append(true)
		idVals.AppendValues(c.TokenIDs, nil)
		errCol.AppendNull()
	}
	cols := append([]arrow.Array(nil), rec.Columns()...)
	added := []arrow.Array{text.NewArray(), ptoks.NewArray(), ctoks.NewArray(), reason.NewArray()}
	if cfg.TokenIDs != "" {
		added = append(added, ids.NewArray())
	}
	if cfg.OnError == OnErrorColumn {
		added = append(added, errCol.NewArray())
	}
	for _, a := range added {
		defer a.Release()
	}
	return array.NewRecordBatch(schema, append(cols, added...), int64(n)), nil
}

// excerpt shows the start of row i's prompt for an error message.
func excerpt(col arrow.Array, i int) string {
	if col.IsNull(i) {
		return "null prompt"
	}
	s := col.ValueStr(i)
	if r := []rune(s); len(r) > 40 {
		s = string(r[:40]) + "…"
	}
	return fmt.Sprintf("prompt %q", s)
}

// Registry holds the engines of Generate stages: one per model directory,
// device, tokenizer and engine config, loaded once (sync.Once) by the
// first batch that needs it and shared by every stage, task and batch of
// the process until Close. Tests make their own.
type Registry struct {
	// Load loads a model; nil is infer.Load.
	Load func(dir string, opts LoadOptions) (*Loaded, error)

	mu      sync.Mutex
	engines map[registryKey]*sharedEngine
}

// DefaultRegistry serves stages that name no Registry.
var DefaultRegistry = &Registry{}

type registryKey struct {
	model, device, dtype, tokenizer string
	cfg                             engine.Config
}

type sharedEngine struct {
	once   sync.Once
	engine *engine.Engine
	loaded *Loaded
	err    error
}

// Engine returns the engine for cfg's model and options, loading it on
// first use. A load that failed is not retried.
func (r *Registry) Engine(cfg StageConfig) (*engine.Engine, error) {
	cfg = cfg.withDefaults()
	key := registryKey{cfg.Model, cfg.Device, cfg.DType, cfg.Tokenizer, cfg.EngineConfig}
	r.mu.Lock()
	if r.engines == nil {
		r.engines = map[registryKey]*sharedEngine{}
	}
	se := r.engines[key]
	if se == nil {
		se = &sharedEngine{}
		r.engines[key] = se
	}
	r.mu.Unlock()
	se.once.Do(func() {
		load := r.Load
		if load == nil {
			load = Load
		}
		dt, err := gpu.ParseDType(cfg.DType)
		if err != nil {
			se.err = fmt.Errorf("infer: stage: %w", err)
			return
		}
		l, err := load(cfg.Model, LoadOptions{Device: cfg.Device, Tokenizer: cfg.Tokenizer, Model: model.Options{DType: dt}})
		if err != nil {
			se.err = fmt.Errorf("infer: stage: loading %s: %w", cfg.Model, err)
			return
		}
		ecfg := cfg.EngineConfig
		if sp := &ecfg.Speculative; sp.Method == "draft_model" && sp.Draft == nil && sp.Model != "" {
			dm, err := l.LoadDraft(cfg.Model, sp.Model, "", model.Options{DType: dt})
			if err != nil {
				se.err = errors.Join(fmt.Errorf("infer: stage: speculative_model %s: %w", sp.Model, err), l.Close())
				return
			}
			sp.Draft = engine.FromModel(dm) // l.Close frees it
		}
		e, err := engine.New(l.Runner, l.Tokenizer, ecfg)
		if err != nil {
			se.err = errors.Join(fmt.Errorf("infer: stage: %s: %w", cfg.Model, err), l.Close())
			return
		}
		se.engine, se.loaded = e, l
	})
	return se.engine, se.err
}

// Close closes every engine and model the registry loaded.
func (r *Registry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for k, se := range r.engines {
		se.once.Do(func() {}) // wait for a load in progress
		if se.engine != nil {
			errs = append(errs, se.engine.Close(), se.loaded.Close())
		}
		delete(r.engines, k)
	}
	return errors.Join(errs...)
}
