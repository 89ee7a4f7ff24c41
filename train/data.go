package train

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/infer/tokenizer"
)

// tokenRows streams the dataset's rows as token sequences cut to
// MaxSeqLen, one record at a time: the ids column when the schema has it,
// else the text column tokenized (or, with Chat, the messages column
// rendered by the chat template). It stops at the first error.
func tokenRows(ctx context.Context, cfg Config, ds *dataset.Dataset, vocab int,
	tok func() (*tokenizer.Tokenizer, error)) iter.Seq2[[]int32, error] {
	return func(yield func([]int32, error) bool) {
		if _, err := decodeRows(ctx, cfg, ds, vocab, tok, yield); err != nil {
			yield(nil, err)
		}
	}
}

// decodeRows runs tokenRows' loop; it returns early, with a nil error,
// when yield asks to stop.
func decodeRows(ctx context.Context, cfg Config, ds *dataset.Dataset, vocab int,
	tok func() (*tokenizer.Tokenizer, error), yield func([]int32, error) bool) (int, error) {
	if ds == nil {
		return 0, fmt.Errorf("train: no dataset: %w", ErrData)
	}
	row := 0
	for rec, err := range ds.Iter(ctx) {
		if err != nil {
			return 0, fmt.Errorf("train: reading the data: %w", err)
		}
		sc := rec.Schema()
		col := cfg.IDsColumn
		if cfg.Chat {
			col = "messages"
		} else if len(sc.FieldIndices(col)) == 0 {
			col = cfg.TextColumn
		}
		idx := sc.FieldIndices(col)
		if len(idx) == 0 {
			names := make([]string, sc.NumFields())
			for i, f := range sc.Fields() {
				names[i] = f.Name
			}
			if cfg.Chat {
				return 0, fmt.Errorf("train: --chat needs a messages column; the data has columns %v: %w", names, ErrData)
			}
			return 0, fmt.Errorf("train: the data has neither an ids column %q (--ids-column) nor a text column %q (--text-column); its columns are %v: %w",
				cfg.IDsColumn, cfg.TextColumn, names, ErrData)
		}
		arr := rec.Column(idx[0])
		for i := range arr.Len() {
			if arr.IsNull(i) {
				return 0, fmt.Errorf("train: row %d: column %q is null: %w", row+i, col, ErrData)
			}
			var ids []int32
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
				s, err := t.ApplyChatTemplate(msgs, false)
				if err != nil {
					return 0, fmt.Errorf("train: row %d: chat template: %w", row+i, err)
				}
				ids = t.Encode(s, false)
			case col == cfg.IDsColumn:
				ids, err = listIDs(arr, i, vocab)
				if err != nil {
					return 0, fmt.Errorf("train: row %d: column %q: %w", row+i, col, err)
				}
			default:
				s, ok := arr.(*array.String)
				if !ok {
					if ls, ok2 := arr.(*array.LargeString); ok2 {
						ids, err = encodeText(tok, ls.Value(i))
					} else {
						return 0, fmt.Errorf("train: column %q is %s, want strings: %w", col, arr.DataType(), ErrData)
					}
				} else {
					ids, err = encodeText(tok, s.Value(i))
				}
				if err != nil {
					return 0, err
				}
			}
			if len(ids) > cfg.MaxSeqLen {
				ids = ids[:cfg.MaxSeqLen]
			}
			if !yield(ids, nil) {
				return row + i, nil
			}
		}
		row += arr.Len()
	}
	return row, nil
}

func encodeText(tok func() (*tokenizer.Tokenizer, error), s string) ([]int32, error) {
	t, err := tok()
	if err != nil {
		return nil, err
	}
	return t.Encode(s, true), nil
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
