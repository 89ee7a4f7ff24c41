package kernel

import (
	"bytes"
	"encoding/binary"
	"math/bits"

	"github.com/zeebo/xxh3"
)

// Row hashes are deterministic (no per-process seed) so that HashPartition
// sends a key to the same part on every worker of a distributed shuffle.
const (
	hashSeed = 0x2545F4914F6CDD1D
	hashMul  = 0x9E3779B97F4A7C15
	nullHash = 0x5BD1E9955BD1E995
)

func mix(h, x uint64) uint64 { return (bits.RotateLeft64(h, 23) ^ x) * hashMul }

// fmix64 is MurmurHash3's finalizer: every input bit affects every output
// bit, so the table can index by the low bits and tag with the high ones.
func fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// hashBytes hashes a byte string. Keys are mostly short, so strings of up
// to 16 bytes are read as two (possibly overlapping) words and folded with
// one 128-bit multiply, as wyhash does; longer ones go to xxh3.
func hashBytes(b []byte) uint64 {
	n := len(b)
	var a, c uint64
	switch {
	case n > 16:
		return xxh3.Hash(b)
	case n >= 8:
		a, c = binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[n-8:])
	case n >= 4:
		a, c = uint64(binary.LittleEndian.Uint32(b)), uint64(binary.LittleEndian.Uint32(b[n-4:]))
	case n > 0:
		a = uint64(b[0])<<16 | uint64(b[n>>1])<<8 | uint64(b[n-1])
	}
	hi, lo := bits.Mul64(a^0xa0761d6478bd642f, c^0xe7037ed1a0b428db^uint64(n))
	return hi ^ lo
}

// hashRows hashes the key of each of n rows into dst, column by column.
// The views must be loaded forHash.
func hashRows(views []colView, n int, dst []uint64, scratch []uint64) ([]uint64, []uint64) {
	dst = grow(dst, n)
	if len(views) == 0 {
		for i := range dst {
			dst[i] = fmix64(hashSeed)
		}
		return dst, scratch
	}
	for c := range views {
		v := &views[c]
		var x []uint64 // the column's word per row (fixed) or hash (bytes)
		switch {
		case v.kind == kindFixed:
			x = v.u[:n]
		case v.codes != nil:
			// Dictionary: hash each distinct value once.
			scratch = grow(scratch, len(v.dict)+n)
			dh, rows := scratch[:len(v.dict)], scratch[len(v.dict):]
			for j, b := range v.dict {
				dh[j] = hashBytes(b)
			}
			for i, code := range v.codes[:n] {
				rows[i] = dh[code]
			}
			x = rows
		default:
			scratch = grow(scratch, n)
			for i, b := range v.b[:n] {
				scratch[i] = hashBytes(b)
			}
			x = scratch[:n]
		}
		if v.valid != nil {
			if v.kind == kindFixed { // leave the view's words alone
				scratch = append(scratch[:0], x...)
				x = scratch
			}
			for i := range x {
				if v.null(i) {
					x[i] = nullHash
				}
			}
		}
		last := c == len(views)-1
		switch {
		case c == 0 && last:
			for i, w := range x {
				dst[i] = fmix64(mix(hashSeed, w))
			}
		case c == 0:
			for i, w := range x {
				dst[i] = mix(hashSeed, w)
			}
		case last:
			for i, w := range x {
				dst[i] = fmix64(mix(dst[i], w))
			}
		default:
			for i, w := range x {
				dst[i] = mix(dst[i], w)
			}
		}
	}
	return dst, scratch
}

// keyStore holds one copy of each distinct key, column by column, with the
// key's hash: group keys of a HashAgg, distinct build keys of a HashJoin.
type keyStore struct {
	cols   []storeCol
	hashes []uint64
}

type storeCol struct {
	kind  keyKind
	u     []uint64
	data  []byte
	offs  []int // key g's bytes are data[offs[g]:offs[g+1]]
	nulls []bool
}

func newKeyStore(kinds []keyKind) keyStore {
	s := keyStore{cols: make([]storeCol, len(kinds))}
	for c, k := range kinds {
		s.cols[c].kind = k
		if k == kindBytes {
			s.cols[c].offs = []int{0}
		}
	}
	return s
}

func (s *keyStore) len() int { return len(s.hashes) }

func (c *storeCol) bytes(g int) []byte { return c.data[c.offs[g]:c.offs[g+1]] }

// add appends row i of views as a new key.
func (s *keyStore) add(views []colView, i int, h uint64) {
	for c := range s.cols {
		sc, v := &s.cols[c], &views[c]
		null := v.null(i)
		sc.nulls = append(sc.nulls, null)
		switch sc.kind {
		case kindFixed:
			sc.u = append(sc.u, v.u[i]) // 0 for nulls
		case kindBytes:
			if !null {
				sc.data = append(sc.data, v.bytes(i)...)
			}
			sc.offs = append(sc.offs, len(sc.data))
		}
	}
	s.hashes = append(s.hashes, h)
}

