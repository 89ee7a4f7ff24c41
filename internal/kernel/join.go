package kernel

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// JoinKind says which left rows a join keeps.
type JoinKind int

const (
	// Inner keeps left rows with at least one matching right row.
	Inner JoinKind = iota
	// Left keeps every left row; unmatched ones get nulls for the right columns.
	Left
)

func (k JoinKind) String() string {
	switch k {
	case Inner:
		return "inner"
	case Left:
		return "left"
	}
	return fmt.Sprintf("JoinKind(%d)", int(k))
}

// HashJoin joins a probe (left) side against a build (right) side held in a
// hash table. Output rows hold every left column, then the right columns
// that are not join keys; a right column whose name a left column already
// has is renamed with the suffix "_right". A left row matching several
// right rows is repeated once per match, in build order. Null keys never
// match.
//
// Key pairs must have the same type, except that integers of any width and
// signedness compare by value, string matches large_string and dictionary
// strings, binary matches large_binary, and timestamps need only the same
// unit. Float keys match as in Spark: NaN equals NaN and -0 equals +0.
//
// Concurrency: call Build from one goroutine for every right batch. Once
// the last Build has returned, and it happens before the Probe calls (as
// after errgroup.Wait or a channel receive), any number of goroutines may
// call Probe at once. Build after the first Probe is an error.
type HashJoin struct {
	mem       memory.Allocator
	kind      JoinKind
	left      *arrow.Schema
	right     *arrow.Schema
	leftKeys  []int
	rightKeys []int
	rightOut  []int // right columns in the output
	out       *arrow.Schema
	skipLeft  []bool // per key: drop left rows whose uint64 key exceeds MaxInt64
	skipRight []bool
	keys      groupMap // distinct build keys
	keyOf     []uint32 // per build row: its key id
	refs      []uint64 // per build row: its batch and row
	builds    []arrow.RecordBatch
	views     []colView
	hashes    []uint64
	scratch   []uint64
	// Set up by the first Probe: the build rows grouped by key, in build
	// order; key id's rows are rows[start[id]:start[id+1]].
	start []int32
	rows  []uint64
	src   *source // over the build batches, set up by the first Probe
	// Right output columns Probe emits as dictionary arrays (see EmitDict):
	// per rightOut column, its build values as one array (nil: gather),
	// shared by every output batch; the first build row of each batch.
	dictWant []bool
	dicts    []arrow.Array
	dictOut  *arrow.Schema
	bstart   []int32
	sealErr  error
	sealOnce sync.Once
	pool     sync.Pool // of *probeScratch
	probed   atomic.Bool
	released atomic.Bool
}

// NewHashJoin checks the key columns and builds the output schema.
func NewHashJoin(mem memory.Allocator, left, right *arrow.Schema, leftKeys, rightKeys []string, kind JoinKind) (*HashJoin, error) {
	if kind != Inner && kind != Left {
		return nil, errorf(ErrInvalid, "join: unknown kind %v", kind)
	}
	if len(leftKeys) == 0 || len(leftKeys) != len(rightKeys) {
		return nil, errorf(ErrInvalid, "join: %d left keys %v and %d right keys %v; want the same number, at least one",
			len(leftKeys), leftKeys, len(rightKeys), rightKeys)
	}
	j := &HashJoin{mem: mem, kind: kind, left: left, right: right}
	kinds := make([]keyKind, len(leftKeys))
	isKey := map[int]bool{}
	for k := range leftKeys {
		li, ok := fieldIndex(left, leftKeys[k])
		if !ok {
			return nil, errorf(ErrColumn, "join: left key %q: no such column (have %s)", leftKeys[k], columnList(left))
		}
		ri, ok := fieldIndex(right, rightKeys[k])
		if !ok {
			return nil, errorf(ErrColumn, "join: right key %q: no such column (have %s)", rightKeys[k], columnList(right))
		}
		lt, rt := left.Field(li).Type, right.Field(ri).Type
		if keyKindOf(lt) == kindNone || keyKindOf(rt) == kindNone || joinClass(lt) != joinClass(rt) {
			return nil, errorf(ErrType, "join: left key %q (%s) cannot be compared with right key %q (%s)",
				leftKeys[k], typeName(lt), rightKeys[k], typeName(rt))
		}
		kinds[k] = keyKindOf(lt)
		// Integers compare as int64; a uint64 above MaxInt64 has the bits of
		// a negative int64, so against a signed key it can match nothing.
		j.skipLeft = append(j.skipLeft, lt.ID() == arrow.UINT64 && isSigned(rt.ID()))
		j.skipRight = append(j.skipRight, rt.ID() == arrow.UINT64 && isSigned(lt.ID()))
		j.leftKeys = append(j.leftKeys, li)
		j.rightKeys = append(j.rightKeys, ri)
		isKey[ri] = true
	}
	fields := make([]arrow.Field, 0, left.NumFields()+right.NumFields())
	taken := map[string]bool{}
	for i := range left.NumFields() {
		fields = append(fields, left.Field(i))
		taken[left.Field(i).Name] = true
	}
	for i := range right.NumFields() {
		if isKey[i] {
			continue
		}
		f := right.Field(i)
		for taken[f.Name] {
			f.Name += "_right"
		}
		taken[f.Name] = true
		if kind == Left {
			f.Nullable = true
		}
		fields = append(fields, f)
		j.rightOut = append(j.rightOut, i)
	}
	j.out = arrow.NewSchema(fields, nil)
	j.keys = newGroupMap(kinds)
	j.views = make([]colView, len(kinds))
	return j, nil
}

