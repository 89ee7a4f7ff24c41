package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/tune"
)

// fakeTrainScript is a training program with `sluice train`'s output: one
// JSON object per step, the loss least at lr = 1e-2 and falling with the
// steps. It stands in for `sluice train` through tune.command.
const fakeTrainScript = `#!/bin/sh
lr=0.1; steps=5
for a in "$@"; do
  case $a in
    --lr=*) lr=${a#--lr=} ;;
    --steps=*) steps=${a#--steps=} ;;
    --out=*) mkdir -p "${a#--out=}" ;;
  esac
done
echo "fake train: lr=$lr steps=$steps" >&2
awk -v lr="$lr" -v steps="$steps" 'BEGIN { for (i = 1; i <= steps; i++) { l = log(lr)/log(10) + 2; printf "{\"step\": %d, \"loss\": %.6f, \"lr\": %s}\n", i, l*l + 1/i, lr } }'
`

func tuneFile(t *testing.T, body string) (file, dir string) {
	t.Helper()
	dir = t.TempDir()
	script := filepath.Join(dir, "train.sh")
	if err := os.WriteFile(script, []byte(fakeTrainScript), 0o755); err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(dir, "exp.yaml")
	body = strings.ReplaceAll(body, "SCRIPT", script)
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return file, dir
}

const tuneExperiment = `name: lr-search
tune:
  metric: loss
  mode: min
  searcher: random
  scheduler: asha
  num_samples: 6
  max_concurrent: 2
  seed: 7
  max_t: 8
  grace_period: 1
  reduction_factor: 2
  command: [SCRIPT]
  space:
    lr: {loguniform: [1e-4, 1]}
    lora_rank: {choice: [4, 8]}
train:
  model: fixture
  steps: 8
`

