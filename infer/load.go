package infer

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/gpu"
	_ "github.com/sluicehq/sluice/gpu/cpu"  // the device every machine has
	_ "github.com/sluicehq/sluice/gpu/cuda" // found at run time where a driver is
	"github.com/sluicehq/sluice/infer/engine"
	"github.com/sluicehq/sluice/infer/model"
	"github.com/sluicehq/sluice/infer/tokenizer"
	"github.com/sluicehq/sluice/storage"
)

// LoadOptions tune Load.
type LoadOptions struct {
	// Device is a gpu registry name: "auto" (the default), "cpu", "cuda".
	Device string
	// Model are the model package's options; the zero value picks the
	// dtype by device.
	Model model.Options
	// Tokenizer is the directory of tokenizer.json (local or s3://); ""
	// means the model directory, where a missing tokenizer.json leaves
	// Loaded.Tokenizer nil.
	Tokenizer string
}

// Loaded is a model loaded with its device and tokenizer, ready for New.
type Loaded struct {
	Model     *model.Model
	Runner    engine.Runner
	Tokenizer *tokenizer.Tokenizer // nil when there is none
	close     func() error         // nil: nothing to free
}

// Load opens the device, loads the model in dir (local or s3://) and its
// tokenizer. Close the result after the engines that use it.
func Load(dir string, opts LoadOptions) (*Loaded, error) {
	name := opts.Device
	if name == "" {
		name = "auto"
	}
	ctx := opts.Model.Context
	if ctx == nil {
		ctx = context.Background()
	}
	tok, err := loadTokenizer(ctx, dir, opts.Tokenizer)
	if err != nil {
		return nil, err
	}
	dev, err := gpu.Open(name)
	if err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	m, err := model.Load(dir, dev, opts.Model)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("infer: %w", err), dev.Close())
	}
	closeAll := func() error { return errors.Join(m.Close(), dev.Close()) }
	return &Loaded{Model: m, Runner: engine.FromModel(m), Tokenizer: tok, close: closeAll}, nil
}

// loadTokenizer loads the tokenizer in tdir, or in the model directory dir
// when tdir is "" (nil when dir has no tokenizer.json). Both may be local
// paths or s3:// URLs.
func loadTokenizer(ctx context.Context, dir, tdir string) (*tokenizer.Tokenizer, error) {
	if tdir == "" {
		path := storage.Join(dir, "tokenizer.json")
		fsys, err := storage.For(path)
		if err != nil {
			return nil, fmt.Errorf("infer: %w", err)
		}
		_, err = fsys.Stat(ctx, path)
		switch {
		case errors.Is(err, storage.ErrNotExist):
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("infer: looking for the tokenizer of %s: %w", dir, err)
		}
		tdir = dir
	}
	tok, err := tokenizer.LoadContext(ctx, tdir)
	if err != nil {
		return nil, fmt.Errorf("infer: loading the tokenizer of %s: %w", tdir, err)
	}
	return tok, nil
}

// Close frees the model and closes its device.
func (l *Loaded) Close() error {
	if l.close == nil {
		return nil
	}
	return l.close()
}

// LoadDraft loads the draft model of speculative decoding (vLLM's
// --speculative-model) from dir onto l's device with opts, and checks that
// it shares the tokenizer of l's model, named target in errors: the same
// vocabulary size and, where both directories have a tokenizer.json (or
// tdir names the draft's), the same token at every id. l.Close frees it,
// before the device.
func (l *Loaded) LoadDraft(target, dir, tdir string, opts model.Options) (*model.Model, error) {
	ctx := opts.Context
	if ctx == nil {
		ctx = context.Background()
	}
	dm, err := model.Load(dir, l.Model.Device(), opts)
	if err != nil {
		return nil, fmt.Errorf("infer: draft model: %w", err)
	}
	fail := func(err error) (*model.Model, error) { return nil, errors.Join(err, dm.Close()) }
	if d, t := dm.Config().Vocab, l.Model.Config().Vocab; d != t {
		return fail(fmt.Errorf("infer: the draft model %s has a vocabulary of %d tokens and the target %s one of %d: draft and target must share the tokenizer", dir, d, target, t))
	}
	dtok, err := loadTokenizer(ctx, dir, tdir)
	if err != nil {
		return fail(err)
	}
	if dtok != nil && l.Tokenizer != nil {
		if d, t := dtok.VocabSize(), l.Tokenizer.VocabSize(); d != t {
			return fail(fmt.Errorf("infer: the draft model %s's tokenizer has %d tokens and the target %s's %d: draft and target must share the tokenizer", dir, d, target, t))
		}
		for id := range int32(dtok.VocabSize()) {
			d, _ := dtok.Token(id)
			t, _ := l.Tokenizer.Token(id)
			if d != t {
				return fail(fmt.Errorf("infer: token %d is %q in the draft model %s's tokenizer and %q in the target %s's: draft and target must share the tokenizer", id, d, dir, t, target))
			}
		}
	}
	prev := l.close
	l.close = func() error {
		err := dm.Close()
		if prev != nil {
			err = errors.Join(err, prev())
		}
		return err
	}
	return dm, nil
}
