package kernel

// radixPair is a sort key and the row it belongs to.
type radixPair struct {
	key uint64
	row uint32
}

// radixSort stably sorts a by key using b (as long as a) as scratch and
// returns a. It is a most-significant-digit radix sort: a byte position
// where all keys agree costs one counting pass, and once a bucket is small
// enough to stay in cache the remaining bytes are sorted least significant
// first. (Eight LSD passes over the whole input scatter into 256 far-apart
// streams each time, which thrashes the TLB on large inputs.)
func radixSort(a, b []radixPair) []radixPair {
	msdRadix(a, b[:len(a)], 7)
	return a
}

const (
	insertionMax = 32      // buckets this small are insertion sorted
	lsdMax       = 1 << 13 // buckets this small (128 KiB of pairs) go LSD
)

func msdRadix(a, b []radixPair, d int) {
	for ; d >= 0; d-- {
		n := len(a)
		if n <= insertionMax {
			insertionSort(a)
			return
		}
		if n <= lsdMax {
			lsdRadix(a, b, d)
			return
		}
		shift := uint(8 * d)
		var cnt [256]int
		for _, p := range a {
			cnt[byte(p.key>>shift)]++
		}
		if cnt[byte(a[0].key>>shift)] == n {
			continue // every key has this byte
		}
		var pos [256]int
		sum := 0
		for j, c := range cnt {
			pos[j] = sum
			sum += c
		}
		for _, p := range a {
			j := byte(p.key >> shift)
			b[pos[j]] = p
			pos[j]++
		}
		copy(a, b)
		if d == 0 {
			return
		}
		lo := 0
		for _, c := range cnt {
			if c > 1 {
				msdRadix(a[lo:lo+c], b[lo:lo+c], d-1)
			}
			lo += c
		}
		return
	}
}

// lsdRadix stably sorts a by the bytes 0..d of the keys, leaving the
// result in a.
func lsdRadix(a, b []radixPair, d int) {
	var counts [8][256]int
	for i := range a {
		k := a[i].key
		for e := 0; e <= d; e++ {
			counts[e][byte(k>>(8*e))]++
		}
	}
	n := len(a)
	src, dst := a, b
	for e := 0; e <= d; e++ {
		cnt := &counts[e]
		shift := uint(8 * e)
		if cnt[byte(src[0].key>>shift)] == n {
			continue
		}
		sum := 0
		for i, c := range cnt {
			cnt[i] = sum
			sum += c
		}
		for _, p := range src {
			j := byte(p.key >> shift)
			dst[cnt[j]] = p
			cnt[j]++
		}
		src, dst = dst, src
	}
	if &src[0] != &a[0] {
		copy(a, src)
	}
}

func insertionSort(a []radixPair) {
	for i := 1; i < len(a); i++ {
		x := a[i]
		j := i
		for j > 0 && a[j-1].key > x.key {
			a[j] = a[j-1]
			j--
		}
		a[j] = x
	}
}
