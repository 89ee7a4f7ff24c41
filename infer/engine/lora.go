package engine

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/infer/model"
)

// Multi-LoRA serving, as vLLM's: adapters are loaded into the Runner
// (LoRARunner) under a name, a Request names one in Request.LoRA, and the
// scheduler lets up to Config.MaxLoRAs distinct adapters run in one batch
// (requests of other adapters wait), where the runner computes each
// adapter's rows with its own A and B. A sequence's prefix-cache hashes
// start from its adapter's id, so sequences of different adapters never
// share KV blocks, the same prompt included.

// ErrUnknownLoRA: a request names a LoRA adapter the engine has not loaded.
var ErrUnknownLoRA = errors.New("infer: unknown LoRA adapter")

// LoRARunner is a Runner that serves LoRA adapters. Its methods are
// called on the engine's loop goroutine, between steps.
type LoRARunner interface {
	Runner
	// LoadLoRA loads the PEFT adapter in dir under name, refusing one of
	// a rank above maxRank, and returns its id for SeqInput.LoRA (> 0).
	LoadLoRA(name, dir string, maxRank int) (int, error)
	// UnloadLoRA frees adapter id.
	UnloadLoRA(id int) error
}

var _ LoRARunner = (*modelRunner)(nil)

func (r *modelRunner) LoadLoRA(name, dir string, maxRank int) (int, error) {
	return r.m.LoadLoRA(name, dir, model.LoRAOptions{MaxRank: maxRank})
}

func (r *modelRunner) UnloadLoRA(id int) error { return r.m.UnloadLoRA(id) }

// LoRAAdapter is a loaded adapter.
type LoRAAdapter struct {
	Name, Path string
	ID         int
}

// LoadLoRA loads the PEFT adapter in dir (adapter_config.json and
// adapter_model.safetensors, local or s3://) under name, on the loop
// goroutine, between steps: requests may name it once it returns. Its
// rank must be at most Config.MaxLoRARank.
func (e *Engine) LoadLoRA(name, dir string) error {
	if name == "" {
		return fmt.Errorf("%w: a LoRA adapter needs a name", ErrInvalidConfig)
	}
	lr, ok := e.runner.(LoRARunner)
	if !ok {
		return fmt.Errorf("%w: the engine's runner (%T) does not serve LoRA adapters", ErrInvalidConfig, e.runner)
	}
	e.mu.Lock()
	_, dup := e.loras[name]
	e.mu.Unlock()
	if dup {
		return fmt.Errorf("%w: a LoRA adapter called %q is already loaded", ErrInvalidConfig, name)
	}
	var id int
	err := e.call(func() error {
		var err error
		id, err = lr.LoadLoRA(name, dir, e.cfg.maxLoRARank())
		return err
	})
	if err != nil {
		return fmt.Errorf("infer: loading LoRA adapter %q from %s: %w", name, dir, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.loras == nil {
		e.loras = map[string]LoRAAdapter{}
	}
	e.loras[name] = LoRAAdapter{Name: name, Path: dir, ID: id}
	e.loraOrder = append(e.loraOrder, name)
	return nil
}

// UnloadLoRA unloads adapter name once no request uses it; it fails while
// one does.
func (e *Engine) UnloadLoRA(name string) error {
	e.mu.Lock()
	ad, ok := e.loras[name]
	e.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownLoRA, name)
	}
	lr := e.runner.(LoRARunner) // loaded, so it is one
	return e.call(func() error {
		for _, list := range [][]*Sequence{e.sched.running, e.sched.waiting} {
			for _, s := range list {
				if s.lora == ad.ID {
					return fmt.Errorf("%w: LoRA adapter %q is in use by request %q", ErrInvalidConfig, name, s.x.req.id)
				}
			}
		}
		e.mu.Lock()
		for _, r := range e.incoming {
			if len(r.seqs) > 0 && r.seqs[0].lora == ad.ID {
				e.mu.Unlock()
				return fmt.Errorf("%w: LoRA adapter %q is in use by request %q", ErrInvalidConfig, name, r.id)
			}
		}
		delete(e.loras, name)
		for i, n := range e.loraOrder {
			if n == name {
				e.loraOrder = append(e.loraOrder[:i], e.loraOrder[i+1:]...)
				break
			}
		}
		e.mu.Unlock()
		return lr.UnloadLoRA(ad.ID)
	})
}

// LoRAs lists the loaded adapters in load order.
func (e *Engine) LoRAs() []LoRAAdapter {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]LoRAAdapter, 0, len(e.loraOrder))
	for _, n := range e.loraOrder {
		out = append(out, e.loras[n])
	}
	return out
}

// loraID resolves a request's adapter name; "" is the base model.
func (e *Engine) loraID(name string) (int, error) {
	if name == "" {
		return 0, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if ad, ok := e.loras[name]; ok {
		return ad.ID, nil
	}
	return 0, fmt.Errorf("%w %q (loaded: %s)", ErrUnknownLoRA, name, strings.Join(append([]string{}, e.loraOrder...), ", "))
}

// call runs fn on the loop goroutine and returns its error.
func (e *Engine) call(fn func() error) error {
	done := make(chan error, 1)
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		return ErrClosed
	}
	e.calls = append(e.calls, func() { done <- fn() })
	e.wake.Broadcast()
	e.mu.Unlock()
	return <-done
}

func (c Config) maxLoRARank() int {
	if c.MaxLoRARank == 0 {
		return 16
	}
	return c.MaxLoRARank
}

func (c Config) maxLoRAs() int { return max(1, c.MaxLoRAs) }
