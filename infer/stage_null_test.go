package infer

import (
	"context"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/infer/engine"
)

type nullPromptRow struct {
	ID     int64   `sluice:"id"`
	Prompt *string `sluice:"prompt"`
}

// TestStageNullPrompt: a null prompt fails the job naming the row by
// default; OnNull "skip" keeps its row with null outputs (and no error in
// the error column) while the other rows are served.
func TestStageNullPrompt(t *testing.T) {
	e, _ := newTestEngine(t, smallConfig(), 256)
	hello := "hello there"
	items := []nullPromptRow{{ID: 0, Prompt: &hello}, {ID: 1}, {ID: 2, Prompt: &hello}}
	cfg := StageConfig{Engine: e, Params: engine.SamplingParams{MaxTokens: 4, IgnoreEOS: true}}
	_, err := dataset.FromItems(items).MapBatches(Generate(cfg), dataset.MapOptions{}).Count(context.Background())
	if err == nil || !strings.Contains(err.Error(), "row 1 of the batch (null prompt): infer: invalid prompt: the prompt is null") {
		t.Fatalf("error %v", err)
	}
	for _, onError := range []string{OnErrorFail, OnErrorColumn} {
		cfg.OnNull, cfg.OnError = OnNullSkip, onError
		rows := collect(t, dataset.FromItems(items).Configure(localConfig()).MapBatches(Generate(cfg), dataset.MapOptions{}))
		if r := rows[1]; r.completion != nil || r.promptTokens != nil || r.completionTokens != nil || r.finish != nil || r.err != nil {
			t.Errorf("on_error %s: skipped row %+v", onError, r)
		}
		for _, id := range []int64{0, 2} {
			if r := rows[id]; r.completion == nil || *r.completionTokens != 4 || r.err != nil {
				t.Errorf("on_error %s: row %d %+v", onError, id, r)
			}
		}
	}
	cfg.OnNull = "drop"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `on_null must be "error" or "skip", got "drop"`) {
		t.Errorf("Validate: %v", err)
	}
}
