package check

import "github.com/sluicehq/sluice/gpu"

// Sample checks dst = Sample(logits, b) and returns rows, row size and the
// number of edits.
func Sample(dst, logits *gpu.Tensor, b gpu.SampleBatch) (rows, n, edits int, err error) {
	const op = "Sample"
	if err := present(op, "logits", logits); err != nil {
		return 0, 0, 0, err
	}
	if logits.DType() != gpu.F32 {
		return 0, 0, 0, fail(op, gpu.ErrDType, "logits %s is not f32", logits)
	}
	if err := Int(op, "dst", dst); err != nil {
		return 0, 0, 0, err
	}
	if err := Int(op, "b.Rows", b.Rows); err != nil {
		return 0, 0, 0, err
	}
	rows, n = logits.Rows(), logits.Dim(-1)
	if dst.Len() != rows || n == 0 {
		return 0, 0, 0, fail(op, gpu.ErrShape, "dst %s for logits %s: want [%d] and non-empty rows", dst, logits, rows)
	}
	if b.Rows.Len() != rows*gpu.SampleRowWords {
		return 0, 0, 0, fail(op, gpu.ErrShape, "b.Rows %s for %d rows: want [%d, %d]", b.Rows, rows, rows, gpu.SampleRowWords)
	}
	if b.Edits != nil {
		if err := Int(op, "b.Edits", b.Edits); err != nil {
			return 0, 0, 0, err
		}
		if b.Edits.Dim(-1) != 3 {
			return 0, 0, 0, fail(op, gpu.ErrShape, "b.Edits %s: want [edits, 3]", b.Edits)
		}
		edits = b.Edits.Rows()
	}
	return rows, n, edits, nil
}
