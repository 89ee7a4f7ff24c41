package router_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/infer"
	"github.com/sluicehq/sluice/infer/engine"
	"github.com/sluicehq/sluice/infer/serve"
	"github.com/sluicehq/sluice/infer/serve/router"
)

type replica struct {
	e  *engine.Engine
	hs *httptest.Server
}

// replicas starts n sluice servers over the llama3 fixture on loopback.
func replicas(t *testing.T, n int) ([]*replica, []string) {
	t.Helper()
	var reps []*replica
	var urls []string
	for range n {
		// One model per replica: a Runner serves one engine.
		l, err := infer.Load("../../model/testdata/fixtures/llama3", infer.LoadOptions{Device: "cpu"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		c := engine.DefaultConfig()
		c.MaxModelLen, c.NumBlocks = 256, 256
		e, err := engine.New(l.Runner, l.Tokenizer, c)
		if err != nil {
			t.Fatal(err)
		}
		cfg := serve.DefaultConfig()
		cfg.ModelName = "tiny"
		s, err := serve.New(e, l.Tokenizer, cfg)
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(s.Handler())
		t.Cleanup(func() { hs.Close(); e.Close() })
		reps = append(reps, &replica{e, hs})
		urls = append(urls, hs.URL)
	}
	return reps, urls
}

func complete(url, prompt string) (string, error) {
	resp, err := http.Post(url+"/v1/completions", "application/json",
		strings.NewReader(fmt.Sprintf(`{"model": "tiny", "prompt": %q, "max_tokens": 16, "temperature": 0, "ignore_eos": true}`, prompt)))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("%d %s", resp.StatusCode, b)
	}
	var c struct {
		Choices []struct{ Text string } `json:"choices"`
	}
	if err := json.Unmarshal(b, &c); err != nil || len(c.Choices) != 1 {
		return "", fmt.Errorf("%s: %v", b, err)
	}
	return c.Choices[0].Text, nil
}

// TestReplicaKilled kills one of three replicas during a burst: every
// request still succeeds, with the answer the engines give.
func TestReplicaKilled(t *testing.T) {
	reps, urls := replicas(t, 3)
	cfg := router.DefaultConfig()
	cfg.Replicas, cfg.Policy = urls, router.PolicyP2C
	r, err := router.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(r)
	defer front.Close()
	want := map[string]string{}
	for i := range 6 {
		p := fmt.Sprintf("burst prompt %d", i)
		cs, err := reps[0].e.Generate(context.Background(), []engine.Request{{Prompt: p, Params: engine.SamplingParams{MaxTokens: 16, IgnoreEOS: true}}})
		if err != nil {
			t.Fatal(err)
		}
		want[p] = cs[0].Text
	}
	const n = 90
	var wg sync.WaitGroup
	var ok atomic.Int64
	killed := make(chan struct{})
	var once sync.Once
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			p := fmt.Sprintf("burst prompt %d", i%6)
			got, err := complete(front.URL, p)
			if err == nil && got != want[p] {
				err = fmt.Errorf("%q: %q, want %q", p, got, want[p])
			}
			errs <- err
			if ok.Add(1) == n/3 {
				once.Do(func() {
					reps[1].hs.CloseClientConnections() // kill -9, as far as its clients can tell
					reps[1].hs.Listener.Close()
					close(killed)
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	<-killed
	served := r.Served()
	total := served[0] + served[1] + served[2]
	if total != n {
		t.Errorf("the replicas answered %v = %d requests, want %d (each once)", served, total, n)
	}
}

// TestPrefixAffinity: on a workload of shared long prefixes, affinity
// routing finds more prompt tokens in the replicas' prefix caches than
// random routing does (counted, not timed).
func TestPrefixAffinity(t *testing.T) {
	hits := func(policy string) float64 {
		reps, urls := replicas(t, 3)
		cfg := router.DefaultConfig()
		cfg.Replicas, cfg.Policy, cfg.PrefixBytes, cfg.Seed = urls, policy, 64, 1
		r, err := router.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		front := httptest.NewServer(r)
		defer front.Close()
		for i := range 40 {
			prefix := strings.Repeat(fmt.Sprintf("shared system prompt number %d. ", i%4), 6)
			if _, err := complete(front.URL, prefix+fmt.Sprintf("question %d", i)); err != nil {
				t.Fatal(err)
			}
		}
		var hit, queried int64
		for _, rp := range reps {
			g := rp.e.Gauges()
			hit, queried = hit+g.PrefixHitTokens, queried+g.PrefixQueriedTokens
		}
		return float64(hit) / float64(queried)
	}
	aff, rnd := hits(router.PolicyAffinity), hits(router.PolicyRandom)
	t.Logf("prefix-cache hit rate: affinity %.3f, random %.3f", aff, rnd)
	if aff <= rnd {
		t.Errorf("affinity routing's prefix-cache hit rate %.3f is not above random routing's %.3f", aff, rnd)
	}
}

// dying is a replica that dies before its first event: it takes each
// request and then drops the connection, every other time after sending a
// stream's headers (as a replica killed between answering and its first
// token would).
type dying struct {
	hs    *httptest.Server
	calls atomic.Int64
}

func newDying(t *testing.T) *dying {
	d := &dying{}
	d.hs = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if d.calls.Add(1)%2 == 0 {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			http.NewResponseController(w).Flush()
		}
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	t.Cleanup(d.hs.Close)
	return d
}

// TestStreamRetriedBeforeFirstEvent: streaming requests whose replica dies
// before their first event are retried on the live replica: every stream
// is whole (its text the engine's, ending in [DONE]), and the dying
// replica was tried.
func TestStreamRetriedBeforeFirstEvent(t *testing.T) {
	reps, urls := replicas(t, 1)
	dead := newDying(t)
	cfg := router.DefaultConfig()
	cfg.Replicas, cfg.Policy, cfg.Seed, cfg.DownFor = []string{dead.hs.URL, urls[0]}, router.PolicyRandom, 3, time.Nanosecond
	r, err := router.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(r)
	defer front.Close()
	const prompt = "stream me"
	cs, err := reps[0].e.Generate(context.Background(), []engine.Request{{Prompt: prompt, Params: engine.SamplingParams{MaxTokens: 12, IgnoreEOS: true}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		resp, err := http.Post(front.URL+"/v1/completions", "application/json", strings.NewReader(
			fmt.Sprintf(`{"model": "tiny", "prompt": %q, "max_tokens": 12, "temperature": 0, "ignore_eos": true, "stream": true}`, prompt)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var text strings.Builder
		events := strings.Split(strings.TrimSpace(string(b)), "\n\n")
		for _, ev := range events {
			data, ok := strings.CutPrefix(ev, "data: ")
			if !ok || data == "[DONE]" {
				continue
			}
			var c struct {
				Choices []struct{ Text string } `json:"choices"`
			}
			if err := json.Unmarshal([]byte(data), &c); err != nil {
				t.Fatalf("stream %d: event %q: %v", i, data, err)
			}
			for _, ch := range c.Choices {
				text.WriteString(ch.Text)
			}
		}
		if resp.StatusCode != 200 || events[len(events)-1] != "data: [DONE]" || text.String() != cs[0].Text {
			t.Errorf("stream %d: %d, text %q, last event %q; want %q and [DONE]", i, resp.StatusCode, text.String(), events[len(events)-1], cs[0].Text)
		}
	}
	if dead.calls.Load() < 2 {
		t.Errorf("the dying replica was tried %d times: the test did not exercise the retry (change the seed)", dead.calls.Load())
	}
	if s := r.Served(); s[0] != 0 || s[1] != 12 {
		t.Errorf("served %v, want [0 12]", s)
	}
}

// TestSetReplicas: a dynamic router answers 503 with no replica, then
// routes over the replicas SetReplicas gives, by their reported load.
func TestSetReplicas(t *testing.T) {
	_, urls := replicas(t, 2)
	cfg := router.DefaultConfig()
	cfg.Dynamic, cfg.Policy = true, router.PolicyP2C
	r, err := router.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(r)
	defer front.Close()
	if _, err := complete(front.URL, "x"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("with no replica: %v, want a 503", err)
	}
	// The first replica reports a long queue: power of two choices sends
	// every request to the second whenever it draws both.
	r.SetReplicas([]router.Target{{URL: urls[0], Load: 100}, {URL: urls[1], Load: 0}})
	for i := range 20 {
		if _, err := complete(front.URL, fmt.Sprint("p", i)); err != nil {
			t.Fatal(err)
		}
	}
	s := r.Served()
	if s[1] <= s[0] {
		t.Errorf("served %v: the loaded replica got as many", s)
	}
	r.SetReplicas([]router.Target{{URL: urls[0]}})
	if _, err := complete(front.URL, "last"); err != nil {
		t.Fatal(err)
	}
	if s := r.Served(); len(s) != 1 || s[0] == 0 {
		t.Errorf("served %v after keeping the first replica (its count kept)", s)
	}
}
