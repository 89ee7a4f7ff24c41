package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// StreamDecoder turns generated ids into text as they come, never emitting
// a broken UTF-8 sequence: like vLLM's detokenize_incrementally, it decodes
// a short window of tokens before and after the read offset and emits the
// difference once it does not end in U+FFFD. Decoding a window rather than
// single tokens keeps the spaces that SentencePiece decoders strip from a
// text's first token. It is not safe for concurrent use.
type StreamDecoder struct {
	t           *Tokenizer
	skipSpecial bool
	ids         []int32
	prefix      int // start of the window decoded for context
	read        int // ids before read have been emitted
}

// initialWindow is vLLM's INITIAL_INCREMENTAL_DETOKENIZATION_OFFSET.
const initialWindow = 5

// NewDecoder starts a stream after prompt, of which only the last few ids
// are kept as context.
func (t *Tokenizer) NewDecoder(prompt []int32, skipSpecial bool) *StreamDecoder {
	keep := prompt[max(0, len(prompt)-initialWindow-1):]
	d := &StreamDecoder{t: t, skipSpecial: skipSpecial, ids: append([]int32(nil), keep...)}
	d.read = len(d.ids)
	d.prefix = max(0, d.read-initialWindow)
	return d
}

// Add appends one generated id and returns the text that is now complete,
// often "" while a multi-byte char is spread over several tokens.
func (d *StreamDecoder) Add(id int32) string {
	d.ids = append(d.ids, id)
	return d.emit(false)
}

// Flush returns what Add held back, even an incomplete sequence (as U+FFFD),
// for the end of a stream.
func (d *StreamDecoder) Flush() string { return d.emit(true) }

func (d *StreamDecoder) emit(force bool) string {
	prefixText := d.t.Decode(d.ids[d.prefix:d.read], d.skipSpecial)
	newText := d.t.Decode(d.ids[d.prefix:], d.skipSpecial)
	if len(newText) <= len(prefixText) && !force || strings.HasSuffix(newText, "\uFFFD") && !force {
		return ""
	}
	var out string
	if strings.HasPrefix(newText, prefixText) {
		out = newText[len(prefixText):]
	} else {
		// Python slices by chars: skip as many chars as prefixText has.
		n, i := utf8.RuneCountInString(prefixText), 0
		for ; n > 0 && i < len(newText); n-- {
			_, size := utf8.DecodeRuneInString(newText[i:])
			i += size
		}
		out = newText[i:]
	}
	d.prefix, d.read = d.read, len(d.ids)
	// Drop ids that no window will read again.
	if d.prefix > 64 {
		d.ids = append(d.ids[:0], d.ids[d.prefix:]...)
		d.read -= d.prefix
		d.prefix = 0
	}
	return out
}
