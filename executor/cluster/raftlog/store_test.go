package raftlog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func entry(i uint64) *raft.Log {
	return &raft.Log{Index: i, Term: i/10 + 1, Type: raft.LogCommand,
		Data: fmt.Appendf(nil, "command %d", i), Extensions: []byte{byte(i)}, AppendedAt: time.Unix(0, int64(i)*1000)}
}

// storeRange stores from..to in batches of three.
func storeRange(t *testing.T, s *Store, from, to uint64) {
	t.Helper()
	for i := from; i <= to; i += 3 {
		var b []*raft.Log
		for j := i; j <= min(i+2, to); j++ {
			b = append(b, entry(j))
		}
		if err := s.StoreLogs(b); err != nil {
			t.Fatal(err)
		}
	}
}

// checkRange checks the store holds exactly first..last, each as stored.
func checkRange(t *testing.T, s *Store, first, last uint64) {
	t.Helper()
	f, _ := s.FirstIndex()
	l, _ := s.LastIndex()
	if f != first || l != last {
		t.Fatalf("store holds %d-%d, want %d-%d", f, l, first, last)
	}
	for i := first; i <= last && first != 0; i++ {
		var got raft.Log
		if err := s.GetLog(i, &got); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		want := entry(i)
		if got.Index != i || got.Term != want.Term || got.Type != want.Type || !bytes.Equal(got.Data, want.Data) ||
			!bytes.Equal(got.Extensions, want.Extensions) || !got.AppendedAt.Equal(want.AppendedAt) {
			t.Fatalf("GetLog(%d) = %+v, want %+v", i, got, *want)
		}
	}
	for _, i := range []uint64{first - 1, last + 1} {
		if err := s.GetLog(i, new(raft.Log)); i != 0 && !errors.Is(err, raft.ErrLogNotFound) {
			t.Fatalf("GetLog(%d) outside %d-%d: %v, want ErrLogNotFound", i, first, last, err)
		}
	}
}

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{SegmentBytes: 200}) // a few records a segment
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStoreReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	checkRange(t, s, 0, 0)
	storeRange(t, s, 1, 5)
	storeRange(t, s, 6, 6)
	storeRange(t, s, 7, 40)
	checkRange(t, s, 1, 40)
	if err := s.StoreLogs([]*raft.Log{entry(42)}); !errors.Is(err, ErrNotContiguous) {
		t.Fatalf("a gap: %v, want ErrNotContiguous", err)
	}
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if len(segs) < 3 {
		t.Fatalf("%d segments, want several at 200 bytes each", len(segs))
	}
	s = open(t, dir)
	checkRange(t, s, 1, 40)
	storeRange(t, s, 41, 50)
	checkRange(t, s, 1, 50)
}

func TestDeleteRange(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	storeRange(t, s, 1, 60)
	if err := s.DeleteRange(1, 25); err != nil { // the head, after a snapshot
		t.Fatal(err)
	}
	checkRange(t, s, 26, 60)
	if err := s.DeleteRange(41, 60); err != nil { // a follower's conflicting tail
		t.Fatal(err)
	}
	checkRange(t, s, 26, 40)
	if err := s.DeleteRange(30, 35); !errors.Is(err, ErrNotContiguous) {
		t.Fatalf("a delete inside the log: %v", err)
	}
	storeRange(t, s, 41, 45)
	checkRange(t, s, 26, 45)
	s.Close()
	s = open(t, dir)
	// Whole segments before 26 are gone; a partly deleted one comes back.
	f, _ := s.FirstIndex()
	if f > 26 || f == 1 {
		t.Fatalf("first index %d after reopen, want the start of 26's segment", f)
	}
	checkRange(t, s, f, 45)
	// All of it (a snapshot installed on a follower), then a new run.
	if err := s.DeleteRange(f, 45); err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 0, 0)
	storeRange(t, s, 1000, 1010)
	s.Close()
	s = open(t, dir)
	checkRange(t, s, 1000, 1010)
}

func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	storeRange(t, s, 1, 3)
	s.Close()
	path := filepath.Join(dir, fmt.Sprintf("%020d%s", 1, segSuffix))
	b, _ := os.ReadFile(path)
	// Cut the last record short, as a crash inside its write would.
	if err := os.WriteFile(path, b[:len(b)-3], 0o600); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	checkRange(t, s, 1, 2)
	storeRange(t, s, 3, 4)
	checkRange(t, s, 1, 4)
}

func TestCorruptRecord(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	storeRange(t, s, 1, 30)
	s.Close()
	path := filepath.Join(dir, fmt.Sprintf("%020d%s", 1, segSuffix))
	b, _ := os.ReadFile(path)
	b[headerBytes+20] ^= 0xff // the first record's payload, in a segment that is not the last
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(dir, Options{SegmentBytes: 200}); !errors.Is(err, ErrCorrupt) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open over a flipped byte: %v, want ErrCorrupt", err)
	}
}

func TestStable(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if _, err := s.GetUint64([]byte("CurrentTerm")); err == nil || err.Error() != "not found" {
		t.Fatalf("a missing key: %v, want raft's \"not found\"", err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("n2")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dir)
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 7 {
		t.Fatalf("CurrentTerm after reopen = %d, %v", v, err)
	}
	if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "n2" {
		t.Fatalf("LastVoteCand after reopen = %q, %v", v, err)
	}
}

// TestKillKeepsStored SIGKILLs a process that stores batches and prints
// each batch's last index once StoreLogs returned: every printed entry is
// there after the kill, whole, and the log continues from it.
func TestKillKeepsStored(t *testing.T) {
	if dir := os.Getenv("RAFTLOG_CHILD"); dir != "" {
		s, err := Open(dir, Options{SegmentBytes: 4096})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		for i := uint64(1); ; i += 7 {
			var b []*raft.Log
			for j := i; j < i+7; j++ {
				b = append(b, entry(j))
			}
			if err := s.StoreLogs(b); err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			fmt.Println(i + 6)
		}
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestKillKeepsStored$")
	cmd.Env = append(os.Environ(), "RAFTLOG_CHILD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var stored uint64
	for sc.Scan() && stored < 2000 {
		n, err := strconv.ParseUint(sc.Text(), 10, 64)
		if err != nil {
			t.Fatalf("child: %s", sc.Text())
		}
		stored = n
	}
	cmd.Process.Kill()
	cmd.Wait()
	if stored < 2000 {
		t.Fatalf("child stopped at %d", stored)
	}
	s := open(t, dir)
	last, _ := s.LastIndex()
	if last < stored {
		t.Fatalf("after the kill the log ends at %d, but %d was stored", last, stored)
	}
	checkRange(t, s, 1, last)
	storeRange(t, s, last+1, last+3)
	checkRange(t, s, 1, last+3)
}
