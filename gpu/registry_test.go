package gpu

import (
	"bytes"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

type fakeDevice struct {
	Device // nil: only Name is called
	name   string
}

func (d fakeDevice) Name() string { return d.name }

func opener(name string, err error) OpenFunc {
	return func() (Device, error) {
		if err != nil {
			return nil, err
		}
		return fakeDevice{name: name}, nil
	}
}

func TestRegistry(t *testing.T) {
	errNoGPU := errors.New("no CUDA driver")
	for _, c := range []struct {
		name     string
		backends map[string]OpenFunc
		open     string
		want     string // device name, or "" for an error
		wantErr  error
		log      string
	}{
		{"cpu by name", map[string]OpenFunc{"cpu": opener("cpu", nil)}, "cpu", "cpu", nil, ""},
		{"unknown", map[string]OpenFunc{"cpu": opener("cpu", nil)}, "tpu", "", ErrUnknownDevice, ""},
		{"auto without cuda", map[string]OpenFunc{"cpu": opener("cpu", nil)}, "auto", "cpu", nil, "device=cpu"},
		{"auto with a failing cuda", map[string]OpenFunc{"cpu": opener("cpu", nil), "cuda": opener("", errNoGPU)}, "auto", "cpu", nil, "no CUDA driver"},
		{"auto with cuda", map[string]OpenFunc{"cpu": opener("cpu", nil), "cuda": opener("cuda", nil)}, "auto", "cuda", nil, "device=cuda"},
		{"auto with nothing", map[string]OpenFunc{}, "auto", "", ErrUnknownDevice, ""},
		{"open failure", map[string]OpenFunc{"cuda": opener("", errNoGPU)}, "cuda", "", errNoGPU, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			r := NewRegistry()
			r.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			for name, open := range c.backends {
				r.Register(name, open)
			}
			d, err := r.Open(c.open)
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("Open(%q) = %v, want %v", c.open, err, c.wantErr)
				}
				return
			}
			if err != nil || d.Name() != c.want {
				t.Fatalf("Open(%q) = %v, %v; want %s", c.open, d, err, c.want)
			}
			if !strings.Contains(logs.String(), c.log) {
				t.Errorf("log %q does not mention %q", logs.String(), c.log)
			}
		})
	}
}

func TestRegisterTwicePanics(t *testing.T) {
	r := NewRegistry()
	r.Register("cpu", opener("cpu", nil))
	if got := r.Names(); !slices.Equal(got, []string{"cpu"}) {
		t.Errorf("Names() = %v", got)
	}
	for _, name := range []string{"cpu", "auto"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", name)
				}
			}()
			r.Register(name, opener(name, nil))
		}()
	}
}
