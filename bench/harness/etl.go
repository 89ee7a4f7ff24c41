package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/executor/local"
	"github.com/sluicehq/sluice/internal/salesgen"
)

// The etl/sales-10m queries of WORKLOADS.md, as the dataset API writes
// them: in is the sales files, users the users table (Q4 only).
var etlQueries = map[string]func(in, users string) *dataset.Dataset{
	"q1": func(in, _ string) *dataset.Dataset {
		return dataset.ReadParquet(in).
			Filter("price > 50 AND category IN ('c1','c7','c9')").
			WithColumn("revenue", "price * qty").
			WithColumn("note", "lower(note)").
			Select("id", "user_id", "revenue", "note")
	},
	"q2": func(in, _ string) *dataset.Dataset {
		return dataset.ReadParquet(in).
			WithColumn("revenue", "price * qty").
			GroupBy("category").
			Agg(dataset.Count().As("n"), dataset.Sum("revenue").As("revenue"), dataset.Mean("price").As("avg_price"),
				dataset.Min("ts").As("min_ts"), dataset.Max("ts").As("max_ts"))
	},
	"q3": func(in, _ string) *dataset.Dataset {
		return dataset.ReadParquet(in).
			WithColumn("revenue", "price * qty").
			Sort(dataset.Desc("revenue")).
			Limit(1000)
	},
	"q4": func(in, users string) *dataset.Dataset {
		return dataset.ReadParquet(in).
			Join(dataset.ReadParquet(users), dataset.JoinOptions{On: []string{"user_id"}}).
			WithColumn("revenue", "price * qty").
			GroupBy("region", "tier").
			Agg(dataset.Sum("revenue").As("revenue"), dataset.Count().As("n"))
	},
	"q5": func(in, _ string) *dataset.Dataset {
		return dataset.ReadParquet(in).
			WithColumn("month", "month(ts)").
			GroupBy("category", "month").
			Agg(dataset.CountDistinct("user_id").As("users"))
	},
}

// queryNames are the etl/sales queries in the order bench etl runs them.
var queryNames = []string{"q1", "q2", "q3", "q4", "q5"}

// usersFile is where bench etl writes the users table of the sales data
// in dir.
func usersFile(data string) string { return data + "-users/users.parquet" }

// IsQuery reports whether name is one of the etl/sales queries: q1 to q5.
func IsQuery(name string) bool { return etlQueries[name] != nil }

// QueryConfig is one run of an etl/sales query (`bench etl-query`).
type QueryConfig struct {
	Query      string // q1 to q5
	In, Out    string // input Parquet glob or directory, output directory
	Users      string // the users table's Parquet file (q4)
	CPUProfile string // write a CPU profile here when set
	Stats      string // write the bytes read and written (QueryIO) as JSON here when set
}

// QueryIO is what a query's Stats file holds.
type QueryIO struct {
	BytesRead    int64 `json:"bytes_read"`
	BytesWritten int64 `json:"bytes_written"`
}

