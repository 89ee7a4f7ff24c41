package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
)

// serveCluster is a coordinator process and worker processes (one CPU
// each: one replica per worker) on loopback.
type serveCluster struct {
	urls      []string
	tokenFile string
	cl        *api.Client
	workers   map[string]*proc // by worker id
	dir       string
}

func startServeCluster(t *testing.T, workers int) *serveCluster {
	t.Helper()
	t.Setenv("SLUICE_TEST_MAIN", "1") // the workers' replica servers act as sluice
	dir := t.TempDir()
	const token = "serve-token"
	c := &serveCluster{tokenFile: filepath.Join(dir, "token"), workers: map[string]*proc{}, dir: dir}
	writeFile(t, c.tokenFile, token)
	apiAddr := loopback(t)
	spawn(t, "coordinator", "--node-id", "n1", "--data-dir", filepath.Join(dir, "n1"), "--raft-addr", loopback(t),
		"--api-addr", apiAddr, "--token-file", c.tokenFile, "--worker-timeout", "2s", "--bootstrap")
	c.urls = []string{apiAddr}
	c.cl = api.NewClient(c.urls, token)
	for i := range workers {
		wdir := filepath.Join(dir, fmt.Sprint("w", i+1))
		p := spawn(t, "worker", "--coordinators", apiAddr, "--data-dir", wdir, "--addr", "127.0.0.1:0",
			"--resources", "cpu=1,memory=1GiB", "--token-file", c.tokenFile, "--heartbeat", "100ms")
		poll(t, "worker id", func() bool { _, err := os.Stat(filepath.Join(wdir, "worker-id")); return err == nil })
		id, _ := os.ReadFile(filepath.Join(wdir, "worker-id"))
		c.workers[strings.TrimSpace(string(id))] = p
	}
	poll(t, "the workers", func() bool {
		var st api.ClusterStatus
		return c.cl.Do(context.Background(), http.MethodGet, "/v1/cluster", nil, &st) == nil && len(st.Workers) == workers
	})
	return c
}

// deployment is the replicas the coordinator reports for name.
func (c *serveCluster) deployment(name string) api.Deployment {
	var d api.Deployment
	c.cl.Do(context.Background(), http.MethodGet, "/v1/deployments/"+name, nil, &d)
	return d
}

// replicaJobs counts the deployment's replica jobs not done.
func (c *serveCluster) replicaJobs(name string) int {
	var jobs []state.Job
	if c.cl.Do(context.Background(), http.MethodGet, "/v1/jobs", nil, &jobs) != nil {
		return -1
	}
	n := 0
	for _, j := range jobs {
		if j.Name == "serve-"+name && !j.State.Done() {
			n++
		}
	}
	return n
}

// startRouter runs `sluice router --deployment` in-process until the test
// ends and returns its URL.
func (c *serveCluster) startRouter(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	go func() {
		exited <- runMain(ctx, &env{stdout: &out, stderr: &errb}, append([]string{"router", "--listen", "127.0.0.1:0",
			"--coordinators", strings.Join(c.urls, ","), "--token-file", c.tokenFile}, args...))
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-exited; code != 0 {
			t.Errorf("sluice router exited %d: %s", code, errb.String())
		}
	})
	addr := regexp.MustCompile(`http://[0-9.:]+`)
	url := ""
	poll(t, "the router's address", func() bool { url = addr.FindString(out.String()); return url != "" })
	return url
}

// createDeployment runs sluice serve --coordinators.
func (c *serveCluster) createDeployment(t *testing.T, args ...string) {
	t.Helper()
	model, _ := filepath.Abs("../../infer/model/testdata/fixtures/llama3")
	code, stdout, stderr := sluice(t, append([]string{"serve", "--coordinators", strings.Join(c.urls, ","), "--token-file", c.tokenFile,
		"--model", model, "--served-model-name", "tiny", "--max-model-len", "256", "--device", "cpu",
		"--resources", "cpu=1,memory=256MiB", "--dir", filepath.Join(c.dir, "serve")}, args...)...)
	if code != 0 {
		t.Fatalf("sluice serve --coordinators: exit %d\n%s\n%s", code, stdout, stderr)
	}
	t.Log(strings.TrimSpace(stdout))
}

