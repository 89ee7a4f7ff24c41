package tune

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func fp(v float64) *float64 { return &v }

func liveRows() []Row {
	return []Row{
		{Trial: "t0000", Status: Done, Iterations: 8, Last: fp(0.52), Best: fp(0.5), Config: Values{"lr": 0.001, "x": 1.25}},
		{Trial: "t0001", Status: Stopped, Iterations: 2, Last: fp(3.5), Best: fp(3.5), Config: Values{"lr": 0.1, "x": -2.0}},
		{Trial: "t0002", Status: Running, Iterations: 4, Last: fp(0.75), Best: fp(0.25), Config: Values{"lr": 0.01, "x": 0.5}},
		{Trial: "t0003", Status: Failed, Iterations: 1, Error: "boom", Config: Values{"lr": 0.02, "x": 3.0}},
		{Trial: "t0004", Status: Running, Config: Values{"lr": 0.03, "x": 1.0}},
	}
}

func TestLiveRender(t *testing.T) {
	l := &Live{Metric: "loss", Mode: Min}
	for _, r := range liveRows() {
		l.Update(r)
	}
	var b bytes.Buffer
	l.Render(&b)
	want := `== 5 trials: 2 running, 1 done, 1 stopped, 1 error | best t0002 loss=0.25 {lr=0.01 x=0.5} ==
TRIAL  STATUS   ITER  LAST loss  BEST loss  CONFIG
t0000  done     8     0.52       0.5        {lr=0.001 x=1.25}
t0001  stopped  2     3.5        3.5        {lr=0.1 x=-2}
t0002  running  4     0.75       0.25       {lr=0.01 x=0.5}
t0003  error    1     -          -          {lr=0.02 x=3}
t0004  running  0     -          -          {lr=0.03 x=1}
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}

	// Three rows at most: the running ones, then the best finished one;
	// the rest are counted. Lines are cut to the width.
	l.MaxRows, l.Width = 3, 40
	b.Reset()
	l.Render(&b)
	want = `== 5 trials: 2 running, 1 done, 1 sto...
TRIAL  STATUS   ITER  LAST loss  BEST...
t0000  done     8     0.52       0.5 ...
t0002  running  4     0.75       0.25...
t0004  running  0     -          -   ...
... 2 more trials not shown
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

// Redrawn in place: a frame, log lines written above it (the frame taken
// off first), the frame again on the next tick, none when nothing
// changed, and none left on the screen after Stop.
func TestLiveRedraw(t *testing.T) {
	var b bytes.Buffer
	l := &Live{W: &b, Metric: "loss", Mode: Min, Redraw: true}
	l.Tick()
	if b.Len() != 0 {
		t.Fatalf("a frame with no trials: %q", b.String())
	}
	rows := liveRows()
	l.Update(rows[0])
	l.Tick()
	frame := "== 1 trials: 1 done | best t0000 loss=0.5 {lr=0.001 x=1.25} ==\n" +
		"TRIAL  STATUS  ITER  LAST loss  BEST loss  CONFIG\n" +
		"t0000  done    8     0.52       0.5        {lr=0.001 x=1.25}\n"
	if b.String() != frame {
		t.Fatalf("first frame %q", b.String())
	}
	b.Reset()
	l.Tick() // nothing changed
	if b.Len() != 0 {
		t.Fatalf("redrawn with no change: %q", b.String())
	}
	l.Write([]byte("t0001 running\n"))
	l.Tick()
	if want := "\x1b[3A\x1b[J" + "t0001 running\n" + frame; b.String() != want {
		t.Fatalf("after a log line: %q\nwant %q", b.String(), want)
	}
	b.Reset()
	l.Update(rows[1])
	l.Tick()
	if !strings.HasPrefix(b.String(), "\x1b[3A\x1b[J== 2 trials: 1 done, 1 stopped |") || strings.Count(b.String(), "\n") != 4 {
		t.Fatalf("after an update: %q", b.String())
	}
	b.Reset()
	l.Stop()
	if b.String() != "\x1b[4A\x1b[J" {
		t.Fatalf("stop: %q", b.String())
	}
	// Not a terminal: log lines pass through, no table.
	b.Reset()
	p := &Live{W: &b, Metric: "loss"}
	p.Start()
	p.Update(rows[0])
	p.Write([]byte("t0000 done\n"))
	p.Tick()
	p.Stop()
	if b.String() != "t0000 done\n" {
		t.Fatalf("not a terminal: %q", b.String())
	}
}

// Run calls Watch at each start, report and end: the live table ends
// with every trial's final row.
func TestRunWatch(t *testing.T) {
	l := &Live{Metric: "loss", Mode: Min}
	updates := 0
	exp, err := Run(context.Background(), Config{Space: quadSpace, Metric: "loss", Mode: Min, NumSamples: 4, MaxConcurrent: 2,
		Seed: 1, Dir: t.TempDir(), Watch: func(r Row) { updates++; l.Update(r) }}, quad(3, nil))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	l.Render(&b)
	var want bytes.Buffer
	want.WriteString("== 4 trials: 4 done | best " + exp.Best().ID + " loss=" + fnum(exp.Best().Best) + " " + formatConfig(exp.Best().Config) + " ==\n")
	exp.WriteTable(&want)
	if b.String() != want.String() {
		t.Errorf("live table\n%s\nthe experiment's\n%s", b.String(), want.String())
	}
	if updates != 4*(1+3+1) {
		t.Errorf("%d updates, want 20 (a start, 3 reports and an end per trial)", updates)
	}
}
