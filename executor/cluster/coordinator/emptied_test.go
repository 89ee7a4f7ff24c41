package coordinator

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"

	"github.com/sluicehq/sluice/executor/cluster/state"
)

// A node whose log store is missing or emptied is refused at start, on
// either store, even with no snapshot beside it (where the snapshot check
// alone let it start empty and reset): the bootstrapper's marker is
// written at bootstrap, the joiner's once the join replicated to it. The
// error names the file and says what to do; the intact store starts again.
func TestEmptiedStoreRefused(t *testing.T) {
	for _, kind := range []string{"bolt", "wal"} {
		t.Run(kind, func(t *testing.T) {
			h := startWith(t, 2, func(c *Config) { c.LogStore = kind })
			job := submitNoop(t, h.client(), "r1")
			l := h.leader()
			h.waitFor("the follower caught up", func() bool {
				for _, c := range h.nodes {
					if c.Raft().AppliedIndex() < l.Raft().AppliedIndex() {
						return false
					}
				}
				return true
			})
			h.shutdown()
			for i, cfg := range h.cfgs {
				h.nodes[i] = nil
				if snaps, _ := os.ReadDir(filepath.Join(cfg.DataDir, "snapshots")); len(snaps) != 0 {
					t.Fatalf("%s has snapshots: the test wants a store without", cfg.NodeID)
				}
				file, keep := filepath.Join(cfg.DataDir, "raft.db"), filepath.Join(cfg.DataDir, "raft.db.keep")
				if kind == "wal" {
					file, keep = filepath.Join(cfg.DataDir, "wal"), filepath.Join(cfg.DataDir, "wal.keep")
				}
				if err := os.Rename(file, keep); err != nil {
					t.Fatal(err)
				}
				want := filepath.Join(cfg.DataDir, "raft.db")
				if kind == "wal" {
					want = filepath.Join(cfg.DataDir, "wal", "wal-meta.db")
				}
				refused := func(what string) {
					t.Helper()
					c, err := Start(context.Background(), cfg)
					if err == nil {
						c.Shutdown()
						t.Fatalf("%s started over a %s store", cfg.NodeID, what)
					}
					if !errors.Is(err, ErrDamagedStore) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "restore") {
						t.Fatalf("%s over a %s store: %q, want ErrDamagedStore naming %s and what to do", cfg.NodeID, what, err, want)
					}
				}
				refused("missing")
				// An emptied store: a new one of the same kind, with its
				// buckets and no Raft term.
				if kind == "wal" {
					if err := os.MkdirAll(file, 0o700); err != nil {
						t.Fatal(err)
					}
					meta := &metadb.BoltMetaDB{}
					w, err := raftwal.Open(file, raftwal.WithMetaStore(meta))
					if err != nil {
						t.Fatal(err)
					}
					w.Close()
					meta.Close()
				} else {
					s, err := raftboltdb.NewBoltStore(file)
					if err != nil {
						t.Fatal(err)
					}
					s.Close()
				}
				refused("emptied")
				if kind == "wal" { // segments without their meta store
					if err := os.Remove(want); err != nil {
						t.Fatal(err)
					}
					refused("meta-less")
				}
				if err := os.RemoveAll(file); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(keep, file); err != nil {
					t.Fatal(err)
				}
			}
			// The intact stores start again with their state.
			for i, cfg := range h.cfgs {
				cfg.Bootstrap, cfg.Join = false, ""
				c, err := Start(context.Background(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				h.nodes[i] = c
			}
			h.leader()
			h.waitFor("both nodes hold job "+job, func() bool {
				ok := true
				for _, c := range h.nodes {
					c.Read(func(s *state.State) { ok = ok && s.Jobs[job] != nil })
				}
				return ok
			})
		})
	}
}
