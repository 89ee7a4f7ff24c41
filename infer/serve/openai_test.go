package serve_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/infer/engine"
	"github.com/sluicehq/sluice/infer/serve"
	"github.com/sluicehq/sluice/infer/tokenizer"
)

// openaiVersion pins the official openai npm package the tests drive the
// server with (6.x runs on node 20; 7.x needs node 22).
const openaiVersion = "6.30.1"

// openaiModules returns <module root>/.cache/npm/openai-VERSION/node_modules,
// installing the package with npm the first time (git-ignored; never
// committed). With SLUICE_OFFLINE=1 a failed install skips the test.
func openaiModules(t *testing.T) string {
	t.Helper()
	dir, err := installOpenAI()
	if err != nil {
		if os.Getenv("SLUICE_OFFLINE") == "1" {
			t.Skipf("openai npm package unavailable (SLUICE_OFFLINE=1): %v", err)
		}
		t.Fatalf("installing openai@%s with npm: %v\n(the test needs node, npm and the npm registry; set SLUICE_OFFLINE=1 to skip)", openaiVersion, err)
	}
	return dir
}

func installOpenAI() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	base := filepath.Join(root, ".cache", "npm")
	dir := filepath.Join(base, "openai-"+openaiVersion)
	mods := filepath.Join(dir, "node_modules")
	done := func() bool {
		_, err := os.Stat(filepath.Join(mods, "openai", "package.json"))
		return err == nil
	}
	if done() {
		return mods, nil
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(base, "openai.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if done() {
		return mods, nil
	}
	tmp, err := os.MkdirTemp(base, "openai.tmp")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("npm", "install", "--no-audit", "--no-fund", "--no-save", "--prefix", tmp, "openai@"+openaiVersion)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s: %w\n%s", cmd, err, out)
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return mods, nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// runClient runs testdata/openai_client.cjs against v and decodes its report.
func runClient(t *testing.T, v *env, key string, extraEnv ...string) map[string]json.RawMessage {
	t.Helper()
	mods := openaiModules(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "testdata/openai_client.cjs")
	cmd.Env = append(os.Environ(), "NODE_PATH="+mods, "OPENAI_BASE_URL="+v.url+"/v1", "OPENAI_API_KEY="+key)
	cmd.Env = append(cmd.Env, extraEnv...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node testdata/openai_client.cjs: %v\n%s", err, stderr.String())
	}
	var rep map[string]json.RawMessage
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("the client's report %q: %v", out, err)
	}
	return rep
}

func field[T any](t *testing.T, rep map[string]json.RawMessage, key string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rep[key], &v); err != nil {
		t.Fatalf("report %s = %s: %v", key, rep[key], err)
	}
	return v
}

