package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/bench/harness"
)

// TestServeCommand runs `sluice serve` in-process on a fixture model:
// greedy completions through it equal `sluice generate`'s token for
// token, `sluice bench serve` drives it, and cancelling it drains and
// exits 0.
func TestServeCommand(t *testing.T) {
	dir := "../../infer/model/testdata/fixtures/llama3"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- runMain(ctx, &env{stdout: &out, stderr: &errb}, []string{"serve", "--model", dir, "--port", "0",
			"--served-model-name", "tiny", "--api-key", "k", "--max-model-len", "256", "--max-num-seqs", "32", "--device", "cpu"})
	}()
	addr := regexp.MustCompile(`http://[0-9.:]+`)
	url := ""
	for deadline := time.Now().Add(60 * time.Second); url == ""; {
		select {
		case code := <-exited:
			t.Fatalf("sluice serve exited %d: %s", code, errb.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sluice serve printed no address: %q %q", out.String(), errb.String())
		}
		url = addr.FindString(out.String())
		time.Sleep(10 * time.Millisecond) // polling the command's output with a deadline
	}

	// The server's greedy tokens against sluice generate's.
	var gen, generr bytes.Buffer
	if code := runMain(context.Background(), &env{stdout: &gen, stderr: &generr}, []string{"generate", "--model", dir,
		"--prompt-ids", "5,6,7,8,9", "--max-tokens", "20", "--temperature", "0", "--ignore-eos", "--output", "json"}); code != 0 {
		t.Fatalf("generate: exit %d: %s", code, generr.String())
	}
	var want struct {
		TokenIDs []int32 `json:"token_ids"`
		Text     string  `json:"text"`
	}
	if err := json.Unmarshal(gen.Bytes(), &want); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", url+"/v1/completions", strings.NewReader(
		`{"model": "tiny", "prompt": [5, 6, 7, 8, 9], "max_tokens": 20, "temperature": 0, "ignore_eos": true, "return_token_ids": true}`))
	req.Header.Set("Authorization", "Bearer k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var got struct {
		Choices []struct {
			Text     string  `json:"text"`
			TokenIDs []int32 `json:"token_ids"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(b, &got); err != nil || len(got.Choices) != 1 {
		t.Fatalf("%d %s: %v", resp.StatusCode, b, err)
	}
	if !slices.Equal(got.Choices[0].TokenIDs, want.TokenIDs) || got.Choices[0].Text != want.Text {
		t.Errorf("sluice serve: %v %q, sluice generate: %v %q", got.Choices[0].TokenIDs, got.Choices[0].Text, want.TokenIDs, want.Text)
	}

	// sluice router in front of it.
	var rout, rerr syncBuffer
	rctx, rcancel := context.WithCancel(context.Background())
	rexited := make(chan int, 1)
	go func() {
		rexited <- runMain(rctx, &env{stdout: &rout, stderr: &rerr}, []string{"router", "--listen", "127.0.0.1:0", "--replicas", url})
	}()
	rurl := ""
	for deadline := time.Now().Add(30 * time.Second); rurl == ""; {
		if time.Now().After(deadline) {
			t.Fatalf("sluice router printed no address: %q %q", rout.String(), rerr.String())
		}
		rurl = addr.FindString(rout.String())
		time.Sleep(10 * time.Millisecond) // polling the command's output with a deadline
	}
	req, _ = http.NewRequest("POST", rurl+"/v1/completions", strings.NewReader(
		`{"model": "tiny", "prompt": [5, 6, 7, 8, 9], "max_tokens": 20, "temperature": 0, "ignore_eos": true, "return_token_ids": true}`))
	req.Header.Set("Authorization", "Bearer k")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := json.Unmarshal(b, &got); err != nil || len(got.Choices) != 1 || !slices.Equal(got.Choices[0].TokenIDs, want.TokenIDs) {
		t.Errorf("through sluice router: %d %s, want tokens %v", resp.StatusCode, b, want.TokenIDs)
	}
	rcancel()
	if code := <-rexited; code != 0 {
		t.Errorf("sluice router exited %d: %s", code, rerr.String())
	}

	// The online benchmark against it.
	var bench, bencherr bytes.Buffer
	if code := runMain(context.Background(), &env{stdout: &bench, stderr: &bencherr}, []string{"bench", "serve", "--url", url,
		"--api-key", "k", "--requests", "24", "--rate", "200", "--min-len", "8", "--max-len", "40", "--output-len", "12", "--vocab", "512"}); code != 0 {
		t.Fatalf("bench serve: exit %d: %s", code, bencherr.String())
	}
	var res harness.ServeResult
	if err := json.Unmarshal(bench.Bytes(), &res); err != nil {
		t.Fatalf("%v: %s", err, bench.String())
	}
	if res.Completed != 24 || res.Failed != 0 || res.OutputTokens != 24*12 || res.Model != "tiny" || res.TTFT.P50 <= 0 || res.ITL.P99 <= 0 ||
		res.OutputThroughput <= 0 || res.PromptTokens < 24*8 || res.PromptTokens > 24*40 {
		t.Errorf("bench serve: %s", bench.String())
	}

	cancel()
	if code := <-exited; code != 0 {
		t.Errorf("sluice serve exited %d after cancel: %s", code, errb.String())
	}
}