// addFrom appends key g of o (which has the same column kinds).
func (s *keyStore) addFrom(o *keyStore, g int) {
	for c := range s.cols {
		sc, oc := &s.cols[c], &o.cols[c]
		sc.nulls = append(sc.nulls, oc.nulls[g])
		switch sc.kind {
		case kindFixed:
			sc.u = append(sc.u, oc.u[g])
		case kindBytes:
			sc.data = append(sc.data, oc.bytes(g)...)
			sc.offs = append(sc.offs, len(sc.data))
		}
	}
	s.hashes = append(s.hashes, o.hashes[g])
}

// equal reports whether row i of views equals key g; null equals null.
func (s *keyStore) equal(views []colView, i, g int) bool {
	for c := range s.cols {
		sc, v := &s.cols[c], &views[c]
		null := v.null(i)
		if null != sc.nulls[g] {
			return false
		}
		if null {
			continue
		}
		switch sc.kind {
		case kindFixed:
			if sc.u[g] != v.u[i] {
				return false
			}
		case kindBytes:
			if !bytes.Equal(sc.bytes(g), v.bytes(i)) {
				return false
			}
		}
	}
	return true
}

func (s *keyStore) equalStore(o *keyStore, og, g int) bool {
	for c := range s.cols {
		sc, oc := &s.cols[c], &o.cols[c]
		if sc.nulls[g] != oc.nulls[og] {
			return false
		}
		if sc.nulls[g] {
			continue
		}
		switch sc.kind {
		case kindFixed:
			if sc.u[g] != oc.u[og] {
				return false
			}
		case kindBytes:
			if !bytes.Equal(sc.bytes(g), oc.bytes(og)) {
				return false
			}
		}
	}
	return true
}

// groupMap maps keys to dense ids 0, 1, 2, ... in first-seen order. It is an
// open-addressing table of words holding the upper half of the key's hash
// (to skip most unequal keys without touching the store) and id+1.
type groupMap struct {
	slots []uint64
	keys  keyStore
}

func newGroupMap(kinds []keyKind) groupMap {
	return groupMap{slots: make([]uint64, 64), keys: newKeyStore(kinds)}
}

func (m *groupMap) len() int { return m.keys.len() }

func slotOf(h uint64, id int) uint64 { return h&^0xFFFFFFFF | uint64(id+1) }

func (m *groupMap) rehash() {
	m.slots = make([]uint64, 2*len(m.slots))
	mask := uint64(len(m.slots) - 1)
	for id, h := range m.keys.hashes {
		p := h & mask
		for m.slots[p] != 0 {
			p = (p + 1) & mask
		}
		m.slots[p] = slotOf(h, id)
	}
}

// insert returns the id of row i's key, adding the key if it is new.
func (m *groupMap) insert(views []colView, i int, h uint64) uint32 {
	if 2*(m.keys.len()+1) > len(m.slots) {
		m.rehash()
	}
	mask := uint64(len(m.slots) - 1)
	tag := h &^ 0xFFFFFFFF
	for p := h & mask; ; p = (p + 1) & mask {
		s := m.slots[p]
		if s == 0 {
			id := m.keys.len()
			m.keys.add(views, i, h)
			m.slots[p] = slotOf(h, id)
			return uint32(id)
		}
		if s&^0xFFFFFFFF == tag {
			if id := int(uint32(s)) - 1; m.keys.equal(views, i, id) {
				return uint32(id)
			}
		}
	}
}

// find returns the id of row i's key, or -1. It does not modify m, so any
// number of goroutines may call it at once while nobody inserts.
func (m *groupMap) find(views []colView, i int, h uint64) int {
	mask := uint64(len(m.slots) - 1)
	tag := h &^ 0xFFFFFFFF
	for p := h & mask; ; p = (p + 1) & mask {
		s := m.slots[p]
		if s == 0 {
			return -1
		}
		if s&^0xFFFFFFFF == tag {
			if id := int(uint32(s)) - 1; m.keys.equal(views, i, id) {
				return id
			}
		}
	}
}

// insertFrom returns the id of key og of o, adding it if it is new.
func (m *groupMap) insertFrom(o *keyStore, og int) uint32 {
	if 2*(m.keys.len()+1) > len(m.slots) {
		m.rehash()
	}
	h := o.hashes[og]
	mask := uint64(len(m.slots) - 1)
	tag := h &^ 0xFFFFFFFF
	for p := h & mask; ; p = (p + 1) & mask {
		s := m.slots[p]
		if s == 0 {
			id := m.keys.len()
			m.keys.addFrom(o, og)
			m.slots[p] = slotOf(h, id)
			return uint32(id)
		}
		if s&^0xFFFFFFFF == tag {
			if id := int(uint32(s)) - 1; m.keys.equalStore(o, og, id) {
				return uint32(id)
			}
		}
	}
}