// TestOpenAIClient drives the server with the official openai npm package:
// completions (greedy, logprobs, stop strings, streaming with usage), chat
// (n > 1 seeded, logprobs, streaming) and errors, each checked against the
// engine's own answer.
func TestOpenAIClient(t *testing.T) {
	v := newEnv(t, serve.Config{ModelName: "llama3", APIKey: "test-key", MaxQueue: 64, MaxBodyBytes: 1 << 20}, nil)
	rep := runClient(t, v, "test-key", "SLUICE_JSON_SCHEMA="+answerSchema)
	tok := v.l.Tokenizer
	ids := tok.Encode("The quick brown fox", true)
	gen := func(p engine.SamplingParams, prompt []int32) []engine.Completion {
		return v.want(t, engine.Request{PromptIDs: prompt, Params: p})
	}

	if got := field[[]string](t, rep, "models"); !slices.Equal(got, []string{"llama3"}) {
		t.Errorf("models.list: %v, want [llama3]", got)
	}
	type comp struct {
		Text     string  `json:"text"`
		Finish   string  `json:"finish"`
		TokenIDs []int32 `json:"token_ids"`
		Usage    struct {
			Prompt     int `json:"prompt_tokens"`
			Completion int `json:"completion_tokens"`
			Total      int `json:"total_tokens"`
		} `json:"usage"`
		Chunks int `json:"chunks"`
	}
	greedy := gen(engine.SamplingParams{MaxTokens: 16}, ids)[0]
	c := field[comp](t, rep, "completion")
	if c.Text != greedy.Text || !slices.Equal(c.TokenIDs, greedy.TokenIDs) || c.Finish != greedy.FinishReason ||
		c.Usage.Prompt != len(ids) || c.Usage.Completion != greedy.CompletionTokens || c.Usage.Total != len(ids)+greedy.CompletionTokens {
		t.Errorf("completions.create greedy: %+v, want the engine's %q %v %s", c, greedy.Text, greedy.TokenIDs, greedy.FinishReason)
	}
	s := field[comp](t, rep, "completion_stream")
	if s.Text != greedy.Text || s.Finish != greedy.FinishReason || s.Usage.Completion != greedy.CompletionTokens || s.Chunks < 2 {
		t.Errorf("completions.create stream: %+v, want the engine's %q %s in several chunks with usage", s, greedy.Text, greedy.FinishReason)
	}

	lp := field[struct {
		Tokens        []string             `json:"tokens"`
		TokenLogprobs []float32            `json:"token_logprobs"`
		TopLogprobs   []map[string]float32 `json:"top_logprobs"`
	}](t, rep, "completion_logprobs")
	wantLP := gen(engine.SamplingParams{MaxTokens: 4, Logprobs: 3}, ids)[0]
	if len(lp.TokenLogprobs) != len(wantLP.Logprobs) {
		t.Fatalf("logprobs: %d positions, want %d", len(lp.TokenLogprobs), len(wantLP.Logprobs))
	}
	for i, w := range wantLP.Logprobs {
		if lp.TokenLogprobs[i] != w.Sampled.Logprob || lp.Tokens[i] != w.Sampled.Token || len(lp.TopLogprobs[i]) == 0 || len(lp.TopLogprobs[i]) > 3 {
			t.Errorf("logprobs[%d]: %q %v top %v, want %q %v", i, lp.Tokens[i], lp.TokenLogprobs[i], lp.TopLogprobs[i], w.Sampled.Token, w.Sampled.Logprob)
		}
	}

	stop := field[comp](t, rep, "stop")
	wantStop := gen(engine.SamplingParams{MaxTokens: 40, Stop: []string{"e", "o"}}, ids)[0]
	if stop.Text != wantStop.Text || stop.Finish != wantStop.FinishReason {
		t.Errorf("stop strings: %q %s, want %q %s", stop.Text, stop.Finish, wantStop.Text, wantStop.FinishReason)
	}

	text, err := tok.ApplyChatTemplate([]tokenizer.Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Hello there"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	chatIDs := tok.Encode(text, false)
	wantChat := gen(engine.SamplingParams{N: 2, MaxTokens: 12, Temperature: 0.8, Seed: new(int64(5)), Logprobs: 2}, chatIDs)
	type chatOut struct {
		Index    int     `json:"index"`
		Content  string  `json:"content"`
		Role     string  `json:"role"`
		Finish   string  `json:"finish"`
		TokenIDs []int32 `json:"token_ids"`
		Logprobs []struct {
			Token   string  `json:"token"`
			Logprob float32 `json:"logprob"`
			Top     int     `json:"top"`
		} `json:"logprobs"`
	}
	chat := field[[]chatOut](t, rep, "chat")
	if len(chat) != 2 {
		t.Fatalf("chat n=2: %d choices", len(chat))
	}
	for i, ch := range chat {
		w := wantChat[i]
		if ch.Index != i || ch.Role != "assistant" || ch.Content != w.Text || ch.Finish != w.FinishReason || !slices.Equal(ch.TokenIDs, w.TokenIDs) || len(ch.Logprobs) != len(w.Logprobs) {
			t.Errorf("chat choice %d: %+v, want %q %s %v", i, ch, w.Text, w.FinishReason, w.TokenIDs)
			continue
		}
		for j, l := range ch.Logprobs {
			if l.Logprob != w.Logprobs[j].Sampled.Logprob || l.Top != 2 {
				t.Errorf("chat choice %d logprob %d: %+v, want %v with 2 top", i, j, l, w.Logprobs[j].Sampled.Logprob)
			}
		}
	}
	if wantChat[0].TokenIDs[0] == wantChat[1].TokenIDs[0] && slices.Equal(wantChat[0].TokenIDs, wantChat[1].TokenIDs) {
		t.Errorf("seeded n=2 gave two equal completions %v: the seeds should differ per index", wantChat[0].TokenIDs)
	}
	cs := field[[]chatOut](t, rep, "chat_stream")
	for i, ch := range cs {
		if ch.Content != wantChat[i].Text || ch.Finish != wantChat[i].FinishReason {
			t.Errorf("chat stream choice %d: %q %s, want %q %s", i, ch.Content, ch.Finish, wantChat[i].Text, wantChat[i].FinishReason)
		}
	}

	checkJSON(t, rep)

	type apiErr struct {
		Status  int    `json:"status"`
		Param   string `json:"param"`
		Message string `json:"message"`
	}
	for key, want := range map[string]apiErr{
		"not_found":    {404, "model", "does not exist"},
		"bad_param":    {400, "top_p", "top_p must be in (0, 1]"},
		"unauthorized": {401, "", "API key"},
	} {
		got := field[apiErr](t, rep, key)
		if got.Status != want.Status || got.Param != want.Param || !strings.Contains(got.Message, want.Message) {
			t.Errorf("%s: the client saw %+v, want %+v", key, got, want)
		}
	}
}

// answerSchema is the json_schema response format of TestOpenAIClient:
// bounded, so that every completion ends within max_tokens.
const answerSchema = `{"type": "object", "properties": {"answer": {"type": "string", "maxLength": 12}, "n": {"type": "integer"},
	"ok": {"type": "boolean"}, "tags": {"type": "array", "items": {"enum": ["x", "y"]}, "maxItems": 2}}, "required": ["answer", "n", "ok"],
	"additionalProperties": false}`

// checkJSON checks the structured outputs: every json_schema completion
// parses and validates; every json_object one that ended parses as an
// object, and one that ran out of tokens is a prefix of one.
func checkJSON(t *testing.T, rep map[string]json.RawMessage) {
	t.Helper()
	type out struct {
		Content string `json:"content"`
		Finish  string `json:"finish"`
	}
	for i, o := range field[[]out](t, rep, "json_schema") {
		var v struct {
			Answer *string   `json:"answer"`
			N      *int64    `json:"n"`
			OK     *bool     `json:"ok"`
			Tags   *[]string `json:"tags"`
		}
		dec := json.NewDecoder(strings.NewReader(o.Content))
		dec.DisallowUnknownFields()
		err := dec.Decode(&v)
		if err != nil || o.Finish != "stop" || v.Answer == nil || v.N == nil || v.OK == nil || len([]rune(*v.Answer)) > 12 ||
			v.Tags != nil && (len(*v.Tags) > 2 || slices.ContainsFunc(*v.Tags, func(s string) bool { return s != "x" && s != "y" })) {
			t.Errorf("json_schema choice %d: %q (%s, %v) does not validate", i, o.Content, o.Finish, err)
		}
	}
	for i, o := range field[[]out](t, rep, "json_object") {
		var m map[string]any
		if o.Finish == "stop" {
			if err := json.Unmarshal([]byte(o.Content), &m); err != nil {
				t.Errorf("json_object choice %d: %q: %v", i, o.Content, err)
			}
		} else if !strings.HasPrefix(o.Content, "{") {
			t.Errorf("json_object choice %d ran out of tokens at %q, not inside an object", i, o.Content)
		}
	}
}