func TestTuneCommand(t *testing.T) {
	file, dir := tuneFile(t, tuneExperiment)
	out := filepath.Join(dir, "exp")
	code, stdout, stderr := sluice(t, "tune", file, "--dir", out)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var sum struct {
		Best struct {
			Trial  string         `json:"trial"`
			Config map[string]any `json:"config"`
			Metric float64        `json:"metric"`
		} `json:"best"`
		Trials       int `json:"trials"`
		StoppedEarly int `json:"stopped_early"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatalf("last line %q: %v", lines[len(lines)-1], err)
	}
	if sum.Trials != 6 || sum.StoppedEarly == 0 || sum.Best.Trial == "" || sum.Best.Config["lr"] == nil || sum.Best.Metric <= 0 {
		t.Errorf("summary %s", lines[len(lines)-1])
	}
	b, err := os.ReadFile(filepath.Join(out, "trials.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(rows) != 6 {
		t.Fatalf("%d rows in trials.jsonl", len(rows))
	}
	for _, r := range rows {
		var row struct {
			Status     string   `json:"status"`
			Iterations int      `json:"iterations"`
			Last       *float64 `json:"last"`
		}
		json.Unmarshal([]byte(r), &row)
		if (row.Status != "done" || row.Iterations != 8) && (row.Status != "stopped" || row.Iterations >= 8) || row.Last == nil {
			t.Errorf("row %s", r)
		}
	}
	if !strings.Contains(stderr, "[t0000] fake train: lr=") {
		t.Errorf("the trials' stderr is not forwarded:\n%s", stderr)
	}

	// tune status prints the same table and summary.
	code, status, _ := sluice(t, "tune", "status", out)
	if code != 0 || status != stdout {
		t.Errorf("tune status (exit %d):\n%s\nwant\n%s", code, status, stdout)
	}
	// Resuming a finished experiment runs nothing again.
	code, again, stderr := sluice(t, "tune", file, "--dir", out, "--resume")
	if code != 0 || again != stdout || strings.Contains(stderr, "fake train") {
		t.Errorf("resume (exit %d):\n%s\n%s", code, again, stderr)
	}
	// Without --resume the directory is not overwritten.
	if code, _, stderr := sluice(t, "tune", file, "--dir", out); code != 1 || !strings.Contains(stderr, "already holds an experiment") {
		t.Errorf("exit %d: %s", code, stderr)
	}
}

// The same seed gives the same trial configs (random and grid searchers).
func TestTuneSeed(t *testing.T) {
	configs := func(searcher string) string {
		file, dir := tuneFile(t, strings.Replace(tuneExperiment, "searcher: random", "searcher: "+searcher, 1))
		out := filepath.Join(dir, "exp")
		if code, stdout, stderr := sluice(t, "tune", file, "--dir", out); code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
		b, _ := os.ReadFile(filepath.Join(out, "trials.jsonl"))
		var cs []string
		for _, r := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var row struct {
				Config json.RawMessage `json:"config"`
			}
			json.Unmarshal([]byte(r), &row)
			cs = append(cs, string(row.Config))
		}
		return strings.Join(cs, "\n")
	}
	for _, s := range []string{"random", "grid"} {
		if a, b := configs(s), configs(s); a != b {
			t.Errorf("%s: two runs with seed 7:\n%s\n--\n%s", s, a, b)
		}
	}
}

func TestTuneErrors(t *testing.T) {
	for _, tc := range []struct{ name, from, to, want string }{
		{"unknown searcher", "searcher: random", "searcher: bayes", "exp.yaml:5:13: tune.searcher: unknown searcher \"bayes\": want random | grid | tpe"},
		{"unknown scheduler", "scheduler: asha", "scheduler: hyperband", "exp.yaml:6:14: tune.scheduler: unknown scheduler \"hyperband\": want fifo | asha | median | pbt"},
		{"empty range", "loguniform: [1e-4, 1]", "loguniform: [1, 1e-4]", "exp.yaml:15:22: tune.space.lr.loguniform: empty range [1, 0.0001): lo must be below hi"},
		{"randint", "choice: [4, 8]", "randint: [8, 8]", "exp.yaml:16:26: tune.space.lora_rank.randint: empty range [8, 8): hi is exclusive and must be above lo"},
		{"unknown kind", "choice: [4, 8]", "normal: [4, 8]", "exp.yaml:16:17: tune.space.lora_rank.normal: unknown range kind \"normal\": want one of uniform, loguniform, quniform, randint, choice, grid"},
		{"option of another scheduler", "reduction_factor: 2", "perturbation_interval: 2", "exp.yaml:12:3: tune.perturbation_interval: applies to scheduler pbt only; the scheduler is asha (at 6:14)"},
		{"metric never reported", "metric: loss", "metric: accuracy", "exp.yaml:3:11: tune.metric: tune: metric never reported: metric \"accuracy\" is not in the report of iteration 1 (its keys: loss, lr, step)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file, dir := tuneFile(t, strings.Replace(tuneExperiment, tc.from, tc.to, 1))
			code, stdout, stderr := sluice(t, "tune", file, "--dir", filepath.Join(dir, "exp"))
			want := "sluice tune: " + strings.Replace(tc.want, "exp.yaml", file, 1) + "\n"
			if code != 1 || !strings.HasSuffix(stderr, want) || stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant:\n%s", code, stdout, stderr, want)
			}
		})
	}
}

// The example search over the llama3 fixture's LoRA fine-tune, with the
// real `sluice train` (this test binary acting as sluice). Skipped until
// the train command exists.
func TestTuneExampleWithTrain(t *testing.T) { tuneWithTrain(t, false) }

func TestTunePBTWithTrain(t *testing.T) { tuneWithTrain(t, true) }

func tuneWithTrain(t *testing.T, pbt bool) {
	registered := false
	for _, c := range commands {
		registered = registered || c.name == "train"
	}
	if !registered {
		t.Skip("sluice train is not registered yet")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "examples/tune/lora-search.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	src := strings.NewReplacer("num_samples: 8", "num_samples: 3",
		"model: infer/", "model: "+root+"/infer/", "data: examples/", "data: "+root+"/examples/").Replace(string(b))
	if pbt {
		// PBT over lr alone (a checkpoint resumes with the same rank):
		// exploited trials resume with --resume from a donor's checkpoint.
		src = strings.NewReplacer("scheduler: asha", "scheduler: pbt #", "max_t: 12", "", "grace_period: 2", "",
			"reduction_factor: 2", "perturbation_interval: 4", "num_samples: 3", "num_samples: 4",
			"max_concurrent: 1", "max_concurrent: 4 #", "lora_rank: {choice: [2, 4, 8]}", "").Replace(src)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "lora-search.yaml")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SLUICE_TEST_MAIN", "1") // the trials' processes act as sluice
	old := trainCommand
	trainCommand = func() ([]string, error) { return []string{os.Args[0], "train"}, nil }
	defer func() { trainCommand = old }()
	code, stdout, stderr := sluice(t, "tune", file, "--dir", filepath.Join(dir, "exp"))
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var sum struct {
		Best *struct {
			Metric float64 `json:"metric"`
		} `json:"best"`
		Trials int `json:"trials"`
	}
	want := 3
	if pbt {
		want = 4
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil || sum.Trials != want || sum.Best == nil || !(sum.Best.Metric > 0) {
		t.Errorf("summary %q: %v\n%s", lines[len(lines)-1], err, stderr)
	}
	if !pbt {
		return
	}
	exp, err := tune.Load(context.Background(), filepath.Join(dir, "exp"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range exp.Trials {
		last := tr.Reports[len(tr.Reports)-1]
		if tr.Status != tune.Done || tr.Iterations != 12 || last["step"] != 12 {
			t.Errorf("%s: %s at iteration %d, last step %g: %s", tr.ID, tr.Status, tr.Iterations, last["step"], tr.Error)
		}
		if tr.RestoredFrom != "" {
			t.Logf("%s resumed from %s", tr.ID, tr.RestoredFrom)
		}
	}
}
