package tokenizer

// postProcessor adds the special tokens of a single sequence when Encode is
// asked to (TemplateProcessing, Bert/Roberta processing). ByteLevel only
// trims offsets, so it is no post-processor here.
type postProcessor interface {
	process(ids []int32) []int32
}

type postSequence []postProcessor

func (q postSequence) process(ids []int32) []int32 {
	for _, p := range q {
		ids = p.process(ids)
	}
	return ids
}

// templatePost is TemplateProcessing's "single" template.
type templatePost struct{ parts []templatePart }

// templatePart is the sequence itself (seq) or a special token's ids.
type templatePart struct {
	seq bool
	ids []int32
}

func (t templatePost) process(ids []int32) []int32 {
	n := len(ids)
	for _, p := range t.parts {
		n += len(p.ids)
	}
	out := make([]int32, 0, n)
	for _, p := range t.parts {
		if p.seq {
			out = append(out, ids...)
		} else {
			out = append(out, p.ids...)
		}
	}
	return out
}
