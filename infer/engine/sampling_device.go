package engine

import (
	"cmp"
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
	for id := range sm.masked(seq) {
		ed = append(ed, gpu.SampleEdit{Token: id, Mask: true})
	}
	rep, freq := sm.track(seq, st)
	if rep {
		for t := range st.seenTokens() {
			ed = append(ed, gpu.SampleEdit{Token: t, Seen: true})
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