// completeIDs asks url for a greedy completion of prompt ids and returns
// its tokens.
func completeIDs(url string, ids []int32, maxTokens int) ([]int32, error) {
	body, _ := json.Marshal(map[string]any{"model": "tiny", "prompt": ids, "max_tokens": maxTokens, "temperature": 0,
		"ignore_eos": true, "return_token_ids": true})
	resp, err := http.Post(url+"/v1/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%d %s", resp.StatusCode, b)
	}
	var got struct {
		Choices []struct {
			TokenIDs []int32 `json:"token_ids"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(b, &got); err != nil || len(got.Choices) != 1 {
		return nil, fmt.Errorf("%s: %v", b, err)
	}
	return got.Choices[0].TokenIDs, nil
}

// TestServeDeploymentWorkerKilled: `sluice serve --coordinators
// --replicas 3` places three replicas on three worker processes, which
// report them through their heartbeats; `sluice router --deployment`
// routes over them, with greedy tokens equal to `sluice generate`'s. One
// replica's worker is killed (SIGKILL, its server with it) during a
// burst: every request still succeeds, once, with the right tokens. A
// second worker is killed while idle and 24 streaming requests follow at
// once: each stream is whole (one sent to the dead replica is retried
// before its first event).
func TestServeDeploymentWorkerKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a coordinator, three workers and three replica servers")
	}
	c := startServeCluster(t, 3)
	c.createDeployment(t, "--replicas", "3")
	poll(t, "three replicas serving", func() bool { return len(c.deployment("tiny").Replicas) == 3 })
	front := c.startRouter(t, "--deployment", "tiny", "--policy", "p2c", "--scale-interval", "100ms")

	// What sluice generate answers for each prompt.
	const prompts, maxTokens = 6, 16
	want := make([][]int32, prompts)
	wantText := make([]string, prompts)
	ids := func(i int) []int32 { return []int32{5, 6, 7, 8, int32(9 + i)} }
	for i := range prompts {
		var gen, generr bytes.Buffer
		p := strings.Trim(strings.ReplaceAll(fmt.Sprint(ids(i)), " ", ","), "[]")
		if code := runMain(context.Background(), &env{stdout: &gen, stderr: &generr}, []string{"generate", "--model", "../../infer/model/testdata/fixtures/llama3",
			"--prompt-ids", p, "--max-tokens", fmt.Sprint(maxTokens), "--temperature", "0", "--ignore-eos", "--output", "json", "--device", "cpu"}); code != 0 {
			t.Fatalf("generate: exit %d: %s", code, generr.String())
		}
		var g struct {
			TokenIDs []int32 `json:"token_ids"`
			Text     string  `json:"text"`
		}
		if err := json.Unmarshal(gen.Bytes(), &g); err != nil || len(g.TokenIDs) != maxTokens {
			t.Fatalf("generate: %s: %v", gen.String(), err)
		}
		want[i], wantText[i] = g.TokenIDs, g.Text
	}
	poll(t, "the router over three replicas", func() bool {
		got, err := completeIDs(front, ids(0), maxTokens)
		return err == nil && slices.Equal(got, want[0])
	})
	// The coordinator routes too, at /v1/deployments/NAME/v1/..., with the
	// cluster's token.
	viaCoordinator := func(path, body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+c.urls[0]+"/v1/deployments/tiny/v1/"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer serve-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for i := range 3 {
		body, _ := json.Marshal(map[string]any{"model": "tiny", "prompt": ids(i), "max_tokens": maxTokens, "temperature": 0, "ignore_eos": true, "return_token_ids": true})
		code, b := viaCoordinator("completions", string(body))
		var got struct {
			Choices []struct {
				TokenIDs []int32 `json:"token_ids"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(b), &got); code != 200 || err != nil || len(got.Choices) != 1 || !slices.Equal(got.Choices[0].TokenIDs, want[i]) {
			t.Errorf("through the coordinator: %d %s, want tokens %v", code, b, want[i])
		}
	}
	if code, b := viaCoordinator("completions", `{"model": "tiny", "prompt": "x", "max_tokens": 2, "stream": true}`); code != 200 || !strings.HasSuffix(strings.TrimSpace(b), "data: [DONE]") {
		t.Errorf("a stream through the coordinator: %d %q", code, b)
	}

	// The burst: 8 clients, 72 requests; the worker of a replica is killed
	// once 16 have been answered.
	const n = 72
	var (
		mu      sync.Mutex
		answers = map[int]int{} // request -> 200s
		errs    []string
		done    int
		killed  string
	)
	work := make(chan int, n)
	for i := range n {
		work <- i
	}
	close(work)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range work {
				got, err := completeIDs(front, ids(i%prompts), maxTokens)
				mu.Lock()
				switch {
				case err != nil:
					errs = append(errs, fmt.Sprintf("request %d: %v", i, err))
				case !slices.Equal(got, want[i%prompts]):
					errs = append(errs, fmt.Sprintf("request %d: tokens %v, want %v", i, got, want[i%prompts]))
				default:
					answers[i]++
				}
				done++
				kill := done == 16 && killed == ""
				if kill {
					killed = "pending"
				}
				mu.Unlock()
				if kill {
					d := c.deployment("tiny")
					victim := d.Replicas[0].Worker
					c.workers[victim].kill9(t)
					t.Logf("killed worker %s (replica %s at %s) after 16 answers", victim, d.Replicas[0].ID, d.Replicas[0].URL)
					mu.Lock()
					killed = victim
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for _, e := range errs {
		t.Error(e)
	}
	if killed == "" || killed == "pending" {
		t.Fatal("no worker was killed")
	}
	for i := range n {
		if answers[i] != 1 {
			t.Errorf("request %d answered %d times", i, answers[i])
		}
	}
	// The killed worker's replica leaves the deployment once its worker is
	// dead; its job waits for a free worker (the other two are full).
	poll(t, "two replicas reported", func() bool {
		d := c.deployment("tiny")
		return len(d.Replicas) == 2 && !slices.ContainsFunc(d.Replicas, func(r api.Replica) bool { return r.Worker == killed })
	})
	if got, err := completeIDs(front, ids(1), maxTokens); err != nil || !slices.Equal(got, want[1]) {
		t.Errorf("after the kill: %v %v, want %v", got, err, want[1])
	}

	// Streams: a second worker is killed while nothing runs, and streaming
	// requests follow at once, while its replica is still listed (until the
	// coordinator declares the worker dead): one the router sends there
	// fails before its first event and is retried on the last replica.
	// Every stream is whole, with generate's text.
	d := c.deployment("tiny")
	c.workers[d.Replicas[0].Worker].kill9(t)
	t.Logf("killed worker %s (replica %s) before the streams", d.Replicas[0].Worker, d.Replicas[0].ID)
	for i := range 24 {
		text, err := streamIDs(front, ids(i%prompts), maxTokens)
		if err != nil || text != wantText[i%prompts] {
			t.Errorf("stream %d: %q %v, want %q", i, text, err, wantText[i%prompts])
		}
	}
}

// streamIDs asks url for a greedy streamed completion and returns its
// text, checking that the stream ends with [DONE].
func streamIDs(url string, ids []int32, maxTokens int) (string, error) {
	body, _ := json.Marshal(map[string]any{"model": "tiny", "prompt": ids, "max_tokens": maxTokens, "temperature": 0,
		"ignore_eos": true, "stream": true})
	resp, err := http.Post(url+"/v1/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%d %s: %v", resp.StatusCode, b, err)
	}
	events := strings.Split(strings.TrimSpace(string(b)), "\n\n")
	if events[len(events)-1] != "data: [DONE]" {
		return "", fmt.Errorf("the stream ends with %q, not [DONE]", events[len(events)-1])
	}
	var text strings.Builder
	for _, ev := range events[:len(events)-1] {
		var c struct {
			Choices []struct{ Text string } `json:"choices"`
		}
		data, _ := strings.CutPrefix(ev, "data: ")
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			return "", fmt.Errorf("event %q: %w", ev, err)
		}
		for _, ch := range c.Choices {
			text.WriteString(ch.Text)
		}
	}
	return text.String(), nil
}

// TestServeDeploymentScales: a deployment of 1 to 2 replicas behind
// `sluice router --deployment` gets a second replica while requests queue
// on the first, never a third, and goes back to one when idle (counted:
// replica jobs and serving replicas, never timings).
func TestServeDeploymentScales(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a coordinator, two workers and replica servers")
	}
	c := startServeCluster(t, 2)
	c.createDeployment(t, "--replicas", "1", "--max-replicas", "2", "--max-num-seqs", "2")
	poll(t, "one replica serving", func() bool { return len(c.deployment("tiny").Replicas) == 1 })
	front := c.startRouter(t, "--deployment", "tiny", "--scale-interval", "100ms", "--scale-up-queue", "2",
		"--scale-up-after", "2", "--scale-down-after", "10")

	// Load from 16 clients until the second replica serves.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	for k := range 16 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				if _, err := completeIDs(front, []int32{5, 6, 7, int32(k), int32(i % 50)}, 48); err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
				}
			}
		})
	}
	most := 0
	poll(t, "a second replica serving under the queue", func() bool {
		most = max(most, c.replicaJobs("tiny"))
		return len(c.deployment("tiny").Replicas) == 2
	})
	stop()
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	// Idle: back to one replica job, and the router keeps answering.
	poll(t, "one replica job when idle", func() bool {
		most = max(most, c.replicaJobs("tiny"))
		return c.replicaJobs("tiny") == 1 && len(c.deployment("tiny").Replicas) == 1
	})
	if most > 2 {
		t.Errorf("%d replica jobs at once, over --max-replicas 2", most)
	}
	if _, err := completeIDs(front, []int32{5, 6, 7}, 4); err != nil {
		t.Errorf("after scaling down: %v", err)
	}
}

// TestServeDeploymentFlags: bad deployment flags fail before anything is
// submitted, naming the flag.
func TestServeDeploymentFlags(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	writeFile(t, tokenFile, "t")
	model := "../../infer/model/testdata/fixtures/llama3"
	base := []string{"serve", "--coordinators", "127.0.0.1:1", "--token-file", tokenFile, "--timeout", "100ms", "--dir", filepath.Join(dir, "serve")}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--model", model, "--replicas", "3", "--max-replicas", "2"}, "--max-replicas"},
		{[]string{"--model", model, "--replicas", "1", "--min-replicas", "2", "--max-replicas", "3"}, "--replicas (1) must be within --min-replicas (2)"},
		{[]string{"--model", model, "--replicas", "0"}, "--replicas must be at least 1"},
		{[]string{"--model", model, "--replicas", "2", "--min-replicas", "-1"}, "--min-replicas"},
		{[]string{"--model", model, "--deployment", "Big_Name"}, "--deployment"},
		{[]string{"--model", model, "--resources", "cpu=x"}, "--resources"},
		{[]string{"--model", filepath.Join(dir, "nope")}, "--model"},
		{[]string{"--model", model}, "127.0.0.1:1"}, // valid: the submit fails, naming the coordinator
	} {
		code, stdout, stderr := sluice(t, append(base, c.args...)...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, %q %q; want a failure naming %q", c.args, code, stdout, stderr, c.want)
		}
	}
}
