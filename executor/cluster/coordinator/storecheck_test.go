package coordinator

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A damaged raft.db is refused at start with an error naming the file and
// what to do, never opened as an empty store nor a panic inside bbolt.
func TestDamagedStoreRefused(t *testing.T) {
	if *logStoreKind != "bolt" {
		t.Skip("the bolt store's file is damaged here")
	}
	h := start(t, 1)
	submitNoop(t, h.client(), "r1")
	cfg := h.cfgs[0]
	h.nodes[0].Shutdown()
	h.nodes[0] = nil
	file := filepath.Join(cfg.DataDir, "raft.db")
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	garbled := append([]byte(nil), good...)
	for i := range garbled {
		if i%7 == 0 {
			garbled[i] ^= 0x5a
		}
	}
	// Pages past the metas garbled: the metas still check out.
	deep := append([]byte(nil), good...)
	for i := 2 * 4096; i < len(deep); i++ {
		deep[i] = byte(i * 31)
	}
	for _, tc := range []struct {
		name, want string
		data       []byte
	}{
		{"empty", "empty (0 bytes)", nil},
		{"truncated", "truncated", good[:len(good)/2]},
		{"short", "truncated", good[:100]},
		{"garbled", "garbled", garbled},
		{"garbled pages", "", deep},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(file, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Start(context.Background(), cfg)
			if err == nil {
				c.Shutdown()
				t.Fatal("started over a damaged raft.db")
			}
			if !errors.Is(err, ErrDamagedStore) || !strings.Contains(err.Error(), file) ||
				!strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "restore") {
				t.Fatalf("error %q: want ErrDamagedStore naming %s, %q and what to do", err, file, tc.want)
			}
		})
	}
	// The intact store starts again and keeps its state.
	if err := os.WriteFile(file, good, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Shutdown()
}

// A second coordinator on a data directory in use fails at once, naming
// the pid that holds it.
func TestDataDirInUse(t *testing.T) {
	h := start(t, 1)
	cfg := h.cfgs[0]
	cfg.RaftAddr, cfg.APIAddr = freeAddr(t), freeAddr(t)
	c, err := Start(context.Background(), cfg)
	if err == nil {
		c.Shutdown()
		t.Fatal("a second coordinator started on a data dir in use")
	}
	want := "data dir in use by pid " + strconv.Itoa(os.Getpid())
	if !errors.Is(err, ErrDataDirInUse) || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q, want %q", err, want)
	}
}
