package tokenizer

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestStreamDecoder streams every corpus string token by token: the pieces
// are valid UTF-8 with no U+FFFD the text lacks, and add up to Decode.
func TestStreamDecoder(t *testing.T) {
	corpus := loadCorpus(t)
	prompt := "Question: say something.\nAnswer:"
	for _, name := range realTokenizers {
		tk := loadFixture(t, name)
		pids := tk.Encode(prompt, true)
		for _, s := range corpus {
			ids := tk.Encode(s, false)
			for _, withPrompt := range []bool{false, true} {
				var d *StreamDecoder
				want := tk.Decode(ids, false)
				if withPrompt {
					d = tk.NewDecoder(pids, false)
					all := tk.Decode(append(append([]int32(nil), pids...), ids...), false)
					want = strings.TrimPrefix(all, tk.Decode(pids, false))
				} else {
					d = tk.NewDecoder(nil, false)
				}
				var sb strings.Builder
				for _, id := range ids {
					piece := d.Add(id)
					if !utf8.ValidString(piece) || (strings.Contains(piece, "\uFFFD") && !strings.Contains(s, "\uFFFD")) {
						t.Errorf("%s: %q: piece %q is broken UTF-8", name, s, piece)
					}
					sb.WriteString(piece)
				}
				sb.WriteString(d.Flush())
				if sb.String() != want {
					t.Errorf("%s (prompt %v): streamed %q\n want %q", name, withPrompt, sb.String(), want)
				}
			}
		}
	}
}

// TestStreamHoldsIncompleteBytes feeds an emoji split over byte tokens.
func TestStreamHoldsIncompleteBytes(t *testing.T) {
	tk := loadTiny(t, nil)
	d := tk.NewDecoder(nil, true)
	var got []string
	for _, id := range []int32{1, 271, 3 + 0xF0, 3 + 0x9F, 3 + 0x98, 3 + 0x80, 276} {
		got = append(got, d.Add(id))
	}
	want := []string{"", "hello", "", "", "", "😀", " world"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("pieces %q, want %q", got, want)
		}
	}
	// A sequence that never completes comes out on Flush.
	d = tk.NewDecoder(nil, false)
	if p := d.Add(3 + 0xE2); p != "" {
		t.Errorf("Add = %q", p)
	}
	if p := d.Flush(); p != "\uFFFD" {
		t.Errorf("Flush = %q", p)
	}
}
