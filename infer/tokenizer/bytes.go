package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// byteToRune is GPT-2's bytes_to_unicode table: printable Latin-1 bytes map to
// themselves, the rest to U+0100 onwards, so every byte is a visible char.
var byteToRune [256]rune

// runeToByte inverts byteToRune; -1 where a rune is not a mapped byte.
var runeToByte [324]int16

// byteToStr caches the UTF-8 form of byteToRune.
var byteToStr [256]string

func init() {
	for i := range runeToByte {
		runeToByte[i] = -1
	}
	n := rune(0)
	for b := 0; b < 256; b++ {
		printable := (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
		if printable {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = 256 + n
			n++
		}
		runeToByte[byteToRune[b]] = int16(b)
		byteToStr[b] = string(byteToRune[b])
	}
}

// byteLevelEncode maps raw bytes to their byte-level chars.
func byteLevelEncode(s string) string {
	var sb strings.Builder
	sb.Grow(2 * len(s))
	for i := 0; i < len(s); i++ {
		sb.WriteString(byteToStr[s[i]])
	}
	return sb.String()
}

// byteLevelDecode maps byte-level chars back to raw bytes. ok is false when a
// char is not in the table; the caller then keeps the token's own bytes, as
// the ByteLevel decoder does for added tokens such as "<|im_start|>".
func byteLevelDecode(dst []byte, tok string) ([]byte, bool) {
	start := len(dst)
	for _, r := range tok {
		if r < 0 || int(r) >= len(runeToByte) || runeToByte[r] < 0 {
			return dst[:start], false
		}
		dst = append(dst, byte(runeToByte[r]))
	}
	return dst, true
}

// lossyUTF8 converts b to a string the way Rust's String::from_utf8_lossy
// does: each maximal invalid subsequence becomes one U+FFFD. Go's own
// conversions differ (one U+FFFD per byte, or per run), and the ByteLevel
// decoder's output must match the reference byte for byte.
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || size > 1 {
			sb.Write(b[i : i+size])
			i += size
			continue
		}
		i += invalidLen(b[i:])
		sb.WriteString("\uFFFD")
	}
	return sb.String()
}

// invalidLen is the length of the maximal prefix of b (which starts with an
// invalid sequence) that could begin a valid UTF-8 sequence, at least 1.
func invalidLen(b []byte) int {
	c := b[0]
	var width int
	var lo, hi byte = 0x80, 0xBF
	switch {
	case c >= 0xC2 && c <= 0xDF:
		width = 2
	case c == 0xE0:
		width, lo = 3, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		width = 3
	case c == 0xED:
		width, hi = 3, 0x9F
	case c == 0xF0:
		width, lo = 4, 0x90
	case c >= 0xF1 && c <= 0xF3:
		width = 4
	case c == 0xF4:
		width, hi = 4, 0x8F
	default:
		return 1
	}
	if len(b) < 2 || b[1] < lo || b[1] > hi {
		return 1
	}
	n := 2
	for n < width && n < len(b) && b[n] >= 0x80 && b[n] <= 0xBF {
		n++
	}
	return n
}
