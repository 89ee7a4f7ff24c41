package cuda

import (
	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/internal/check"
)

// sampleThreads is SAMP_THREADS in sluice.cu: the block of one row.
const sampleThreads = 256

// Sample draws one token per row with sluice.cu's sample kernel, one block
// per row; the logits never leave the device. Edits naming a token outside
// the vocabulary, and edit ranges outside b.Edits, are skipped, not
// reported (checking them would need the host).
func (d *Device) Sample(dst, logits *gpu.Tensor, b gpu.SampleBatch) error {
	rows, n, edits, err := check.Sample(dst, logits, b)
	if err != nil {
		return err
	}
	p, err := d.ptrs("Sample", []string{"dst", "logits", "b.Rows", "b.Edits"}, dst, logits, b.Rows, b.Edits)
	if err != nil || rows == 0 {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.launch("sample", d.fn.sample, [3]int{rows, 1, 1}, min(sampleThreads, threads(n)),
		p[0], p[1], i64(n), p[2], p[3], i64(edits))
}
