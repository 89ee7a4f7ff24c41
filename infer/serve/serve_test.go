package serve_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/infer"
	"github.com/sluicehq/sluice/infer/engine"
	"github.com/sluicehq/sluice/infer/serve"
	"github.com/sluicehq/sluice/infer/tokenizer"
)

const fixture = "../model/testdata/fixtures/llama3"

// env is a server over the llama3 fixture on the cpu, on loopback.
type env struct {
	e   *engine.Engine
	l   *infer.Loaded
	s   *serve.Server
	url string
}

func newEnv(t *testing.T, cfg serve.Config, ecfg func(*engine.Config)) *env {
	t.Helper()
	l, err := infer.Load(fixture, infer.LoadOptions{Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	c := engine.DefaultConfig()
	c.MaxModelLen = 256
	c.NumBlocks = 256
	if ecfg != nil {
		ecfg(&c)
	}
	e, err := engine.New(l.Runner, l.Tokenizer, c)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ModelName = "llama3"

	s, err := serve.New(e, l.Tokenizer, cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		hs.Close()
		if err := e.Close(); err != nil {
			t.Errorf("engine close: %v", err)
		}
		l.Close()
	})
	return &env{e: e, l: l, s: s, url: hs.URL}
}

func post(t *testing.T, url, body string, hdr ...string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// want runs the engine directly: what the server must answer.
func (v *env) want(t *testing.T, r engine.Request) []engine.Completion {
	t.Helper()
	cs, err := v.e.Generate(context.Background(), []engine.Request{r})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

type completion struct {
	Choices []struct {
		Index        int     `json:"index"`
		Text         string  `json:"text"`
		FinishReason string  `json:"finish_reason"`
		TokenIDs     []int32 `json:"token_ids"`
		Message      struct {
			Content string `json:"content"`
		} `json:"message"`
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
		Logprobs json.RawMessage `json:"logprobs"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

func TestCompletionsMatchEngine(t *testing.T) {
	v := newEnv(t, serve.DefaultConfig(), nil)
	ids := v.l.Tokenizer.Encode("The quick brown fox", true)
	for _, tc := range []struct {
		name string
		body string
		p    engine.SamplingParams
	}{
		{"greedy", `"temperature": 0, "max_tokens": 24`, engine.SamplingParams{MaxTokens: 24}},
		{"seeded n=3", `"temperature": 0.9, "top_p": 0.9, "top_k": 50, "seed": 7, "n": 3, "max_tokens": 12`,
			engine.SamplingParams{Temperature: 0.9, TopP: 0.9, TopK: 50, Seed: new(int64(7)), N: 3, MaxTokens: 12}},
		{"penalties", `"temperature": 0, "presence_penalty": 0.5, "frequency_penalty": 0.3, "repetition_penalty": 1.2, "max_tokens": 20`,
			engine.SamplingParams{PresencePenalty: 0.5, FrequencyPenalty: 0.3, RepetitionPenalty: 1.2, MaxTokens: 20}},
		{"stop token", `"temperature": 0, "max_tokens": 30, "stop_token_ids": [259]`, engine.SamplingParams{MaxTokens: 30, StopTokenIDs: []int32{259}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := v.want(t, engine.Request{PromptIDs: ids, Params: tc.p})
			for _, stream := range []bool{false, true} {
				body := fmt.Sprintf(`{"model": "llama3", "prompt": "The quick brown fox", "return_token_ids": true, "stream": %v, %s}`, stream, tc.body)
				got := complete(t, v.url+"/v1/completions", body, stream)
				if len(got) != len(want) {
					t.Fatalf("stream %v: %d choices, want %d", stream, len(got), len(want))
				}
				for i, c := range got {
					w := want[i]
					if !slices.Equal(c.TokenIDs, w.TokenIDs) || c.Text != w.Text || c.FinishReason != w.FinishReason {
						t.Errorf("stream %v choice %d: %v %q %s, want the engine's %v %q %s", stream, i, c.TokenIDs, c.Text, c.FinishReason, w.TokenIDs, w.Text, w.FinishReason)
					}
				}
			}
		})
	}
}

// choiceOut is a choice as a client assembles it.
type choiceOut struct {
	Text, FinishReason string
	TokenIDs           []int32
}

// complete posts a completions or chat body and assembles the choices,
// from the stream's chunks when stream is set.
func complete(t *testing.T, url, body string, stream bool) []choiceOut {
	t.Helper()
	code, b := post(t, url, body)
	if code != 200 {
		t.Fatalf("POST %s: %d %s", url, code, b)
	}
	var out []choiceOut
	at := func(i int) *choiceOut {
		for len(out) <= i {
			out = append(out, choiceOut{})
		}
		return &out[i]
	}
	if !stream {
		var c completion
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		for _, ch := range c.Choices {
			o := at(ch.Index)
			o.Text, o.FinishReason, o.TokenIDs = ch.Text+ch.Message.Content, ch.FinishReason, ch.TokenIDs
		}
		return out
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n\n")
	if lines[len(lines)-1] != "data: [DONE]" {
		t.Fatalf("stream ends with %q, want data: [DONE]", lines[len(lines)-1])
	}
	for _, l := range lines[:len(lines)-1] {
		var c completion
		if err := json.Unmarshal([]byte(strings.TrimPrefix(l, "data: ")), &c); err != nil {
			t.Fatalf("chunk %q: %v", l, err)
		}
		for _, ch := range c.Choices {
			o := at(ch.Index)
			o.Text += ch.Text + ch.Delta.Content
			o.TokenIDs = append(o.TokenIDs, ch.TokenIDs...)
			if ch.FinishReason != "" {
				o.FinishReason = ch.FinishReason
			}
		}
	}
	return out
}

func TestChatMatchesEngine(t *testing.T) {
	v := newEnv(t, serve.DefaultConfig(), nil)
	p := engine.SamplingParams{MaxTokens: 16, Stop: []string{"e"}}
	text, err := v.l.Tokenizer.ApplyChatTemplate([]tokenizer.Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Hello there"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	want := v.want(t, engine.Request{PromptIDs: v.l.Tokenizer.Encode(text, false), Params: p})
	for _, stream := range []bool{false, true} {
		body := fmt.Sprintf(`{"model": "llama3", "stream": %v, "temperature": 0, "max_completion_tokens": 16, "stop": "e", "return_token_ids": true,
			"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Hello there"}]}]}`, stream)
		got := complete(t, v.url+"/v1/chat/completions", body, stream)
		if len(got) != 1 || got[0].Text != want[0].Text || got[0].FinishReason != want[0].FinishReason || !slices.Equal(got[0].TokenIDs, want[0].TokenIDs) {
			t.Errorf("stream %v: %+v, want %q %s %v", stream, got, want[0].Text, want[0].FinishReason, want[0].TokenIDs)
		}
	}
}

func TestErrors(t *testing.T) {
	v := newEnv(t, serve.Config{ModelName: "llama3", APIKey: "sekret", MaxQueue: 8, MaxBodyBytes: 1 << 20}, nil)
	auth := []string{"Authorization", "Bearer sekret"}
	for _, tc := range []struct {
		path, body string
		hdr        []string
		status     int
		param, msg string
	}{
		{"/v1/completions", `{"prompt": "x"}`, nil, 401, "", "API key"},
		{"/v1/completions", `{"prompt": "x"}`, []string{"Authorization", "Bearer wrong"}, 401, "", "API key"},
		{"/v1/completions", `{"model": "gpt-4", "prompt": "x"}`, auth, 404, "model", "does not exist"},
		{"/v1/completions", `{"prompt": "x", "top_p": 3}`, auth, 400, "top_p", "top_p must be in (0, 1]"},
		{"/v1/completions", `{"prompt": "x", "temperature": -1}`, auth, 400, "temperature", "temperature"},
		{"/v1/completions", `{"prompt": "x", "max_tokens": "ten"}`, auth, 400, "max_tokens", "expected an integer"},
		{"/v1/completions", `{"prompt": "x", "max_tokens": 100000}`, auth, 400, "max_tokens", "maximum context length is 256"},
		{"/v1/completions", `{"prompt": "x", "n": 0}`, auth, 400, "n", "n must be at least 1"},
		{"/v1/completions", `{"prompt": "x", "logprobs": 50}`, auth, 400, "logprobs", "MaxLogprobs"},
		{"/v1/completions", `{"prompt": [1, 99999]}`, auth, 400, "prompt", "outside the vocabulary"},
		{"/v1/completions", `{"max_tokens": 3}`, auth, 400, "prompt", "prompt is required"},
		{"/v1/completions", `{"prompt": "x", "n": 9}`, auth, 429, "", "queue is full"},
		{"/v1/completions", `{"prompt": "x"`, auth, 400, "", "not valid JSON"},
		{"/v1/completions", `{"prompt": "x", "stop": 3}`, auth, 400, "", "stop must be a string"},
		{"/v1/chat/completions", `{"messages": []}`, auth, 400, "messages", "messages is empty"},
		{"/v1/chat/completions", `{"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}`, auth, 400, "top_logprobs", "needs logprobs"},
		{"/v1/chat/completions", `{"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "yaml"}}`, auth, 400, "response_format.type", "yaml"},
		{"/v1/chat/completions", `{"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"anyOf": []}}}}`,
			auth, 400, "response_format.json_schema.schema", `"anyOf" is not supported`},
		{"/v1/nothing", `{}`, auth, 404, "", "no route"},
		{"/detokenize", `{"tokens": [1, -2]}`, auth, 400, "tokens", "tokens[1]"},
	} {
		code, b := post(t, v.url+tc.path, tc.body, tc.hdr...)
		var e struct {
			Error struct {
				Message string  `json:"message"`
				Type    string  `json:"type"`
				Param   *string `json:"param"`
				Code    int     `json:"code"`
			} `json:"error"`
		}
		if err := json.Unmarshal(b, &e); err != nil {
			t.Errorf("%s %s: %d %s: not OpenAI's error JSON: %v", tc.path, tc.body, code, b, err)
			continue
		}
		param := ""
		if e.Error.Param != nil {
			param = *e.Error.Param
		}
		if code != tc.status || e.Error.Code != tc.status || param != tc.param || !strings.Contains(e.Error.Message, tc.msg) || e.Error.Type == "" {
			t.Errorf("%s %s: %d %s, want %d with param %q and a message holding %q", tc.path, tc.body, code, b, tc.status, tc.param, tc.msg)
		}
	}
	// The ones that need no key, and the ones that work with it.
	for _, p := range []string{"/health", "/metrics"} {
		resp, err := http.Get(v.url + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %d, want 200 without a key", p, resp.StatusCode)
		}
	}
	code, b := post(t, v.url+"/tokenize", `{"prompt": "hello"}`, auth...)
	var tok struct {
		Count  int     `json:"count"`
		Tokens []int32 `json:"tokens"`
	}
	json.Unmarshal(b, &tok)
	if want := v.l.Tokenizer.Encode("hello", true); code != 200 || !slices.Equal(tok.Tokens, want) || tok.Count != len(want) {
		t.Errorf("/tokenize: %d %s, want %v", code, b, want)
	}
	code, b = post(t, v.url+"/detokenize", fmt.Sprintf(`{"tokens": %v}`, strings.ReplaceAll(fmt.Sprint(tok.Tokens), " ", ",")), auth...)
	var detok struct{ Prompt string }
	json.Unmarshal(b, &detok)
	if code != 200 || detok.Prompt != "<|begin_of_text|>hello" {
		t.Errorf("/detokenize: %d %s, want <|begin_of_text|>hello", code, b)
	}
}

// TestConcurrentStreams runs 200 streaming clients at once, a quarter of
// which hang up after their first chunk: every other one gets the
// engine's completion exactly, and once all are gone every KV block is
// free again.
func TestConcurrentStreams(t *testing.T) {
	v := newEnv(t, serve.Config{ModelName: "llama3", MaxQueue: 400, MaxBodyBytes: 1 << 20}, func(c *engine.Config) {
		c.MaxNumSeqs = 64
		c.MaxNumBatchedTokens = 512
		c.NumBlocks = 160 // fewer than 200 streams need: preemption too
	})
	const clients = 200
	prompts := make([]string, 10)
	wants := make([]engine.Completion, len(prompts))
	for i := range prompts {
		prompts[i] = fmt.Sprintf("Prompt number %d says", i)
		wants[i] = v.want(t, engine.Request{Prompt: prompts[i], Params: engine.SamplingParams{MaxTokens: 32, IgnoreEOS: true}})[0]
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Go(func() {
			errs <- streamClient(v.url, prompts[c%len(prompts)], wants[c%len(prompts)], c%4 == 3)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		g := v.e.Gauges()
		if g.FreeBlocks == g.NumBlocks && g.Running == 0 && g.Waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("KV blocks leaked: %+v after every client finished", g)
		}
		time.Sleep(10 * time.Millisecond) // polling the engine's gauges with a deadline
	}
	// Memory bounded: the server's goroutines (one or more per stream while
	// it lives) go back to the starting count, and the live heap to within
	// 16 MiB of its start (200 streams' requests, sequences and buffers
	// retained would pass that; the engine's grown step buffers do not).
	for n := runtime.NumGoroutine(); n > goroutines+4; n = runtime.NumGoroutine() {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after every client finished, %d before the clients", n, goroutines)
		}
		time.Sleep(10 * time.Millisecond)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	t.Logf("goroutines %d before the clients, %d after; live heap %d then %d bytes", goroutines, runtime.NumGoroutine(), before.HeapAlloc, after.HeapAlloc)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 16<<20 {
		t.Errorf("live heap grew by %d bytes over 200 streams (%d before, %d after)", grew, before.HeapAlloc, after.HeapAlloc)
	}
}

// streamClient streams one completion over its own connection, hanging up
// after the first chunk when hangUp is set.
func streamClient(url, prompt string, want engine.Completion, hangUp bool) error {
	body := fmt.Sprintf(`{"prompt": %q, "max_tokens": 32, "temperature": 0, "ignore_eos": true, "stream": true, "return_token_ids": true}`, prompt)
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Post(url+"/v1/completions", "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%d %s", resp.StatusCode, b)
	}
	sc := bufio.NewScanner(resp.Body)
	var text string
	var toks []int32
	finish := ""
	done := false
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		if line == "data: [DONE]" {
			done = true
			break
		}
		var c completion
		if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &c); err != nil {
			return fmt.Errorf("chunk %q: %w", line, err)
		}
		for _, ch := range c.Choices {
			text += ch.Text
			toks = append(toks, ch.TokenIDs...)
			if ch.FinishReason != "" {
				finish = ch.FinishReason
			}
		}
		if hangUp {
			return nil // the deferred Close drops the connection mid-stream
		}
	}
	if !done || text != want.Text || !slices.Equal(toks, want.TokenIDs) || finish != "length" {
		return fmt.Errorf("prompt %q: got %q %v %q (done %v), want %q %v length", prompt, text, toks, finish, done, want.Text, want.TokenIDs)
	}
	return nil
}

