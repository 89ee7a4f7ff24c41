package train

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/infer/tokenizer"
)

// sample is one training row: its token ids and, when not every token is
// a target, which are: mask[t] says whether ids[t] is predicted (from the
// tokens before it) and counts in the loss. A nil mask trains on every
// token; prompt tokens and non-assistant turns are false.
type sample struct {
	ids  []int32
	mask []bool
}

// tokenRows streams the dataset's rows as token sequences cut to
// MaxSeqLen, one record at a time: the prompt and completion columns when
// they are set (the loss only on the completion's tokens), else the ids
// column when the schema has it, else the text column tokenized (or, with
// Chat, the messages column rendered by the chat template, the loss only
// on the assistant turns unless ChatLoss is "all"). It stops at the first
// error.
func tokenRows(ctx context.Context, cfg Config, ds *dataset.Dataset, vocab int,
	tok func() (*tokenizer.Tokenizer, error)) iter.Seq2[sample, error] {
	return func(yield func(sample, error) bool) {
		if _, err := decodeRows(ctx, cfg, ds, vocab, tok, yield); err != nil {
			yield(sample{}, err)
		}
	}
}

func columnNames(sc *arrow.Schema) []string {
	names := make([]string, sc.NumFields())
	for i, f := range sc.Fields() {
		names[i] = f.Name
	}
	return names
}

// decodeRows runs tokenRows' loop; it returns early, with a nil error,
// when yield asks to stop.
func decodeRows(ctx context.Context, cfg Config, ds *dataset.Dataset, vocab int,
	tok func() (*tokenizer.Tokenizer, error), yield func(sample, error) bool) (int, error) {
	if ds == nil {
		return 0, fmt.Errorf("train: no dataset: %w", ErrData)
	}
	row := 0
	for rec, err := range ds.Iter(ctx) {
		if err != nil {
			return 0, fmt.Errorf("train: reading the data: %w", err)
		}
		sc := rec.Schema()
		var s sample
		if cfg.PromptColumn != "" {
			pi, ci := sc.FieldIndices(cfg.PromptColumn), sc.FieldIndices(cfg.CompletionColumn)
			if len(pi) == 0 || len(ci) == 0 {
				return 0, fmt.Errorf("train: the data has no prompt column %q (--prompt-column) or completion column %q (--completion-column); its columns are %v: %w",
					cfg.PromptColumn, cfg.CompletionColumn, columnNames(sc), ErrData)
			}
			pa, ca := rec.Column(pi[0]), rec.Column(ci[0])
			for i := range pa.Len() {
				if s, err = promptCompletion(cfg, pa, ca, i, row+i, vocab, tok); err != nil {
					return 0, err
				}
				if !yield(s.cut(cfg.MaxSeqLen), nil) {
					return row + i, nil
				}
			}
			row += pa.Len()
			continue
		}
		col := cfg.IDsColumn
		if cfg.Chat {
			col = "messages"
		} else if len(sc.FieldIndices(col)) == 0 {
			col = cfg.TextColumn
		}
		idx := sc.FieldIndices(col)
		if len(idx) == 0 {
			if cfg.Chat {
				return 0, fmt.Errorf("train: --chat needs a messages column; the data has columns %v: %w", columnNames(sc), ErrData)
			}
			return 0, fmt.Errorf("train: the data has neither an ids column %q (--ids-column) nor a text column %q (--text-column); its columns are %v: %w",
				cfg.IDsColumn, cfg.TextColumn, columnNames(sc), ErrData)
		}
		arr := rec.Column(idx[0])
		for i := range arr.Len() {
			if arr.IsNull(i) {
				return 0, fmt.Errorf("train: row %d: column %q is null: %w", row+i, col, ErrData)
			}
			s = sample{}
			switch {
			case cfg.Chat:
				t, err := tok()
				if err != nil {
					return 0, err
				}
				msgs, err := messages(arr, i)
				if err != nil {
					return 0, fmt.Errorf("train: row %d: column %q: %w", row+i, col, err)
				}
				if s, err = chatSample(t, msgs, cfg.ChatLoss == "all"); err != nil {
					return 0, fmt.Errorf("train: row %d: column %q: %w", row+i, col, err)
				}
			case col == cfg.IDsColumn:
				s.ids, err = listIDs(arr, i, vocab)
				if err != nil {
					return 0, fmt.Errorf("train: row %d: column %q: %w", row+i, col, err)
				}
			default:
				if s.ids, err = cellIDs(arr, i, vocab, tok, true); err != nil {
					return 0, fmt.Errorf("train: row %d: column %q: %w", row+i, col, err)
				}
			}
			if !yield(s.cut(cfg.MaxSeqLen), nil) {
				return row + i, nil
			}
		}
		row += arr.Len()
	}
	return row, nil
}

