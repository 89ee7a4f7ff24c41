package gpu

import (
	"cmp"
	"encoding/binary"
	"math"
	"slices"
)

// SampleBatch holds the device side of one Sample call: the tensors a
// SamplePack's bytes were uploaded into.
type SampleBatch struct {
	// Rows is I32 [rows, SampleRowWords]: each row's parameters, packed
	// by SamplePack.
	Rows *Tensor
	// Edits is I32 [edits, 3]: (token, count, flags) triples, each row's
	// run of them named by its packed parameters; nil when there are none.
	Edits *Tensor
}

// SampleRowWords is the number of I32 words of one row of SampleBatch.Rows.
const SampleRowWords = 16

// GreedyTemperature is vLLM's _SAMPLING_EPS: rows with a lower
// temperature take the argmax (after their edits).
const GreedyTemperature = 1e-5

// SampleRow is one row's sampling parameters. Values that switch a step
// off are those of vLLM: TopK 0 (or ≥ vocab), TopP 1, MinP 0, penalties
// 1, 0 and 0.
type SampleRow struct {
	// Temperature divides the logits (they are multiplied by
	// float32(1/Temperature), as infer's host sampler does); below
	// GreedyTemperature the row is greedy.
	Temperature float64
	TopK        int
	TopP, MinP  float64
	// Repetition divides the positive logits, and multiplies the others,
	// of the tokens an edit marks Seen; Frequency times the edit's Count
	// plus Presence is subtracted from tokens with a positive Count. Both
	// in float32, as vLLM.
	Repetition, Frequency, Presence float64
	// U is the row's uniform draw in [0, 1), from its sequence's own
	// generator, so that seeded sampling is reproducible on any backend.
	U float64
}

// SampleEdit changes one logit of a row before sampling. A row may edit a
// token only once.
type SampleEdit struct {
	Token int32
	// Count is the token's occurrences in the output (frequency and
	// presence penalties apply when it is positive).
	Count int32
	// Mask sets the logit to -Inf (EOS and stop tokens before min_tokens).
	Mask bool
	// Seen: the token is in the prompt or the output (repetition penalty).
	Seen bool
}

// Edit flags in the third word of an edit.
const (
	SampleEditMask = 1
	SampleEditSeen = 2
)

// The words of a packed row (sluice.cu's sample reads the same layout).
const (
	sampInvTemp = 0  // f32 1/temperature, 0 greedy
	sampTopK    = 1  // i32, 0 off
	sampTopP    = 2  // f64, two words
	sampMinP    = 4  // f64
	sampU       = 6  // f64
	sampRep     = 8  // f32
	sampFreq    = 9  // f32
	sampPres    = 10 // f32
	sampEdit0   = 11 // i32: first edit of the row
	sampEdit1   = 12 // i32: one past its last
)

// SamplePack builds the host bytes of a SampleBatch's tensors, row by row;
// reused after Reset, it allocates nothing once its buffers have grown.
type SamplePack struct {
	Rows  []byte // upload into SampleBatch.Rows, I32 [NumRows, SampleRowWords]
	Edits []byte // upload into SampleBatch.Edits, I32 [NumEdits, 3]
}

// Reset empties p, keeping its buffers.
func (p *SamplePack) Reset() { p.Rows, p.Edits = p.Rows[:0], p.Edits[:0] }

// NumRows is the number of rows added since Reset.
func (p *SamplePack) NumRows() int { return len(p.Rows) / (4 * SampleRowWords) }

// NumEdits is the number of edits added since Reset.
func (p *SamplePack) NumEdits() int { return len(p.Edits) / 12 }

// Add appends a row with its edits.
func (p *SamplePack) Add(r SampleRow, edits []SampleEdit) {
	var w [SampleRowWords]uint32
	if r.Temperature >= GreedyTemperature {
		w[sampInvTemp] = math.Float32bits(float32(1 / r.Temperature))
	}
	w[sampTopK] = uint32(int32(max(r.TopK, 0)))
	put64 := func(i int, f float64) {
		b := math.Float64bits(f)
		w[i], w[i+1] = uint32(b), uint32(b>>32)
	}
	put64(sampTopP, r.TopP)
	put64(sampMinP, r.MinP)
	put64(sampU, r.U)
	w[sampRep] = math.Float32bits(float32(r.Repetition))
	w[sampFreq] = math.Float32bits(float32(r.Frequency))
	w[sampPres] = math.Float32bits(float32(r.Presence))
	e0 := p.NumEdits()
	w[sampEdit0], w[sampEdit1] = uint32(e0), uint32(e0+len(edits))
	for _, v := range w {
		p.Rows = binary.LittleEndian.AppendUint32(p.Rows, v)
	}
	for _, e := range edits {
		var f uint32
		if e.Mask {
			f |= SampleEditMask
		}
		if e.Seen {
			f |= SampleEditSeen
		}
		p.Edits = binary.LittleEndian.AppendUint32(p.Edits, uint32(e.Token))
		p.Edits = binary.LittleEndian.AppendUint32(p.Edits, uint32(e.Count))
		p.Edits = binary.LittleEndian.AppendUint32(p.Edits, f)
	}
}

