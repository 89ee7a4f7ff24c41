package infer

import (
	"cmp"
	"math/bits"
	"slices"

	"github.com/sluicehq/sluice/gpu"
)

// addRow appends seq's sampling row to pack for a SamplingRunner: its
// parameters, the uniform its generator would give sample's draw (taken
// now, once, so that a seeded sequence draws the same numbers on either
// path), and its logit edits: the min_tokens masks and the penalties
// sample would apply on the host.
func (sm *sampler) addRow(pack *gpu.SamplePack, seq *Sequence, st *samplerState) {
	p := st.p
	row := gpu.SampleRow{
		Temperature: p.Temperature, TopK: p.TopK, TopP: p.TopP, MinP: p.MinP,
		Repetition: p.RepetitionPenalty, Frequency: p.FrequencyPenalty, Presence: p.PresencePenalty,
	}
	if p.greedy() {
		row.Temperature = 0
	} else {
		row.U = st.rng.Float64()
	}
	ed := sm.edits[:0]
	if seq.numOutput() < seq.stop.minTokens {
		for _, ids := range [][]int32{sm.eos, seq.stop.stopIDs} {
			for _, id := range ids {
				if id >= 0 && int(id) < sm.vocab {
					ed = append(ed, gpu.SampleEdit{Token: id, Mask: true})
				}
			}
		}
	}
	rep, freq := sm.track(seq, st)
	if rep {
		for w, word := range st.seen {
			for word != 0 {
				b := bits.TrailingZeros64(word)
				word &= word - 1
				ed = append(ed, gpu.SampleEdit{Token: int32(w*64 + b), Seen: true})
			}
		}
	}
	if freq {
		for t, c := range st.counts {
			ed = append(ed, gpu.SampleEdit{Token: t, Count: c})
		}
	}
	// One edit per token: merge the masks, the seen bit and the count.
	slices.SortFunc(ed, func(a, b gpu.SampleEdit) int { return cmp.Compare(a.Token, b.Token) })
	out := ed[:0]
	for _, e := range ed {
		if n := len(out); n > 0 && out[n-1].Token == e.Token {
			o := &out[n-1]
			o.Mask, o.Seen, o.Count = o.Mask || e.Mask, o.Seen || e.Seen, max(o.Count, e.Count)
			continue
		}
		out = append(out, e)
	}
	sm.edits = out
	pack.Add(row, out)
}
