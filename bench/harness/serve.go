package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sluice bench serve: the online benchmark of an OpenAI-compatible server
// (sluice serve, or vLLM's), as vLLM's benchmark_serving: Poisson
// arrivals, random token-id prompts, streamed completions.

// LatencyStats are a latency's mean and percentiles, in milliseconds.
type LatencyStats struct {
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P99  float64 `json:"p99_ms"`
}

func latencies(xs []float64) LatencyStats {
	if len(xs) == 0 {
		return LatencyStats{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	sum := 0.0
	for _, x := range s {
		sum += x
	}
	pct := func(p float64) float64 { return s[min(len(s)-1, int(math.Ceil(p*float64(len(s))))-1)] }
	return LatencyStats{Mean: sum / float64(len(s)) * 1e3, P50: pct(0.5) * 1e3, P99: pct(0.99) * 1e3}
}

// ServeResult is what `bench serve` reports.
type ServeResult struct {
	URL                  string       `json:"url"`
	Model                string       `json:"model"`
	Rate                 string       `json:"rate"`
	Requests             int          `json:"requests"`
	Completed            int          `json:"completed"`
	Failed               int          `json:"failed"`
	FirstError           string       `json:"first_error,omitempty"`
	Seconds              float64      `json:"duration_s"`
	PromptTokens         int          `json:"prompt_tokens"`
	OutputTokens         int          `json:"output_tokens"`
	RequestThroughput    float64      `json:"request_throughput"`     // completed requests / s
	OutputThroughput     float64      `json:"output_throughput"`      // output tokens / s
	TotalTokenThroughput float64      `json:"total_token_throughput"` // prompt + output tokens / s
	TTFT                 LatencyStats `json:"ttft"`
	TPOT                 LatencyStats `json:"tpot"` // per request: (e2e − ttft) / (output tokens − 1)
	ITL                  LatencyStats `json:"itl"`  // between streamed tokens
	E2E                  LatencyStats `json:"e2e"`
}

// oneResult is one request's timings.
type oneResult struct {
	err        error
	ttft, e2e  float64
	itl        []float64
	outTokens  int
	promptToks int
}

// ServeConfig is the online benchmark of an OpenAI-compatible server
// (`bench serve`).
type ServeConfig struct {
	URL       string // the server's base URL, http://host:port
	Model     string // the model name; "": the server's first in /v1/models
	Requests  int    // number of requests
	Rate      string // requests per second, Poisson arrivals; "inf" sends all at once
	MinLen    int    // shortest prompt in tokens
	MaxLen    int    // longest prompt in tokens
	OutputLen int    // output tokens per request, EOS ignored
	Vocab     int    // prompt token ids are uniform in [0, Vocab)
	Seed      uint64 // seed of the prompts and arrivals
	APIKey    string // the server's API key
	Output    string // json or text
}

// Serve sends the requests, streamed, and prints a ServeResult to stdout
// as JSON or text.
func Serve(ctx context.Context, stdout io.Writer, b ServeConfig) error {
	if b.URL == "" {
		return fmt.Errorf("give --url")
	}
	rate := math.Inf(1)
	if b.Rate != "inf" {
		r, err := strconv.ParseFloat(b.Rate, 64)
		if err != nil || !(r > 0) {
			return fmt.Errorf("--rate must be a positive number or inf, got %q", b.Rate)
		}
		rate = r
	}
	switch {
	case b.Requests < 1:
		return fmt.Errorf("--requests must be positive, got %d", b.Requests)
	case b.MinLen < 1 || b.MaxLen < b.MinLen:
		return fmt.Errorf("--min-len (%d) must be positive and at most --max-len (%d)", b.MinLen, b.MaxLen)
	case b.OutputLen < 1:
		return fmt.Errorf("--output-len must be positive, got %d", b.OutputLen)
	case b.Vocab < 1:
		return fmt.Errorf("--vocab must be positive, got %d", b.Vocab)
	case b.Output != "json" && b.Output != "text":
		return fmt.Errorf("--output must be json or text, got %q", b.Output)
	}
	base := strings.TrimRight(b.URL, "/")
	client := &http.Client{}
	if b.Model == "" {
		m, err := firstModel(ctx, client, base, b.APIKey)
		if err != nil {
			return err
		}
		b.Model = m
	}
	rng := rand.New(rand.NewPCG(b.Seed, 0x5e55))
	type job struct {
		body []byte
		at   time.Duration
		nTok int
	}
	jobs := make([]job, b.Requests)
	at := time.Duration(0)
	for i := range jobs {
		ids := make([]int32, b.MinLen+rng.IntN(b.MaxLen-b.MinLen+1))
		for j := range ids {
			ids[j] = int32(rng.IntN(b.Vocab))
		}
		body, _ := json.Marshal(map[string]any{
			"model": b.Model, "prompt": ids, "max_tokens": b.OutputLen, "min_tokens": b.OutputLen, "ignore_eos": true,
			"temperature": 0, "stream": true, "stream_options": map[string]bool{"include_usage": true}, "return_token_ids": true,
		})
		if !math.IsInf(rate, 1) && i > 0 {
			at += time.Duration(rng.ExpFloat64() / rate * float64(time.Second))
		}
		jobs[i] = job{body: body, at: at, nTok: len(ids)}
	}
	results := make([]oneResult, len(jobs))
	var wg sync.WaitGroup
	start := time.Now()
	for i, j := range jobs {
		if d := time.Until(start.Add(j.at)); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			results[i].err = ctx.Err()
			continue
		}
		wg.Go(func() { results[i] = streamOne(ctx, client, base+"/v1/completions", b.APIKey, j.body, j.nTok) })
	}
	wg.Wait()
	res := summarize(results, time.Since(start).Seconds())
	res.URL, res.Model, res.Rate, res.Requests = b.URL, b.Model, b.Rate, b.Requests
	if b.Output == "json" {
		return json.NewEncoder(stdout).Encode(res)
	}
	fmt.Fprintf(stdout, "bench serve %s (%s) at rate %s: %d/%d requests in %.2fs; %.2f req/s, %.1f output tokens/s, %.1f total tokens/s\n",
		res.URL, res.Model, res.Rate, res.Completed, res.Requests, res.Seconds, res.RequestThroughput, res.OutputThroughput, res.TotalTokenThroughput)
	for _, l := range []struct {
		name string
		s    LatencyStats
	}{{"TTFT", res.TTFT}, {"TPOT", res.TPOT}, {"ITL", res.ITL}, {"E2E", res.E2E}} {
		fmt.Fprintf(stdout, "  %-4s mean %8.2f ms  p50 %8.2f ms  p99 %8.2f ms\n", l.name, l.s.Mean, l.s.P50, l.s.P99)
	}
	if res.Failed > 0 {
		fmt.Fprintf(stdout, "  %d failed; first: %s\n", res.Failed, res.FirstError)
	}
	return nil
}

func summarize(rs []oneResult, secs float64) *ServeResult {
	res := &ServeResult{Seconds: secs}
	var ttft, tpot, itl, e2e []float64
	for _, r := range rs {
		if r.err != nil {
			res.Failed++
			if res.FirstError == "" {
				res.FirstError = r.err.Error()
			}
			continue
		}
		res.Completed++
		res.PromptTokens += r.promptToks
		res.OutputTokens += r.outTokens
		ttft = append(ttft, r.ttft)
		e2e = append(e2e, r.e2e)
		itl = append(itl, r.itl...)
		if r.outTokens > 1 {
			tpot = append(tpot, (r.e2e-r.ttft)/float64(r.outTokens-1))
		}
	}
	res.RequestThroughput = float64(res.Completed) / secs
	res.OutputThroughput = float64(res.OutputTokens) / secs
	res.TotalTokenThroughput = float64(res.PromptTokens+res.OutputTokens) / secs
	res.TTFT, res.TPOT, res.ITL, res.E2E = latencies(ttft), latencies(tpot), latencies(itl), latencies(e2e)
	return res
}

// streamOne sends one streamed completion and times its tokens: the
// chunks' token_ids (return_token_ids) count them, or, from a server
// without it, one per chunk with text.
func streamOne(ctx context.Context, client *http.Client, url, key string, body []byte, promptToks int) oneResult {
	r := oneResult{promptToks: promptToks}
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
	if err != nil {
		r.err = err
		return r
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		r.err = err
		return r
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		r.err = fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
		return r
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	last := start
	done := false
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if line == "[DONE]" {
			done = true
			break
		}
		var c struct {
			Choices []struct {
				Text     string  `json:"text"`
				TokenIDs []int32 `json:"token_ids"`
			} `json:"choices"`
			Usage *struct {
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			r.err = fmt.Errorf("a chunk: %w", err)
			return r
		}
		if c.Error != nil {
			r.err = errors.New(c.Error.Message)
			return r
		}
		n := 0
		for _, ch := range c.Choices {
			n += len(ch.TokenIDs)
			if ch.TokenIDs == nil && ch.Text != "" {
				n++
			}
		}
		now := time.Now()
		if n > 0 {
			if r.outTokens == 0 {
				r.ttft = now.Sub(start).Seconds()
				n--
				r.outTokens++
			}
			if n > 0 {
				d := now.Sub(last).Seconds() / float64(n)
				for range n {
					r.itl = append(r.itl, d)
				}
				r.outTokens += n
			}
			last = now
		}
		if c.Usage != nil {
			r.outTokens = c.Usage.CompletionTokens
		}
	}
	if err := sc.Err(); err != nil {
		r.err = err
	} else if !done {
		r.err = errors.New("the stream ended without data: [DONE]")
	}
	r.e2e = time.Since(start).Seconds()
	return r
}

func firstModel(ctx context.Context, client *http.Client, base, key string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/v1/models", nil)
	if err != nil {
		return "", fmt.Errorf("--url: %w", err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("--url: %w", err)
	}
	defer resp.Body.Close()
	var ml struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s/v1/models: %s", base, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&ml); err != nil || len(ml.Data) == 0 {
		return "", fmt.Errorf("GET %s/v1/models: no model listed (%v); give --model", base, err)
	}
	return ml.Data[0].ID, nil
}