// RunQuery runs one etl/sales query once in this process. The local
// executor takes SLUICE_BENCH_CONC (its concurrency) and
// SLUICE_BENCH_UNORDERED (set: rows need not keep their order) from the
// environment.
func RunQuery(ctx context.Context, c QueryConfig) error {
	q := etlQueries[c.Query]
	if q == nil {
		return fmt.Errorf("unknown query %q (want q1, q2, q3, q4, q5)", c.Query)
	}
	if c.Query == "q4" && c.Users == "" {
		return errors.New("q4 joins the users table: set --users (bench etl writes it beside the sales files)")
	}
	if c.CPUProfile != "" {
		f, err := os.Create(c.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	cfg := local.DefaultConfig()
	if v := os.Getenv("SLUICE_BENCH_CONC"); v != "" {
		cfg.Concurrency, _ = strconv.Atoi(v)
	}
	cfg.PreserveOrder = os.Getenv("SLUICE_BENCH_UNORDERED") == ""
	st, err := q(c.In, c.Users).Configure(cfg).WriteParquet(ctx, c.Out, dataset.WriteOptions{Mode: dataset.Overwrite})
	if err != nil || c.Stats == "" {
		return err
	}
	var io QueryIO
	for _, o := range st.Ops {
		io.BytesRead += o.BytesIn.Load()
		io.BytesWritten += o.BytesOut.Load()
	}
	data, _ := json.Marshal(io)
	return os.WriteFile(c.Stats, data, 0o644)
}

// ETLConfig is etl/sales-10m against DuckDB on the same files (`bench etl`).
type ETLConfig struct {
	Sluice string // the sluice binary the runs use (default: this executable)
	Rows   int64  // rows of generated data
	Files  int    // files of generated data
	Runs   int    // runs per query and engine; the median is reported
	Dir    string // working directory for data and outputs
	DuckDB string // the DuckDB peer binary (default: build bench/duckdb into Dir/duckbench)
}

type benchRun struct {
	wall   time.Duration
	maxRSS int64 // bytes
}

// timeCmd runs a command and measures its wall time and peak RSS.
func timeCmd(ctx context.Context, stderr io.Writer, name string, args ...string) (benchRun, error) {
	c := exec.CommandContext(ctx, name, args...)
	c.Stdout, c.Stderr = stderr, stderr
	start := time.Now()
	if err := c.Run(); err != nil {
		return benchRun{}, fmt.Errorf("%s %v: %w", name, args, err)
	}
	r := benchRun{wall: time.Since(start)}
	if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = ru.Maxrss << 10
	}
	return r, nil
}

func median(runs []benchRun) benchRun {
	s := slices.Clone(runs)
	slices.SortFunc(s, func(a, b benchRun) int { return int(a.wall - b.wall) })
	m := s[len(s)/2]
	for _, r := range runs {
		m.maxRSS = max(m.maxRSS, r.maxRSS)
	}
	return m
}

// self is the sluice binary: the configured one, or this executable.
func self(bin string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	return os.Executable()
}

// ETL runs etl/sales-10m on Sluice and DuckDB, checks that both wrote the
// same rows, and prints a table and a json: line to stdout; progress and
// the children's output go to stderr.
func ETL(ctx context.Context, stdout, stderr io.Writer, c ETLConfig) error {
	self, err := self(c.Sluice)
	if err != nil {
		return err
	}
	runs, dir, duck := c.Runs, c.Dir, c.DuckDB
	data, err := salesData(ctx, stderr, self, dir, c.Rows, c.Files)
	if err != nil {
		return err
	}
	if duck == "" {
		duck = filepath.Join(dir, "duckbench")
		abs, _ := filepath.Abs(duck)
		fmt.Fprintf(stderr, "building the DuckDB peer (bench/duckdb) into %s\n", duck)
		c := exec.CommandContext(ctx, "go", "build", "-o", abs, ".")
		c.Dir = "bench/duckdb"
		c.Stdout, c.Stderr = stderr, stderr
		if err := c.Run(); err != nil {
			return fmt.Errorf("building the DuckDB peer (run from the repository root): %w", err)
		}
	}
	type result struct {
		Query  string  `json:"query"`
		Sluice float64 `json:"sluice_s"`
		DuckDB float64 `json:"duckdb_s"`
		Ratio  float64 `json:"ratio"`
		SRSS   int64   `json:"sluice_peak_rss"`
		DRSS   int64   `json:"duckdb_peak_rss"`
	}
	var results []result
	glob, users := filepath.Join(data, "*.parquet"), usersFile(data)
	for _, q := range queryNames {
		var sr, dr []benchRun
		for i := range runs {
			// Alternate which engine goes first, so neither always meets a warm cache.
			order := []func() error{
				func() error {
					r, err := timeCmd(ctx, stderr, self, "bench", "etl-query", "--in", glob, "--users", users, "--out", filepath.Join(dir, "out-sluice-"+q), q)
					sr = append(sr, r)
					return err
				},
				func() error {
					r, err := timeCmd(ctx, stderr, duck, "--in", glob, "--users", users, "--out", filepath.Join(dir, "out-duckdb-"+q), q)
					dr = append(dr, r)
					return err
				},
			}
			if i%2 == 1 {
				order[0], order[1] = order[1], order[0]
			}
			for _, f := range order {
				if err := f(); err != nil {
					return err
				}
			}
		}
		s, d := median(sr), median(dr)
		results = append(results, result{Query: q, Sluice: s.wall.Seconds(), DuckDB: d.wall.Seconds(),
			Ratio: s.wall.Seconds() / d.wall.Seconds(), SRSS: s.maxRSS, DRSS: d.maxRSS})
	}
	// Compared after every timed run: reading the outputs grows this
	// process, and a child's peak RSS counts its parent's at fork.
	for _, q := range queryNames {
		if err := sameRows(ctx, filepath.Join(dir, "out-sluice-"+q), filepath.Join(dir, "out-duckdb-"+q)); err != nil {
			return fmt.Errorf("%s: the engines disagree: %w", q, err)
		}
	}
	fmt.Fprintln(stdout, "outputs: the same rows from both engines for q1, q2, q3, q4 and q5")
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "query\tsluice (median of %d)\tduckdb\tratio sluice/duckdb\tsluice peak RSS\tduckdb peak RSS\n", runs)
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%.3fs\t%.3fs\t%.2f\t%s\t%s\n", r.Query, r.Sluice, r.DuckDB, r.Ratio, MiB(r.SRSS), MiB(r.DRSS))
	}
	tw.Flush()
	js, _ := json.Marshal(results)
	fmt.Fprintf(stdout, "json: %s\n", js)
	return nil
}