// PackedSampleRow is a row of SampleBatch.Rows read back: the values a
// backend samples with.
type PackedSampleRow struct {
	InvTemperature             float32 // 0: greedy
	TopK                       int
	TopP, MinP, U              float64
	Repetition, Freq, Presence float32
	EditStart, EditEnd         int
}

// UnpackSampleRow reads row words w (SampleRowWords of them), for
// backends that sample on the host.
func UnpackSampleRow(w []int32) PackedSampleRow {
	f64 := func(i int) float64 { return math.Float64frombits(uint64(uint32(w[i])) | uint64(uint32(w[i+1]))<<32) }
	f32 := func(i int) float32 { return math.Float32frombits(uint32(w[i])) }
	return PackedSampleRow{
		InvTemperature: f32(sampInvTemp), TopK: int(w[sampTopK]),
		TopP: f64(sampTopP), MinP: f64(sampMinP), U: f64(sampU),
		Repetition: f32(sampRep), Freq: f32(sampFreq), Presence: f32(sampPres),
		EditStart: int(w[sampEdit0]), EditEnd: int(w[sampEdit1]),
	}
}

// SoftmaxF64 returns the probabilities of the logits x in float64 (max
// subtracted, exp, divided by the sum in index order), in buf when it is
// large enough: the host's reference for Sample's probabilities, which
// infer's host sampler and the cpu backend share.
func SoftmaxF64(buf []float64, x []float32) []float64 {
	if cap(buf) < len(x) {
		buf = make([]float64, len(x))
	}
	probs := buf[:len(x)]
	mx := math.Inf(-1)
	for _, v := range x {
		mx = max(mx, float64(v))
	}
	sum := 0.0
	for i, v := range x {
		e := math.Exp(float64(v) - mx)
		probs[i] = e
		sum += e
	}
	for i := range probs {
		probs[i] /= sum
	}
	return probs
}

// HostDraw is the host's reference of Sample's draw for a row that is not
// greedy, shared by infer's host sampler and the cpu backend; its buffers
// are reused from call to call. The zero value is ready.
type HostDraw struct {
	y     []float32
	idx   []int32
	probs []float64
}

// Draw samples a token from the (edited) logits x, read only: x times
// invTemp, then min_p, top_k (0 or ≥ len(x): off) and top_p as vLLM's
// apply_top_k_top_p (sort ascending, ties by id with the larger id first,
// so the smaller id survives top_p), then an inverse-CDF draw with u over
// the token ids in order, in float64.
func (h *HostDraw) Draw(x []float32, invTemp float32, topK int, topP, minP, u float64) int32 {
	h.y = append(h.y[:0], x...)
	y := h.y
	for i := range y {
		y[i] *= invTemp
	}
	ninf := float32(math.Inf(-1))
	if minP > 0 {
		probs := h.softmax(y)
		cut := slices.Max(probs) * minP
		for i, q := range probs {
			if q < cut {
				y[i] = ninf
			}
		}
	}
	if (topK > 0 && topK < len(y)) || topP < 1 {
		idx := h.idx[:0]
		for i := range y {
			idx = append(idx, int32(i))
		}
		h.idx = idx
		slices.SortFunc(idx, func(a, b int32) int {
			if c := cmp.Compare(y[a], y[b]); c != 0 {
				return c
			}
			return cmp.Compare(b, a)
		})
		if topK > 0 && topK < len(y) {
			kth := y[idx[len(idx)-topK]]
			for _, i := range idx[:len(idx)-topK] {
				if y[i] < kth {
					y[i] = ninf
				}
			}
		}
		if topP < 1 {
			probs := h.softmax(y)
			cum := 0.0
			for _, i := range idx[:len(idx)-1] {
				cum += probs[i]
				if cum > 1-topP {
					break
				}
				y[i] = ninf
			}
		}
	}
	probs := h.softmax(y)
	cum, last := 0.0, int32(0)
	for i, q := range probs {
		if q == 0 {
			continue
		}
		cum += q
		last = int32(i)
		if u < cum {
			return int32(i)
		}
	}
	return last // u fell past a sum rounded below 1
}

func (h *HostDraw) softmax(x []float32) []float64 {
	h.probs = SoftmaxF64(h.probs, x)
	return h.probs
}
