package tune

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Live is the trial table while an experiment runs, as Ray Tune's
// progress reporter shows it: a status line (trials by status, the best so
// far) over a row per trial (id, status, iterations, last and best
// metric, config).
//
// Give Update to Config.Watch and Live itself (an io.Writer) as
// Config.Progress and wherever else the experiment's log lines go. On a
// terminal (Redraw), Start redraws the table in place every Every below
// the log lines, which scroll above it; elsewhere Live passes the log
// lines through (the experiment's line per trial start and end) and draws
// no table. Update, Write, Tick and Stop may be called from any goroutine.
type Live struct {
	W      io.Writer
	Metric string
	Mode   Mode
	// Redraw redraws the table in place with ANSI escapes: set it when W
	// is a terminal.
	Redraw bool
	// Every is how often Start redraws (default 1s).
	Every time.Duration
	// MaxRows bounds the rows drawn (default 20): running trials first,
	// then the best finished ones, then pending; the rest are counted.
	MaxRows int
	// Width cuts each drawn line to that many characters so that none
	// wraps (default 120).
	Width int

	mu     sync.Mutex
	rows   map[string]liveRow
	order  []string
	drawn  int // lines of the frame on the screen
	dirty  bool
	stop   context.CancelFunc
	closed chan struct{}
}

// liveRow is a trial's row with its config already formatted.
type liveRow struct {
	Row
	config string
}

// Update records a trial's row (see Config.Watch).
func (l *Live) Update(r Row) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rows == nil {
		l.rows = map[string]liveRow{}
	}
	if _, ok := l.rows[r.Trial]; !ok {
		l.order = append(l.order, r.Trial)
	}
	lr := liveRow{Row: r, config: formatConfig(r.Config)}
	lr.Config = nil // the experiment's, not ours to keep
	l.rows[r.Trial] = lr
	l.dirty = true
}

// Write writes log lines above the table.
func (l *Live) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.erase()
	return l.W.Write(p)
}

// Start redraws the table every Every until Stop, when Redraw is set.
func (l *Live) Start() {
	if !l.Redraw {
		return
	}
	every := l.Every
	if every <= 0 {
		every = time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.stop, l.closed = cancel, make(chan struct{})
	go func() {
		defer close(l.closed)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				l.Tick()
			}
		}
	}()
}

// Stop ends Start's redraws and takes the table off the screen (the
// caller prints the final table).
func (l *Live) Stop() {
	if l.stop != nil {
		l.stop()
		<-l.closed
		l.stop = nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.erase()
}

// Tick draws the table again when anything changed since it was drawn
// (or it was taken off for log lines).
func (l *Live) Tick() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.Redraw || (!l.dirty && l.drawn > 0) || len(l.order) == 0 {
		return
	}
	var b bytes.Buffer
	l.render(&b)
	l.erase()
	frame := b.String()
	l.W.Write([]byte(frame))
	l.drawn = strings.Count(frame, "\n")
	l.dirty = false
}

// erase takes the drawn frame off the screen: the cursor goes up to its
// first line, and everything from there down is cleared.
func (l *Live) erase() {
	if l.drawn > 0 {
		fmt.Fprintf(l.W, "\x1b[%dA\x1b[J", l.drawn)
		l.drawn = 0
	}
}

// Render writes the table as Tick draws it, without escapes.
func (l *Live) Render(w io.Writer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.render(w)
}

func (l *Live) render(w io.Writer) {
	maxRows, width := l.MaxRows, l.Width
	if maxRows <= 0 {
		maxRows = 20
	}
	if width <= 0 {
		width = 120
	}
	count := map[Status]int{}
	var best *liveRow
	for _, id := range l.order {
		r := l.rows[id]
		count[r.Status]++
		if r.Best != nil && r.Status != Failed && (best == nil || better(l.Mode, *r.Best, *best.Best)) {
			best = &r
		}
	}
	var head strings.Builder
	fmt.Fprintf(&head, "== %d trials:", len(l.order))
	sep := " "
	for _, s := range []Status{Running, Pending, Done, Stopped, Failed} {
		if count[s] > 0 {
			fmt.Fprintf(&head, "%s%d %s", sep, count[s], s)
			sep = ", "
		}
	}
	if best != nil {
		fmt.Fprintf(&head, " | best %s %s=%s %s", best.Trial, l.Metric, fnum(best.Best), best.config)
	}
	head.WriteString(" ==")
	shown := l.pick(maxRows)
	var tb bytes.Buffer
	tw := tabwriter.NewWriter(&tb, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "TRIAL\tSTATUS\tITER\tLAST %s\tBEST %s\tCONFIG\n", l.Metric, l.Metric)
	for _, id := range shown {
		r := l.rows[id]
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", r.Trial, r.Status, r.Iterations, fnum(r.Last), fnum(r.Best), r.config)
	}
	tw.Flush()
	lines := append([]string{head.String()}, strings.Split(strings.TrimSuffix(tb.String(), "\n"), "\n")...)
	if n := len(l.order) - len(shown); n > 0 {
		lines = append(lines, fmt.Sprintf("... %d more trials not shown", n))
	}
	for _, line := range lines {
		if r := []rune(line); len(r) > width {
			line = string(r[:width-3]) + "..."
		}
		fmt.Fprintln(w, line)
	}
}

// pick chooses the rows to draw, in trial order: running trials first,
// then finished ones best first, then pending and failed ones.
func (l *Live) pick(n int) []string {
	if len(l.order) <= n {
		return l.order
	}
	rank := func(r liveRow) int {
		switch {
		case r.Status == Running:
			return 0
		case (r.Status == Done || r.Status == Stopped) && r.Best != nil:
			return 1
		case r.Status == Pending:
			return 2
		}
		return 3
	}
	ids := slices.Clone(l.order)
	slices.SortStableFunc(ids, func(a, b string) int {
		ra, rb := l.rows[a], l.rows[b]
		if d := rank(ra) - rank(rb); d != 0 {
			return d
		}
		if rank(ra) == 1 && *ra.Best != *rb.Best {
			if better(l.Mode, *ra.Best, *rb.Best) {
				return -1
			}
			return 1
		}
		return 0
	})
	ids = ids[:n]
	slices.Sort(ids)
	return ids
}
