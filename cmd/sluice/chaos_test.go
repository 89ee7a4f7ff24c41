package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/sluicehq/sluice/bench/harness"
	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/coordinator"
	"github.com/sluicehq/sluice/executor/cluster/state"
	"github.com/sluicehq/sluice/internal/testcert"
)

// TestChaos runs a plan (harness.FailoverPlan: scan, filter, group-by, sort) over a few million
// rows on three coordinator and three worker processes, and kills the
// Raft leader and a worker with SIGKILL at seeded random moments while it
// runs. The output must equal the local executor's, row for row.
// SLUICE_CHAOS_SEED replays a seed; SLUICE_CHAOS_ROWS sets the rows.
func TestChaos(t *testing.T) { chaos(t, false) }

// TestChaosTLS is TestChaos with TLS on: the API, Raft (mutual
// certificates) and the workers' block servers.
func TestChaosTLS(t *testing.T) { chaos(t, true) }

// tlsFiles writes a certificate for 127.0.0.1 that is its own CA (for
// servers and clients) and its key as PEM files in dir, and returns the
// files and the pool that trusts the certificate.
func tlsFiles(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	cert, pool := testcert.SelfSigned(t)
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})))
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})))
	return certFile, keyFile, pool
}

func chaos(t *testing.T, withTLS bool) {
	if testing.Short() {
		t.Skip("chaos test: several processes and seconds")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SLUICE_CHAOS_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	rows := 3_000_000
	if s := os.Getenv("SLUICE_CHAOS_ROWS"); s != "" {
		rows, _ = strconv.Atoi(s)
	}
	t.Logf("seed %d (SLUICE_CHAOS_SEED=%d replays it), %d rows", seed, seed, rows)
	rng := rand.New(rand.NewPCG(seed, 0))
	ctx := context.Background()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if out := runOut(t, "gen", "sales", "--rows", strconv.Itoa(rows), "--files", "6", "--seed", "7", data); out != "" {
		t.Logf("gen: %s", out)
	}

	// The reference: the same plan on the local executor.
	want := filepath.Join(dir, "want")
	writeFile(t, filepath.Join(dir, "local.yaml"), fmt.Sprintf(harness.FailoverPlan, data, want))
	runOut(t, "run", filepath.Join(dir, "local.yaml"))

	const token = "chaos-token"
	tokenFile := filepath.Join(dir, "token")
	writeFile(t, tokenFile, token)
	scheme := "http://"
	var tlsArgs []string
	client := api.NewClient
	if withTLS {
		certFile, keyFile, pool := tlsFiles(t, dir)
		scheme = "https://"
		tlsArgs = []string{"--tls-cert", certFile, "--tls-key", keyFile, "--tls-ca", certFile}
		client = func(urls []string, token string) *api.Client {
			c := api.NewClient(urls, token)
			c.SetTLS(&tls.Config{RootCAs: pool})
			return c
		}
	}
	type node struct {
		id, api string
		p       *proc
	}
	var coords []*node
	var urls []string
	for i := range 3 {
		n := &node{id: fmt.Sprint("n", i+1), api: loopback(t)}
		a := []string{"coordinator", "--node-id", n.id, "--data-dir", filepath.Join(dir, n.id), "--raft-addr", loopback(t),
			"--api-addr", n.api, "--token-file", tokenFile, "--worker-timeout", "2s"}
		a = append(a, tlsArgs...)
		if i == 0 {
			a = append(a, "--bootstrap")
		} else {
			// n1 generated the cluster secret into its data directory.
			a = append(a, "--join", scheme+coords[0].api, "--cluster-secret-file", filepath.Join(dir, "n1", coordinator.SecretFile))
		}
		n.p = spawn(t, a...)
		coords = append(coords, n)
		urls = append(urls, n.api)
		if i == 0 {
			one := client([]string{n.api}, token)
			poll(t, "n1 leads", func() bool {
				var st api.ClusterStatus
				return one.Do(ctx, http.MethodGet, "/v1/cluster", nil, &st) == nil && st.Leader == "n1"
			})
		}
	}
	cl := client(urls, token)
	status := func() (st api.ClusterStatus) {
		cl.Do(ctx, http.MethodGet, "/v1/cluster", nil, &st)
		return st
	}
	poll(t, "three voters", func() bool { return status().Voters() == 3 })
	workers := map[string]*proc{}
	for i := range 3 {
		wdir := filepath.Join(dir, fmt.Sprint("w", i+1))
		mem := "256MiB"
		if i == 0 {
			mem = "4MiB" // this one spills its blocks to disk
		}
		p := spawn(t, append([]string{"worker", "--coordinators", strings.Join(urls, ","), "--data-dir", wdir, "--addr", "127.0.0.1:0",
			"--resources", "cpu=2,memory=4GiB", "--token-file", tokenFile, "--heartbeat", "100ms", "--block-memory", mem,
			"--task-delay", "300ms"}, tlsArgs...)...) // a job of several seconds on a fast machine
		poll(t, "worker id", func() bool { _, err := os.Stat(filepath.Join(wdir, "worker-id")); return err == nil })
		id, _ := os.ReadFile(filepath.Join(wdir, "worker-id"))
		workers[strings.TrimSpace(string(id))] = p
	}
	poll(t, "three workers", func() bool { return len(status().Workers) == 3 })

	got := filepath.Join(dir, "got")
	var sub api.IDResponse
	if err := cl.Do(ctx, http.MethodPost, "/v1/jobs", api.SubmitRequest{RequestID: "chaos", File: "chaos.yaml",
		Plan: fmt.Sprintf(harness.FailoverPlan, data, got), MaxRetries: 3, Needs: state.Resources{CPU: 1}}, &sub); err != nil {
		t.Fatal(err)
	}
	job := func() (st api.JobStatus) {
		cl.Do(ctx, http.MethodGet, "/v1/jobs/"+sub.ID, nil, &st)
		return st
	}
	// Kill once the job is laid out and running, at seeded moments.
	poll(t, "the job to run its stages", func() bool { st := job(); return len(st.Stages) > 2 && st.Stages[1].Running > 0 })
	time.Sleep(time.Duration(rng.IntN(800)) * time.Millisecond)
	leader := status().Leader
	for _, n := range coords {
		if n.id == leader {
			n.p.kill9(t)
			t.Logf("killed the leader %s", n.id)
		}
	}
	time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
	// A worker running a task of the job (not its commit, which no
	// block depends on): that task, and any block of it that a
	// later task still needs, runs again.
	var st api.JobStatus
	var busy []string
	poll(t, "a worker running a task", func() bool {
		st, busy = job(), nil
		for _, tk := range st.Tasks {
			if (tk.State == state.TaskRunning || tk.State == state.TaskAssigned) && tk.Stage < len(st.Stages)-1 &&
				workers[tk.Worker] != nil && !slices.Contains(busy, tk.Worker) {
				busy = append(busy, tk.Worker)
			}
		}
		return len(busy) > 0 || st.Job.State.Done()
	})
	if len(busy) == 0 {
		t.Fatalf("the job ended before a worker could be killed: %s (use more rows)", st.Job.State)
	}
	slices.Sort(busy)
	victim := busy[rng.IntN(len(busy))]
	workers[victim].kill9(t)
	t.Logf("killed worker %s", victim)

	start := time.Now()
	deadline := start.Add(3 * time.Minute)
	for st = job(); !st.Job.State.Done(); st = job() {
		if time.Now().After(deadline) {
			t.Fatalf("the job did not finish in 3 minutes after the kills: %+v", st.Stages)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st.Job.State != state.JobSucceeded {
		t.Fatalf("job %s: %s", st.Job.State, st.Job.Error)
	}
	t.Logf("job finished %s after the worker's kill", time.Since(start).Round(time.Millisecond))
	again := 0
	for _, tk := range st.Tasks {
		if tk.Attempt > 1 {
			again++
		}
	}
	if again == 0 {
		t.Fatalf("no task ran twice: the kill of %s recovered nothing", victim)
	}
	t.Logf("%d tasks ran more than once", again)

	// Row for row: the same rows in the same order (the files read in
	// name order), sums equal up to the order of float additions.
	w, g := readRows(t, want), readRows(t, got)

	if len(w) != len(g) {
		t.Fatalf("%d rows, the local executor wrote %d", len(g), len(w))
	}
	for i := range w {
		if !sameRow(w[i], g[i]) {
			t.Fatalf("row %d: %v, the local executor wrote %v", i, g[i], w[i])
		}
		if i > 0 && g[i][0].(int64) <= g[i-1][0].(int64) {
			t.Fatalf("row %d: user_id %v after %v: out of order", i, g[i][0], g[i-1][0])
		}
	}
	if staged, _ := filepath.Glob(filepath.Join(got, "_sluice_staging")); len(staged) > 0 {
		t.Fatalf("staging left behind: %v", staged)
	}
}

// readRows reads a Parquet output's rows (user_id first), files in name order.
func readRows(t *testing.T, dir string) [][]any {
	t.Helper()
	var out [][]any
	for rec, err := range dataset.ReadParquet(dir).Select("user_id", "sales", "revenue", "min_price", "max_qty").Iter(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		for r := range int(rec.NumRows()) {
			row := make([]any, rec.NumCols())
			for c := range row {
				switch a := rec.Column(c).(type) {
				case *array.Int64:
					row[c] = a.Value(r)
				case *array.Int32:
					row[c] = int64(a.Value(r))
				case *array.Float64:
					row[c] = a.Value(r)
				default:
					row[c] = a.ValueStr(r)
				}
			}
			out = append(out, row)
		}
	}
	return out
}

// sameRow compares rows, floats to a relative 1e-9.
func sameRow(a, b []any) bool {
	for i := range a {
		x, ok1 := a[i].(float64)
		y, ok2 := b[i].(float64)
		if ok1 && ok2 {
			if math.Abs(x-y) > 1e-9*math.Max(math.Abs(x), math.Abs(y)) {
				return false
			}
		} else if a[i] != b[i] {
			return false
		}
	}
	return true
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runOut runs a sluice command in process and returns its output.
func runOut(t *testing.T, args ...string) string {
	t.Helper()
	out := &syncBuffer{}
	if code := runMain(context.Background(), &env{stdout: out, stderr: out, stdin: strings.NewReader("")}, args); code != 0 {
		t.Fatalf("sluice %s exited %d:\n%s", strings.Join(args, " "), code, out)
	}
	return out.String()
}