type probeScratch struct {
	views       []colView
	hashes      []uint64
	hscratch    []uint64
	ids         []int32
	left, right []uint64
}

// joinClass groups the key types that can be compared with each other.
func joinClass(dt arrow.DataType) string {
	dt = decoded(dt)
	switch id := dt.ID(); {
	case isSigned(id) || isUnsigned(id):
		return "int"
	case id == arrow.STRING || id == arrow.LARGE_STRING:
		return "string"
	case id == arrow.BINARY || id == arrow.LARGE_BINARY:
		return "binary"
	case id == arrow.TIMESTAMP:
		return "timestamp/" + dt.(*arrow.TimestampType).Unit.String()
	}
	return dt.String()
}

// OutputSchema is the schema of Probe's batches.
func (j *HashJoin) OutputSchema() *arrow.Schema { return j.out }

// loadKeys normalizes the key columns cols of rec into views and returns
// which rows can match nothing (a null key, or a uint64 key out of range).
func loadKeys(views []colView, rec arrow.RecordBatch, cols []int, skipBig []bool) []bool {
	n := int(rec.NumRows())
	var skip []bool
	for k, c := range cols {
		v := &views[k]
		v.load(rec.Column(c), forHash)
		if v.valid == nil && !skipBig[k] {
			continue
		}
		if skip == nil {
			skip = make([]bool, n)
		}
		for i := range n {
			if v.null(i) || (skipBig[k] && v.u[i] >= signBit) {
				skip[i] = true
			}
		}
	}
	return skip
}

// Build adds the rows of a right batch to the hash table. rec is retained
// until Release.
func (j *HashJoin) Build(rec arrow.RecordBatch) error {
	if j.released.Load() {
		return errorf(ErrState, "HashJoin.Build after Release")
	}
	if j.probed.Load() {
		return errorf(ErrState, "HashJoin.Build after Probe; build the whole right side first")
	}
	if err := checkBatch("HashJoin.Build", j.right, rec); err != nil {
		return err
	}
	n := int(rec.NumRows())
	if n == 0 {
		return nil
	}
	if len(j.refs)+n > math.MaxInt32 {
		return errorf(ErrInvalid, "HashJoin.Build: more than 2^31-1 build rows; partition the join")
	}
	skip := loadKeys(j.views, rec, j.rightKeys, j.skipRight)
	j.hashes, j.scratch = hashRows(j.views, n, j.hashes, j.scratch)
	b := len(j.builds)
	rec.Retain()
	j.builds = append(j.builds, rec)
	for i, h := range j.hashes {
		if skip != nil && skip[i] {
			continue
		}
		j.keyOf = append(j.keyOf, j.keys.insert(j.views, i, h))
		j.refs = append(j.refs, packRef(b, i))
	}
	return nil
}

// seal prepares the build side for probing: rows grouped by key, and the
// gather source over the build batches.
func (j *HashJoin) seal() {
	j.start = make([]int32, j.keys.len()+1)
	for _, id := range j.keyOf {
		j.start[id+1]++
	}
	for id := range j.keys.len() {
		j.start[id+1] += j.start[id]
	}
	pos := slices.Clone(j.start[:j.keys.len()])
	j.rows = make([]uint64, len(j.refs))
	for r, id := range j.keyOf {
		j.rows[pos[id]] = j.refs[r]
		pos[id]++
	}
	j.keyOf, j.refs = nil, nil
	j.src = newSource(j.mem, j.right, j.builds)
	if j.dictWant != nil && len(j.rows) <= maxDictRows {
		j.sealErr = j.sealDicts()
	}
}

