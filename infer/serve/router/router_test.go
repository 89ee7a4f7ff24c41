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