// cut keeps the first n tokens.
func (s sample) cut(n int) sample {
	if len(s.ids) > n {
		s.ids = s.ids[:n]
		if s.mask != nil {
			s.mask = s.mask[:n]
		}
	}
	return s
}

// targets is how many tokens of s count in the loss: every token but the
// first (which nothing predicts) that the mask keeps.
func (s sample) targets() int {
	n := 0
	for t := 1; t < len(s.ids); t++ {
		if s.mask == nil || s.mask[t] {
			n++
		}
	}
	return n
}

// cellIDs is a row's cell as token ids: a list of ids as they are, or a
// string tokenized (addSpecial: with the tokenizer's BOS and the like).
func cellIDs(arr arrow.Array, i, vocab int, tok func() (*tokenizer.Tokenizer, error), addSpecial bool) ([]int32, error) {
	switch a := arr.(type) {
	case *array.String:
		return encodeText(tok, a.Value(i), addSpecial)
	case *array.LargeString:
		return encodeText(tok, a.Value(i), addSpecial)
	case *array.List, *array.LargeList:
		return listIDs(arr, i, vocab)
	}
	return nil, fmt.Errorf("type %s, want strings or lists of token ids: %w", arr.DataType(), ErrData)
}

// promptCompletion is row i of a prompt/completion pair: the prompt's
// tokens (with BOS when it is text) then the completion's (with EOS
// appended when it is text and the tokenizer has one), the loss only on
// the completion's, as TRL's SFTTrainer with completion_only_loss.
func promptCompletion(cfg Config, pa, ca arrow.Array, i, row, vocab int, tok func() (*tokenizer.Tokenizer, error)) (sample, error) {
	for _, c := range []struct {
		a    arrow.Array
		name string
	}{{pa, cfg.PromptColumn}, {ca, cfg.CompletionColumn}} {
		if c.a.IsNull(i) {
			return sample{}, fmt.Errorf("train: row %d: column %q is null: %w", row, c.name, ErrData)
		}
	}
	p, err := cellIDs(pa, i, vocab, tok, true)
	if err != nil {
		return sample{}, fmt.Errorf("train: row %d: column %q: %w", row, cfg.PromptColumn, err)
	}
	c, err := cellIDs(ca, i, vocab, tok, false)
	if err != nil {
		return sample{}, fmt.Errorf("train: row %d: column %q: %w", row, cfg.CompletionColumn, err)
	}
	if id := ca.DataType().ID(); id == arrow.STRING || id == arrow.LARGE_STRING {
		t, err := tok()
		if err != nil {
			return sample{}, err
		}
		if eos, ok := t.EOS(); ok && (len(c) == 0 || c[len(c)-1] != eos) {
			c = append(c, eos)
		}
	}
	s := sample{ids: append(slices.Clip(p), c...), mask: make([]bool, len(p)+len(c))}
	for t := len(p); t < len(s.ids); t++ {
		s.mask[t] = true
	}
	return s, nil
}

// chatSample renders a conversation with the chat template and tokenizes
// it. Unless all, only the assistant turns count in the loss: the text of
// assistant message i is what the conversation up to it adds to the
// rendering of the messages before it with the generation prompt (the
// template's "<|im_start|>assistant\n"), so its end-of-turn token is a
// target and the prompt of the turn is not. The spans are tokenized one by
// one, so a token never straddles a boundary. A template whose renderings
// are not prefixes of one another (one that drops earlier turns' reasoning,
// say) cannot be split so; the error says to use --chat-loss all.
func chatSample(t *tokenizer.Tokenizer, msgs []tokenizer.Message, all bool) (sample, error) {
	full, err := t.ApplyChatTemplate(msgs, false)
	if err != nil {
		return sample{}, fmt.Errorf("chat template: %w", err)
	}
	if all {
		return sample{ids: t.Encode(full, false)}, nil
	}
	var s sample
	add := func(text string, train bool) {
		ids := t.Encode(text, false)
		s.ids = append(s.ids, ids...)
		for range ids {
			s.mask = append(s.mask, train)
		}
	}
	pos := 0
	for i, m := range msgs {
		if m.Role != "assistant" {
			continue
		}
		pre, err := t.ApplyChatTemplate(msgs[:i], true)
		if err != nil {
			return sample{}, fmt.Errorf("chat template (messages before %d): %w", i, err)
		}
		upto, err := t.ApplyChatTemplate(msgs[:i+1], false)
		if err != nil {
			return sample{}, fmt.Errorf("chat template (messages to %d): %w", i, err)
		}
		if len(pre) < pos || !strings.HasPrefix(upto, pre) || !strings.HasPrefix(full, upto) || !strings.HasPrefix(pre, full[:pos]) {
			return sample{}, fmt.Errorf("the chat template does not render message %d (assistant) as an extension of the messages before it, so its tokens cannot be told apart; use --chat-loss all to train on every token: %w", i, ErrData)
		}
		add(full[pos:len(pre)], false)
		add(full[len(pre):len(upto)], true)
		pos = len(upto)
	}
	add(full[pos:], false)
	return s, nil
}

