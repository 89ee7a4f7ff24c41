// Command duckbench is the DuckDB peer of `sluice bench etl`: it runs one
// etl/sales query on the same Parquet files and writes the same output.
// It lives in its own module so that DuckDB (cgo, a bundled library) stays
// out of Sluice's dependency graph.
package main

import (
	"database/sql"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	_ "github.com/marcboeker/go-duckdb"
)

var queries = map[string]string{
	"q1": `SELECT id, user_id, price * qty AS revenue, lower(note) AS note
	       FROM read_parquet('%[1]s') WHERE price > 50 AND category IN ('c1','c7','c9')`,
	"q2": `SELECT category, count(*) AS n, sum(price * qty) AS revenue, avg(price) AS avg_price,
	              min(ts) AS min_ts, max(ts) AS max_ts
	       FROM read_parquet('%[1]s') GROUP BY category`,
	"q3": `SELECT *, price * qty AS revenue FROM read_parquet('%[1]s') ORDER BY revenue DESC LIMIT 1000`,
	"q4": `SELECT u.region, u.tier, sum(s.price * s.qty) AS revenue, count(*) AS n
	       FROM read_parquet('%[1]s') s JOIN read_parquet('%[2]s') u ON s.user_id = u.user_id
	       GROUP BY u.region, u.tier`,
	"q5": `SELECT category, month(ts) AS month, count(DISTINCT user_id) AS users
	       FROM read_parquet('%[1]s') GROUP BY category, month(ts)`,
}

func main() {
	in := flag.String("in", "", "input Parquet glob")
	users := flag.String("users", "", "the users table's Parquet file (q4)")
	out := flag.String("out", "", "output directory")
	threads := flag.Int("threads", 0, "DuckDB threads (0: its default, one per core)")
	flag.Parse()
	q, ok := queries[flag.Arg(0)]
	if !ok || *in == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: duckbench --in GLOB [--users FILE] --out DIR q1|q2|q3|q4|q5")
		os.Exit(2)
	}
	if flag.Arg(0) == "q4" && *users == "" {
		fmt.Fprintln(os.Stderr, "duckbench: q4 joins the users table: set --users")
		os.Exit(2)
	}
	if err := run(fmt.Sprintf(q, *in, *users), *out, *threads); err != nil {
		fmt.Fprintln(os.Stderr, "duckbench:", err)
		os.Exit(1)
	}
}

func run(query, out string, threads int) error {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return err
	}
	defer db.Close()
	if threads > 0 {
		if _, err := db.Exec(fmt.Sprintf("SET threads = %d", threads)); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	dest := strings.ReplaceAll(filepath.Join(out, "data.parquet"), "'", "''")
	_, err = db.Exec(fmt.Sprintf("COPY (%s) TO '%s' (FORMAT parquet, COMPRESSION zstd)", query, dest))
	return err
}