func TestTimeoutAndQueue(t *testing.T) {
	v := newEnv(t, serve.Config{ModelName: "llama3", MaxQueue: 1, RequestTimeout: time.Nanosecond, MaxBodyBytes: 1 << 20}, nil)
	code, b := post(t, v.url+"/v1/completions", `{"prompt": "x", "max_tokens": 200, "ignore_eos": true}`)
	if code != http.StatusGatewayTimeout || !bytes.Contains(b, []byte("request timeout")) {
		t.Errorf("past the timeout: %d %s, want 504", code, b)
	}
	code, b = post(t, v.url+"/v1/completions", `{"prompt": "x", "max_tokens": 200, "ignore_eos": true, "stream": true}`)
	if code != 200 || !bytes.Contains(b, []byte(`"code":504`)) {
		t.Errorf("streaming past the timeout: %d %s, want an error event with code 504", code, b)
	}
}

// TestDrain cancels Run while a stream is going: the stream finishes
// whole, and Run returns once it has.
func TestDrain(t *testing.T) {
	l, err := infer.Load(fixture, infer.LoadOptions{Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := engine.DefaultConfig()
	c.MaxModelLen, c.NumBlocks = 256, 64
	e, err := engine.New(l.Runner, l.Tokenizer, c)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	s, err := serve.New(e, l.Tokenizer, serve.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx, ln) }()
	want, err := e.Generate(context.Background(), []engine.Request{{Prompt: "drain", Params: engine.SamplingParams{MaxTokens: 100, IgnoreEOS: true}}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+ln.Addr().String()+"/v1/completions", "application/json",
		strings.NewReader(`{"prompt": "drain", "max_tokens": 100, "temperature": 0, "ignore_eos": true, "stream": true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n') // the stream has started
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	var text string
	for _, l := range strings.Split(first+string(rest), "\n") {
		var c completion
		if json.Unmarshal([]byte(strings.TrimPrefix(l, "data: ")), &c) == nil {
			for _, ch := range c.Choices {
				text += ch.Text
			}
		}
	}
	if !strings.HasSuffix(string(rest), "data: [DONE]\n\n") || text != want[0].Text {
		t.Errorf("drained stream: %q, want %q and [DONE]", text, want[0].Text)
	}
	if err := <-ran; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// TestMetrics checks /metrics after a few requests: vLLM's names with the
// sluice: prefix, counting what the requests did.
func TestMetrics(t *testing.T) {
	v := newEnv(t, serve.DefaultConfig(), nil)
	prompt := "A shared prefix that is long enough to fill a block or two of the cache, then"
	for i := range 3 {
		code, b := post(t, v.url+"/v1/completions", fmt.Sprintf(`{"prompt": %q, "max_tokens": 8, "ignore_eos": true, "stream": %v}`, prompt, i%2 == 1))
		if code != 200 {
			t.Fatalf("%d %s", code, b)
		}
	}
	resp, err := http.Get(v.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	values := map[string]float64{}
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		name, rest, _ := strings.Cut(l, "{")
		_, val, _ := strings.Cut(rest, "} ")
		var f float64
		fmt.Sscan(val, &f)
		if !strings.Contains(rest, "le=") && !strings.Contains(rest, "finished_reason") {
			values[name] = f
		}
	}
	n := float64(len(v.l.Tokenizer.Encode(prompt, true)))
	for name, want := range map[string]float64{
		"sluice:num_requests_running":              1e9, // present; any value
		"sluice:num_requests_waiting":              1e9,
		"sluice:kv_cache_usage_perc":               1e9,
		"sluice:prompt_tokens_total":               3 * n,
		"sluice:generation_tokens_total":           24,
		"sluice:time_to_first_token_seconds_count": 3,
		"sluice:e2e_request_latency_seconds_count": 3,
		"sluice:inter_token_latency_seconds_count": 21,
		"sluice:prefix_cache_queries_total":        3 * n,
		"sluice:request_generation_tokens_count":   3,
		"sluice:num_requests_admitted":             0,
		"sluice:prefill_steps_total":               1e9,
		"sluice:prefill_step_seconds_total":        1e9,
		"sluice:decode_steps_total":                1e9,
		"sluice:decode_step_seconds_total":         1e9,
	} {
		got, ok := values[name]
		if !ok || want != 1e9 && got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	if values["sluice:prefill_steps_total"] < 1 || values["sluice:decode_steps_total"] < 1 || values["sluice:decode_step_seconds_total"] <= 0 {
		t.Errorf("prefill steps %v, decode steps %v in %vs: want some of each", values["sluice:prefill_steps_total"], values["sluice:decode_steps_total"], values["sluice:decode_step_seconds_total"])
	}
	if values["sluice:prefix_cache_hits_total"] <= 0 {
		t.Errorf("sluice:prefix_cache_hits_total = %v, want > 0 for three equal prompts", values["sluice:prefix_cache_hits_total"])
	}
	if !strings.Contains(string(b), `sluice:request_success_total{finished_reason="length",model_name="llama3"} 3`) {
		t.Errorf("no request_success_total of 3 with finished_reason length in\n%s", b)
	}
}

// TestDrainRefuses: once draining, new requests and /health get 503.
func TestDrainRefuses(t *testing.T) {
	v := newEnv(t, serve.DefaultConfig(), nil)
	v.s.Drain()
	code, b := post(t, v.url+"/v1/completions", `{"prompt": "x"}`)
	if code != http.StatusServiceUnavailable || !bytes.Contains(b, []byte("shutting down")) {
		t.Errorf("completions while draining: %d %s, want 503", code, b)
	}
	resp, err := http.Get(v.url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/health while draining: %d, want 503", resp.StatusCode)
	}
}

// TestSpecDecodeMetrics: with n-gram speculation on, /metrics counts the
// engine's draft and accepted tokens and its acceptance rate.
func TestSpecDecodeMetrics(t *testing.T) {
	v := newEnv(t, serve.DefaultConfig(), func(c *engine.Config) {
		c.Speculative = engine.SpeculativeConfig{Method: "ngram", NumSpeculativeTokens: 3}
	})
	code, b := post(t, v.url+"/v1/completions", `{"prompt": "one two one two one two one two", "max_tokens": 24, "ignore_eos": true, "temperature": 0}`)
	if code != 200 {
		t.Fatalf("%d %s", code, b)
	}
	resp, err := http.Get(v.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	st := v.e.Stats()
	if st.SpecDraftTokens == 0 {
		t.Fatalf("the engine drafted nothing: %+v", st)
	}
	for name, want := range map[string]string{
		"sluice:spec_decode_num_draft_tokens_total":    fmt.Sprint(st.SpecDraftTokens),
		"sluice:spec_decode_num_accepted_tokens_total": fmt.Sprint(st.SpecAcceptedTokens),
		"sluice:spec_decode_draft_acceptance_rate":     fmt.Sprint(st.SpecAcceptanceRate),
	} {
		if line := name + `{model_name="llama3"} ` + want; !strings.Contains(string(body), line+"\n") {
			t.Errorf("no %q in /metrics", line)
		}
	}
}