// salesData generates the benchmark's input once and returns its directory.
func salesData(ctx context.Context, stderr io.Writer, self, dir string, rows int64, files int) (string, error) {
	data := filepath.Join(dir, fmt.Sprintf("sales-%d-%d", rows, files))
	marker := filepath.Join(data, "_GENERATED")
	if _, err := os.Stat(marker); errors.Is(err, os.ErrNotExist) {
		// In a child process: Linux counts a parent's peak RSS at fork into
		// its children's, so this process must stay small.
		fmt.Fprintf(stderr, "generating %d rows into %s\n", rows, data)
		if _, err := timeCmd(ctx, stderr, self, "gen", "sales", "--rows", strconv.FormatInt(rows, 10), "--files", strconv.Itoa(files), data); err != nil {
			return "", err
		}
		if err := os.WriteFile(marker, nil, 0o644); err != nil {
			return "", err
		}
	}
	// The users table (Q4), also beside data generated before Q4 existed:
	// 100,000 rows, small enough to write in this process. Seed 0, as gen
	// sales has been run.
	if _, err := os.Stat(usersFile(data)); errors.Is(err, os.ErrNotExist) {
		if err := salesgen.WriteUsers(usersFile(data), 0); err != nil {
			return "", err
		}
	}
	return data, nil
}

// MiB formats a byte count as whole MiB: "512 MiB".
func MiB(n int64) string { return strconv.FormatInt(n>>20, 10) + " MiB" }

// sameRows checks that two Parquet outputs hold the same rows, in any order
// and with floats compared to 9 significant digits.
func sameRows(ctx context.Context, a, b string) error {
	ra, err := canonicalRows(ctx, a)
	if err != nil {
		return err
	}
	rb, err := canonicalRows(ctx, b)
	if err != nil {
		return err
	}
	if len(ra) != len(rb) {
		return fmt.Errorf("%s has %d rows, %s has %d", a, len(ra), b, len(rb))
	}
	for i := range ra {
		if ra[i] != rb[i] {
			return fmt.Errorf("first difference after sorting: %s has %q, %s has %q", a, ra[i], b, rb[i])
		}
	}
	return nil
}
func canonicalRows(ctx context.Context, dir string) ([]string, error) {
	var rows []string
	for rec, err := range dataset.ReadParquet(dir).Iter(ctx) {
		if err != nil {
			return nil, err
		}
		names := make([]int, rec.NumCols())
		for i := range names {
			names[i] = i
		}
		slices.SortFunc(names, func(x, y int) int { return strings.Compare(rec.Schema().Field(x).Name, rec.Schema().Field(y).Name) })
		for r := range int(rec.NumRows()) {
			var sb strings.Builder
			for _, c := range names {
				col := rec.Column(c)
				sb.WriteString(rec.Schema().Field(c).Name)
				sb.WriteByte('=')
				switch a := col.(type) {
				case *array.Float64:
					if a.IsValid(r) {
						sb.WriteString(strconv.FormatFloat(a.Value(r), 'g', 9, 64))
						break
					}
					sb.WriteString("null")
				default:
					sb.WriteString(col.ValueStr(r))
				}
				sb.WriteByte('|')
			}
			rows = append(rows, sb.String())
		}
	}
	slices.Sort(rows)
	return rows, nil
}
