package coordinator

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrDamagedStore is what Start returns for a log store it will not open:
// empty, truncated, garbled, or emptied beside the snapshots it had.
var ErrDamagedStore = errors.New("coordinator: damaged Raft store")

// damaged is the error for file, with what the operator can do.
func damaged(file, what string) error {
	return fmt.Errorf("%w: %s %s: the node refuses to start over it (it would start with an empty state and diverge): "+
		"restore the data directory from a backup, or remove it and add the node back as a new one "+
		"(sluice coordinator --join API_URL with a new --node-id, after `POST /v1/cluster/remove` of the old id)",
		ErrDamagedStore, file, what)
}

// checkStore checks the log store under dir before it is opened: bbolt
// would take a 0-byte file for a new database and panic inside on a
// truncated or garbled one. A store that does not exist yet is fine,
// unless the node's marker (InitFile) says it held Raft state: then a
// missing or emptied store is refused, snapshots or not.
func checkStore(dir, kind string) error {
	if kind == "raftlog" {
		// raftlog.Open checks its own records; here only the marker.
		stable := filepath.Join(dir, "raftlog", "stable")
		if _, err := os.Stat(stable); errors.Is(err, os.ErrNotExist) && exists(filepath.Join(dir, InitFile)) &&
			!exists(filepath.Join(dir, "raft.db")) && !exists(filepath.Join(dir, "wal")) {
			return damaged(stable, "is missing, but "+filepath.Join(dir, InitFile)+" says this node held Raft state")
		}
		return nil
	}
	file := filepath.Join(dir, "raft.db")
	if kind == "wal" {
		file = filepath.Join(dir, "wal", "wal-meta.db")
	}
	marker := filepath.Join(dir, InitFile)
	_, err := os.Stat(marker)
	initialized := err == nil
	fi, err := os.Stat(file)
	if errors.Is(err, os.ErrNotExist) {
		other := filepath.Join(dir, "wal")
		if kind == "wal" {
			other = filepath.Join(dir, "raft.db")
		}
		if exists(other) || exists(filepath.Join(dir, "raftlog")) {
			return nil // another kind's store: openLogStore says so
		}
		if initialized {
			return damaged(file, "is missing, but "+marker+" says this node held Raft state")
		}
		if kind == "bolt" || kind == "" {
			return checkNoSnapshots(dir, file, "is missing")
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	if fi.Size() == 0 {
		return damaged(file, "is empty (0 bytes)")
	}
	if err := checkBoltMeta(file, fi.Size()); err != nil {
		return err
	}
	return checkBoltPages(dir, file, kind, marker, initialized)
}

// InitFile is the marker a coordinator writes in its data directory once
// its Raft log holds an entry (at bootstrap, or once a join replicated to
// it): from then on a missing or emptied log store is damage, not a new
// node.
const InitFile = "raft-initialized"

// markInitialized writes InitFile once the log holds an entry.
func (c *Coordinator) markInitialized() {
	if c.marked.Load() || c.raft.LastIndex() == 0 {
		return
	}
	file := filepath.Join(c.cfg.DataDir, InitFile)
	if _, err := os.Stat(file); err != nil {
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err == nil {
			_, err = f.WriteString("this coordinator's Raft store holds state; a missing or empty store beside this file is refused at start\n")
			err = errors.Join(err, f.Sync(), f.Close())
		}
		if err != nil {
			c.log.Warn("writing the store's marker", "file", file, "err", err)
			return
		}
	}
	c.marked.Store(true)
}

// checkNoSnapshots refuses a missing or empty log beside snapshots: the
// node was part of a cluster and lost its log.
func checkNoSnapshots(dir, file, what string) error {
	snaps, _ := os.ReadDir(filepath.Join(dir, "snapshots"))
	if len(snaps) > 0 {
		return damaged(file, what+" but "+filepath.Join(dir, "snapshots")+" holds snapshots")
	}
	return nil
}

// bbolt's meta page: a 16-byte page header, then magic, version, page
// size, flags (4 bytes each), the root bucket (16), the freelist page,
// the high-water page id and the transaction id (8 each), and the
// FNV-64a checksum of all that.
const (
	boltMagic    = 0xED0CDAED
	boltVersion  = 2
	boltMetaAt   = 16
	boltMetaSize = 56
)

type boltMeta struct {
	pageSize uint32
	pgid     uint64
	txid     uint64
}

func readBoltMeta(page []byte) (boltMeta, bool) {
	if len(page) < boltMetaAt+boltMetaSize+8 {
		return boltMeta{}, false
	}
	m := page[boltMetaAt:]
	le := binary.LittleEndian
	h := fnv.New64a()
	h.Write(m[:boltMetaSize])
	if le.Uint32(m) != boltMagic || le.Uint32(m[4:]) != boltVersion || le.Uint64(m[boltMetaSize:]) != h.Sum64() {
		return boltMeta{}, false
	}
	return boltMeta{pageSize: le.Uint32(m[8:]), pgid: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}, true
}

// checkBoltMeta checks both meta pages and that the file holds every page
// the newer valid one counts.
func checkBoltMeta(file string, size int64) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	defer f.Close()
	page := make([]byte, 4096)
	if _, err := io.ReadFull(f, page); err != nil {
		return damaged(file, fmt.Sprintf("is truncated (%d bytes, less than one page)", size))
	}
	m0, ok0 := readBoltMeta(page)
	ps := int64(4096)
	if ok0 {
		ps = int64(m0.pageSize)
	}
	var m1 boltMeta
	ok1 := false
	if ps > 0 && ps <= 1<<20 {
		second := make([]byte, boltMetaAt+boltMetaSize+8)
		if _, err := f.ReadAt(second, ps); err == nil {
			m1, ok1 = readBoltMeta(second)
		}
	}
	m := m0
	switch {
	case !ok0 && !ok1:
		return damaged(file, "is garbled (neither bbolt meta page is valid)")
	case !ok0 || (ok1 && m1.txid > m0.txid):
		m = m1
	}
	if need := int64(m.pgid) * int64(m.pageSize); size < need {
		return damaged(file, fmt.Sprintf("is truncated (%d bytes, its pages need %d)", size, need))
	}
	return nil
}

// checkBoltPages reads every key and value of the store in this goroutine,
// where a panic of bbolt over a garbled page can be recovered, and checks
// that it is a Raft store that was not emptied (its stable store holds a
// term: raft-boltdb's conf bucket, raft-wal's stable bucket).
func checkBoltPages(dir, file, kind, marker string, initialized bool) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = damaged(file, fmt.Sprintf("is garbled (bbolt: %v)", p))
		}
	}()
	db, err := bolt.Open(file, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return damaged(file, fmt.Sprintf("does not open (%v)", err))
	}
	defer db.Close()
	stable := "conf"
	if kind == "wal" {
		stable = "stable"
	}
	var buckets []string
	hasTerm := false
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			buckets = append(buckets, string(name))
			if string(name) == stable && b.Get([]byte("CurrentTerm")) != nil {
				hasTerm = true
			}
			return walkBucket(b)
		})
	})
	switch {
	case err != nil:
		return damaged(file, fmt.Sprintf("is garbled (%v)", err))
	case initialized && !hasTerm:
		return damaged(file, "holds no Raft term (emptied), but "+marker+" says this node held Raft state")
	case kind == "wal":
		return nil
	case len(buckets) == 0:
		return damaged(file, "holds no Raft buckets (is it a Raft log store?)")
	case !hasTerm:
		return checkNoSnapshots(dir, file, "holds no Raft term")
	}
	return nil
}

func walkBucket(b *bolt.Bucket) error {
	return b.ForEach(func(k, v []byte) error {
		if v == nil {
			if nb := b.Bucket(k); nb != nil {
				return walkBucket(nb)
			}
		}
		return nil
	})
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