// maxDictRows bounds the build side whose columns Probe emits as
// dictionaries: every output batch refers to (and is accounted for) the
// whole dictionary, and a consumer keys a cache by dictionary entry.
const maxDictRows = 1 << 20

// EmitDict asks Probe to return the named right output columns of string
// or binary type as dictionary arrays instead of copying their bytes: the
// indices point into the build side's values, one dictionary shared by
// every output batch; a row is null where it is unmatched (Left) or its
// build value is null. Call it before the first Probe. It is a hint: other
// names are ignored, and a build side of more than 2^20 rows is gathered as
// usual. Probe's batches then have OutputSchema's fields, with the
// dictionary type for those columns.
func (j *HashJoin) EmitDict(names []string) error {
	if j.probed.Load() {
		return errorf(ErrState, "HashJoin.EmitDict after Probe")
	}
	want := make([]bool, len(j.rightOut))
	some := false
	fields := slices.Clone(j.out.Fields())
	nl := j.left.NumFields()
	for k, c := range j.rightOut {
		f := &fields[nl+k]
		switch j.right.Field(c).Type.ID() {
		case arrow.STRING, arrow.LARGE_STRING, arrow.BINARY, arrow.LARGE_BINARY:
		default:
			continue
		}
		if slices.Contains(names, f.Name) {
			want[k], some = true, true
			f.Type = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: f.Type}
		}
	}
	if !some {
		j.dictWant, j.dictOut = nil, nil
		return nil
	}
	j.dictWant, j.dictOut = want, arrow.NewSchema(fields, nil)
	return nil
}

// sealDicts concatenates the build values of the dictionary columns.
func (j *HashJoin) sealDicts() error {
	j.dicts = make([]arrow.Array, len(j.rightOut))
	j.bstart = make([]int32, len(j.builds))
	var n int32
	for b, rec := range j.builds {
		j.bstart[b] = n
		n += int32(rec.NumRows())
	}
	for k, c := range j.rightOut {
		if !j.dictWant[k] {
			continue
		}
		chunks := make([]arrow.Array, len(j.builds))
		for b, rec := range j.builds {
			chunks[b] = rec.Column(c)
		}
		switch len(chunks) {
		case 0:
			j.dicts[k] = emptyArray(j.mem, j.right.Field(c).Type)
		case 1:
			chunks[0].Retain()
			j.dicts[k] = chunks[0]
		default:
			d, err := array.Concatenate(chunks, j.mem)
			if err != nil {
				releaseAll(j.dicts)
				j.dicts = nil
				return errorf(ErrInvalid, "join: right column %q as a dictionary: %v", j.right.Field(c).Name, err)
			}
			j.dicts[k] = d
		}
	}
	return nil
}

// dictColumns builds the dictionary arrays of the right columns for refs.
// cols[k] is set for each dictionary column k of rightOut.
func (j *HashJoin) dictColumns(refs []uint64, cols []arrow.Array) {
	n := len(refs)
	idx := memory.NewResizableBuffer(j.mem)
	idx.Resize(4 * n)
	codes := arrow.Int32Traits.CastFromBytes(idx.Bytes())
	unmatched := false
	for i, r := range refs {
		if r == nullRef {
			codes[i], unmatched = 0, true
			continue
		}
		codes[i] = j.bstart[r>>32] + int32(uint32(r))
	}
	var shared *array.Int32 // the indices of the columns without nulls
	for k, d := range j.dicts {
		if d == nil {
			continue
		}
		var ind *array.Int32
		if !unmatched && d.NullN() == 0 {
			if shared == nil {
				shared = int32Array(n, nil, idx, 0)
			}
			ind = shared
			ind.Retain()
		} else {
			bm := memory.NewResizableBuffer(j.mem)
			bm.Resize((n + 7) / 8)
			bits := bm.Bytes()
			clear(bits)
			nulls := 0
			for i, r := range refs {
				if r != nullRef && d.IsValid(int(codes[i])) {
					bits[i>>3] |= 1 << (i & 7)
				} else {
					nulls++
				}
			}
			ind = int32Array(n, bm, idx, nulls)
			bm.Release()
		}
		cols[k] = array.NewDictionaryArray(j.dictOut.Field(j.left.NumFields()+k).Type, ind, d)
		ind.Release()
	}
	if shared != nil {
		shared.Release()
	}
	idx.Release()
}

