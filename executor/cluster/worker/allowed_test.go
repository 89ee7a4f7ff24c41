package worker

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
)

// A job whose destination leaves the paths the operator allows (a ".."
// in the plan or in a --param value) is refused at planning, naming the
// destination and the flag; env reads only what the worker allows.
func TestPlanningChecksAllowedPathsAndEnv(t *testing.T) {
	sales, err := filepath.Abs("../../../examples/data/sales")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	w, err := New(Config{Coordinators: []string{"x"}, DataDir: t.TempDir(), Token: "t", Resources: state.Resources{CPU: 1},
		Addr: "127.0.0.1:0", AllowedPaths: []string{filepath.Join(root, "out")}, EnvAllow: []string{"SLUICE_TEST_DAY"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SLUICE_TEST_DAY", "d1")
	t.Setenv("SLUICE_TEST_OTHER", "x")
	plan := "name: p\nparams: {d: x}\nread: {parquet: " + sales + "}\nwrite: {parquet: '" + root + "/out/{{ .Params.d }}'}\n"
	n := 0
	execute := func(plan string, params map[string]string) error {
		n++
		id := "j-" + string(rune('0'+n))
		_, err := w.execute(context.Background(), api.Assignment{Kind: state.StagePlan, Task: state.Task{ID: id + "-t0", Job: id}, CPUs: 1,
			Job: &api.JobSpec{Job: id, Plan: plan, Params: params}})
		return err
	}
	for _, d := range []string{"../../escape", "a/../../../etc"} {
		err := execute(plan, map[string]string{"d": d})
		if err == nil || !strings.Contains(err.Error(), "--allowed-paths") || !strings.Contains(err.Error(), d) {
			t.Errorf("param d=%s: %v", d, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "escape")); !os.IsNotExist(err) {
		t.Fatalf("escaped: %v", err)
	}
	if err := execute(plan, map[string]string{"d": "a/../b"}); err != nil {
		t.Errorf("a destination inside the allowed root: %v", err)
	}
	withEnv := func(name string) string {
		return strings.Replace(plan, "{{ .Params.d }}", `{{ env "`+name+`" }}`, 1)
	}
	if err := execute(withEnv("SLUICE_TEST_DAY"), nil); err != nil {
		t.Errorf("an allowed env: %v", err)
	}
	if err := execute(withEnv("SLUICE_TEST_OTHER"), nil); err == nil || !strings.Contains(err.Error(), "--env-allow") {
		t.Errorf("an env the worker does not allow: %v", err)
	}
}