func encodeText(tok func() (*tokenizer.Tokenizer, error), s string, addSpecial bool) ([]int32, error) {
	t, err := tok()
	if err != nil {
		return nil, err
	}
	return t.Encode(s, addSpecial), nil
}

func listIDs(arr arrow.Array, i, vocab int) ([]int32, error) {
	var vals arrow.Array
	var lo, hi int64
	switch l := arr.(type) {
	case *array.List:
		lo, hi = l.ValueOffsets(i)
		vals = l.ListValues()
	case *array.LargeList:
		lo, hi = l.ValueOffsets(i)
		vals = l.ListValues()
	case *array.String:
		// JSONL keeps nested values as their JSON text.
		var ids []int64
		if err := json.Unmarshal([]byte(l.Value(i)), &ids); err != nil {
			return nil, fmt.Errorf("%.40q is not a list of token ids: %w", l.Value(i), ErrData)
		}
		out := make([]int32, len(ids))
		for j, v := range ids {
			if v < 0 || v >= int64(vocab) {
				return nil, fmt.Errorf("token %d is id %d, outside the vocabulary [0, %d): %w", j, v, vocab, ErrData)
			}
			out[j] = int32(v)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("type %s, want a list of token ids: %w", arr.DataType(), ErrData)
	}
	out := make([]int32, 0, hi-lo)
	for j := int(lo); j < int(hi); j++ {
		if vals.IsNull(j) {
			return nil, fmt.Errorf("token %d is null: %w", j-int(lo), ErrData)
		}
		var v int64
		switch a := vals.(type) {
		case *array.Int64:
			v = a.Value(j)
		case *array.Int32:
			v = int64(a.Value(j))
		case *array.Float64:
			v = int64(a.Value(j))
			if float64(v) != a.Value(j) {
				return nil, fmt.Errorf("token %d (%v) is not an integer: %w", j-int(lo), a.Value(j), ErrData)
			}
		default:
			return nil, fmt.Errorf("list of %s, want integer token ids: %w", vals.DataType(), ErrData)
		}
		if v < 0 || v >= int64(vocab) {
			return nil, fmt.Errorf("token %d is id %d, outside the vocabulary [0, %d): %w", j-int(lo), v, vocab, ErrData)
		}
		out = append(out, int32(v))
	}
	return out, nil
}

func messages(arr arrow.Array, i int) ([]tokenizer.Message, error) {
	if js, ok := arr.(*array.String); ok {
		var ms []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		}
		if err := json.Unmarshal([]byte(js.Value(i)), &ms); err != nil {
			return nil, fmt.Errorf("%.40q is not a list of {role, content}: %w", js.Value(i), ErrData)
		}
		out := make([]tokenizer.Message, len(ms))
		for j, m := range ms {
			out[j] = tokenizer.Message{Role: m.Role, Content: m.Content}
		}
		return out, nil
	}
	l, ok := arr.(*array.List)
	if !ok {
		return nil, fmt.Errorf("type %s, want a list of {role, content}: %w", arr.DataType(), ErrData)
	}
	st, ok := l.ListValues().(*array.Struct)
	if !ok {
		return nil, fmt.Errorf("type %s, want a list of {role, content}: %w", arr.DataType(), ErrData)
	}
	field := func(name string) (*array.String, error) {
		t := st.DataType().(*arrow.StructType)
		k, ok := t.FieldIdx(name)
		if !ok {
			return nil, fmt.Errorf("messages have no %q: %w", name, ErrData)
		}
		s, ok := st.Field(k).(*array.String)
		if !ok {
			return nil, fmt.Errorf("messages' %q is %s, want strings: %w", name, st.Field(k).DataType(), ErrData)
		}
		return s, nil
	}
	role, err := field("role")
	if err != nil {
		return nil, err
	}
	content, err := field("content")
	if err != nil {
		return nil, err
	}
	lo, hi := l.ValueOffsets(i)
	var out []tokenizer.Message
	for j := int(lo); j < int(hi); j++ {
		out = append(out, tokenizer.Message{Role: role.Value(j), Content: content.Value(j)})
	}
	return out, nil
}