// Probe joins a left batch against everything built and returns the joined
// rows as a batch owned by the caller (possibly empty). rec stays owned by
// the caller. Probe is safe for concurrent use; see HashJoin.
func (j *HashJoin) Probe(rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	if j.released.Load() {
		return nil, errorf(ErrState, "HashJoin.Probe after Release")
	}
	if !j.probed.Load() {
		j.probed.Store(true)
	}
	if err := checkBatch("HashJoin.Probe", j.left, rec); err != nil {
		return nil, err
	}
	n := int(rec.NumRows())
	j.sealOnce.Do(j.seal)
	if j.sealErr != nil {
		return nil, j.sealErr
	}
	// Per-call scratch, pooled so concurrent probes neither share nor
	// reallocate it.
	sc, _ := j.pool.Get().(*probeScratch)
	if sc == nil {
		sc = &probeScratch{views: make([]colView, len(j.leftKeys))}
	}
	defer j.pool.Put(sc)
	skip := loadKeys(sc.views, rec, j.leftKeys, j.skipLeft)
	var hashes []uint64
	hashes, sc.hscratch = hashRows(sc.views, n, sc.hashes, sc.hscratch)
	sc.hashes = hashes
	ids := grow(sc.ids, n)
	sc.ids = ids
	j.keys.findAll(sc.views, hashes, skip, ids)
	leftRows, rightRefs := sc.left[:0], sc.right[:0]
	defer func() { sc.left, sc.right = leftRows, rightRefs }()
	identity := true // every left row exactly once, in order
	for i, id := range ids {
		if id < 0 {
			if j.kind == Left {
				leftRows = append(leftRows, uint64(i))
				rightRefs = append(rightRefs, nullRef)
			} else {
				identity = false
			}
			continue
		}
		matches := j.rows[j.start[id]:j.start[id+1]]
		if len(matches) != 1 {
			identity = false
		}
		for _, r := range matches {
			leftRows = append(leftRows, uint64(i))
			rightRefs = append(rightRefs, r)
		}
	}
	cols := make([]arrow.Array, 0, j.out.NumFields())
	fail := func(err error) (arrow.RecordBatch, error) {
		releaseAll(cols)
		return nil, err
	}
	for c := range j.left.NumFields() {
		if identity {
			col := rec.Column(c)
			col.Retain()
			cols = append(cols, col)
			continue
		}
		col, err := gather(j.mem, j.left.Field(c).Type, []arrow.Array{rec.Column(c)}, leftRows)
		if err != nil {
			return fail(err)
		}
		cols = append(cols, col)
	}
	schema := j.out
	var dcols []arrow.Array
	if j.dicts != nil {
		schema = j.dictOut
		dcols = make([]arrow.Array, len(j.rightOut))
		j.dictColumns(rightRefs, dcols)
	}
	for k, c := range j.rightOut {
		if dcols != nil && dcols[k] != nil {
			cols = append(cols, dcols[k])
			dcols[k] = nil
			continue
		}
		col, err := j.src.column(j.mem, c, rightRefs)
		if err != nil {
			releaseAll(dcols)
			return fail(err)
		}
		cols = append(cols, col)
	}
	out := array.NewRecordBatch(schema, cols, int64(len(leftRows)))
	releaseAll(cols)
	return out, nil
}

func int32Array(n int, valid, values *memory.Buffer, nulls int) *array.Int32 {
	d := array.NewData(arrow.PrimitiveTypes.Int32, n, []*memory.Buffer{valid, values}, nil, nulls, 0)
	defer d.Release()
	return array.NewInt32Data(d)
}

// Release frees the retained build batches. No other method may run
// concurrently with or after it.
func (j *HashJoin) Release() {
	if j.released.Swap(true) {
		return
	}
	if j.src != nil {
		j.src.release()
	}
	releaseAll(j.dicts)
	releaseBatches(j.builds)
	j.builds, j.src, j.dicts = nil, nil, nil
	j.keys = groupMap{}
	j.keyOf, j.refs, j.start, j.rows = nil, nil, nil, nil
}
