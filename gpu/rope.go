package gpu

import (
	"fmt"
	"math"
)

// Rope configures rotary position embeddings: config.json's rope_theta and
// rope_scaling.
type Rope struct {
	Theta float64 // rope_theta, e.g. 10000 or 500000
	// Llama3 is rope_scaling with rope_type "llama3" (Llama 3.1+); nil for
	// no scaling.
	Llama3 *Llama3Scaling
}

// Llama3Scaling is the frequency-dependent scaling of Llama 3.1: low
// frequencies are divided by Factor, high ones kept, the band between
// interpolated.
type Llama3Scaling struct {
	Factor                        float64 // factor, e.g. 8
	LowFreqFactor, HighFreqFactor float64 // low_freq_factor 1, high_freq_factor 4
	OriginalMaxPositions          int     // original_max_position_embeddings, e.g. 8192
}

// Validate reports a configuration InvFreq cannot use.
func (r Rope) Validate() error {
	if !(r.Theta > 1) {
		return fmt.Errorf("gpu: Rope.Theta (%v) must be greater than 1: %w", r.Theta, ErrArg)
	}
	if s := r.Llama3; s != nil {
		switch {
		case !(s.Factor > 0):
			return fmt.Errorf("gpu: Llama3Scaling.Factor (%v) must be positive: %w", s.Factor, ErrArg)
		case !(s.LowFreqFactor > 0) || !(s.HighFreqFactor > s.LowFreqFactor):
			return fmt.Errorf("gpu: Llama3Scaling.HighFreqFactor (%v) must exceed LowFreqFactor (%v) > 0: %w",
				s.HighFreqFactor, s.LowFreqFactor, ErrArg)
		case s.OriginalMaxPositions <= 0:
			return fmt.Errorf("gpu: Llama3Scaling.OriginalMaxPositions (%d) must be positive: %w", s.OriginalMaxPositions, ErrArg)
		}
	}
	return nil
}

// InvFreq returns the d/2 inverse frequencies of a head of size d, computed
// in float64 and rounded to float32 as transformers stores them
// (ROPE_INIT_FUNCTIONS "default" and "llama3").
func (r Rope) InvFreq(d int) []float32 {
	out := make([]float32, d/2)
	for i := range out {
		inv := 1 / math.Pow(r.Theta, float64(2*i)/float64(d))
		if s := r.Llama3; s != nil {
			orig := float64(s.OriginalMaxPositions)
			wavelen := 2 * math.Pi / inv
			switch {
			case wavelen < orig/s.HighFreqFactor: // high frequency: kept
			case wavelen > orig/s.LowFreqFactor:
				inv /= s.Factor
			default:
				smooth := (orig/wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
				inv = (1-smooth)*inv/s.Factor + smooth*inv
			}
		}
		out[i] = float32(inv)
	}
	return out
}