// insertAll sets ids[i] to the id of row i's key, adding new keys. The
// common shapes (one key column without nulls) probe inline instead of
// going through insert and equal for every row.
func (m *groupMap) insertAll(views []colView, hashes []uint64, ids []uint32, dictIDs []int32) []int32 {
	if len(views) != 1 || views[0].valid != nil {
		for i, h := range hashes {
			ids[i] = m.insert(views, i, h)
		}
		return dictIDs
	}
	v, sc := &views[0], &m.keys.cols[0]
	switch {
	case v.kind == kindFixed:
		for i, h := range hashes {
			x, tag := v.u[i], h&^0xFFFFFFFF
			mask := uint64(len(m.slots) - 1)
			for p := h & mask; ; p = (p + 1) & mask {
				s := m.slots[p]
				if s == 0 {
					ids[i] = m.insert(views, i, h)
					break
				}
				if id := uint32(s) - 1; s&^0xFFFFFFFF == tag && sc.u[id] == x && !sc.nulls[id] {
					ids[i] = id
					break
				}
			}
		}
	case v.codes != nil:
		// Each dictionary entry is looked up once, when a row first uses it.
		dictIDs = grow(dictIDs, len(v.dict))
		for j := range dictIDs {
			dictIDs[j] = -1
		}
		for i, code := range v.codes[:len(hashes)] {
			id := dictIDs[code]
			if id < 0 {
				id = int32(m.insert(views, i, hashes[i]))
				dictIDs[code] = id
			}
			ids[i] = uint32(id)
		}
	default:
		for i, h := range hashes {
			b, tag := v.b[i], h&^0xFFFFFFFF
			mask := uint64(len(m.slots) - 1)
			for p := h & mask; ; p = (p + 1) & mask {
				s := m.slots[p]
				if s == 0 {
					ids[i] = m.insert(views, i, h)
					break
				}
				if id := uint32(s) - 1; s&^0xFFFFFFFF == tag && !sc.nulls[id] &&
					string(sc.data[sc.offs[id]:sc.offs[id+1]]) == string(b) {
					ids[i] = id
					break
				}
			}
		}
	}
	return dictIDs
}

// insertDict is insertAll for dictionary-encoded key columns without nulls
// that share one index array (one column, or a join's build columns):
// rows are never hashed, only the dictionary entries a row uses (with the
// hash hashRows would give the same strings). dictIDs caches entry code's
// key id, or -1; keep says it still holds for these dictionaries (the ids
// of a groupMap never change).
func (m *groupMap) insertDict(views []colView, ids []uint32, dictIDs []int32, keep bool) []int32 {
	v := &views[0]
	if !keep || len(dictIDs) != len(v.dict) {
		dictIDs = grow(dictIDs, len(v.dict))
		for j := range dictIDs {
			dictIDs[j] = -1
		}
	}
	for i, code := range v.codes[:len(ids)] {
		id := dictIDs[code]
		if id < 0 {
			h := uint64(hashSeed)
			for c := range views {
				h = mix(h, hashBytes(views[c].dict[code]))
			}
			id = int32(m.insert(views, i, fmix64(h)))
			dictIDs[code] = id
		}
		ids[i] = uint32(id)
	}
	return dictIDs
}

// sharedCodes reports whether insertDict applies to views: every one a
// dictionary without nulls, all reading the same indices.
func sharedCodes(views []colView) bool {
	v := &views[0]
	if v.codes == nil || v.valid != nil || len(v.codes) == 0 {
		return false
	}
	for c := range views[1:] {
		w := &views[1+c]
		if w.codes == nil || w.valid != nil || len(w.codes) != len(v.codes) || &w.codes[0] != &v.codes[0] {
			return false
		}
	}
	return true
}

// findAll sets ids[i] to the id of row i's key, or -1, skipping rows
// where skip[i] (skip may be nil). Like find it does not modify m.
func (m *groupMap) findAll(views []colView, hashes []uint64, skip []bool, ids []int32) {
	if len(views) != 1 || skip != nil || views[0].valid != nil || views[0].codes != nil {
		for i, h := range hashes {
			ids[i] = -1
			if skip == nil || !skip[i] {
				ids[i] = int32(m.find(views, i, h))
			}
		}
		return
	}
	v, sc := &views[0], &m.keys.cols[0]
	mask := uint64(len(m.slots) - 1)
	if v.kind == kindFixed {
		for i, h := range hashes {
			ids[i] = -1
			x, tag := v.u[i], h&^0xFFFFFFFF
			for p := h & mask; ; p = (p + 1) & mask {
				s := m.slots[p]
				if s == 0 {
					break
				}
				if id := uint32(s) - 1; s&^0xFFFFFFFF == tag && sc.u[id] == x && !sc.nulls[id] {
					ids[i] = int32(id)
					break
				}
			}
		}
		return
	}
	for i, h := range hashes {
		ids[i] = -1
		b, tag := v.b[i], h&^0xFFFFFFFF
		for p := h & mask; ; p = (p + 1) & mask {
			s := m.slots[p]
			if s == 0 {
				break
			}
			if id := uint32(s) - 1; s&^0xFFFFFFFF == tag && !sc.nulls[id] &&
				string(sc.data[sc.offs[id]:sc.offs[id+1]]) == string(b) {
				ids[i] = int32(id)
				break
			}
		}
	}
}
