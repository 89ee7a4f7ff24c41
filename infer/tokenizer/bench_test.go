package tokenizer

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// benchText is about 1 MB of mixed text: corpus strings, prose made of
// corpus words, code and numbers, in a fixed pseudo-random order.
func benchText(tb testing.TB) string {
	corpus := loadCorpus(tb)
	words := strings.Fields(strings.Join(corpus, " "))
	rng := rand.New(rand.NewPCG(7, 11))
	var sb strings.Builder
	for sb.Len() < 1<<20 {
		switch rng.IntN(4) {
		case 0:
			sb.WriteString(corpus[rng.IntN(len(corpus))])
		case 1:
			fmt.Fprintf(&sb, " %d.%d ", rng.IntN(1e6), rng.IntN(100))
		default:
			for range 12 {
				sb.WriteString(words[rng.IntN(len(words))])
				sb.WriteByte(' ')
			}
			sb.WriteString(".\n")
		}
	}
	return sb.String()
}

// BenchmarkEncode reports MB/s on ~1 MB of mixed text with a warm word
// cache (the cache holds 10,000 words, as in tokenizers).
func BenchmarkEncode(b *testing.B) {
	text := benchText(b)
	for _, name := range realTokenizers {
		tk := loadFixture(b, name)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			var n int
			for b.Loop() {
				n = len(tk.Encode(text, false))
			}
			b.ReportMetric(float64(n), "tokens")
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	text := benchText(b)
	tk := loadFixture(b, "llama3")
	ids := tk.Encode(text, false)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		tk.Decode(ids, false)
	}
}
