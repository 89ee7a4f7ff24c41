package cli

import (
	"flag"
	"os"
	"slices"
	"testing"
)

// The operator's lists reach the worker's config: --env-allow and
// --allowed-paths, whose default is the working directory, the temporary
// directory and s3://.
func TestWorkerFlagsAllowLists(t *testing.T) {
	parse := func(args ...string) Worker {
		t.Helper()
		fs := flag.NewFlagSet("worker", flag.ContinueOnError)
		var w Worker
		w.Flags(fs)
		if err := fs.Parse(append([]string{"--coordinators", "127.0.0.1:1"}, args...)); err != nil {
			t.Fatal(err)
		}
		return w
	}
	t.Setenv("SLUICE_TOKEN", "tok")
	t.Setenv("SLUICE_ENV_ALLOW", "")
	w := parse()
	c, err := w.config()
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	if !slices.Equal(c.AllowedPaths, []string{wd, os.TempDir(), "s3://"}) || len(c.EnvAllow) != 0 {
		t.Fatalf("defaults: allowed paths %v, env %v", c.AllowedPaths, c.EnvAllow)
	}
	w = parse("--allowed-paths", "/data/out, s3://bucket/p", "--env-allow", "REGION,DAY")
	if c, err = w.config(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.AllowedPaths, []string{"/data/out", "s3://bucket/p"}) || !slices.Equal(c.EnvAllow, []string{"REGION", "DAY"}) {
		t.Fatalf("allowed paths %v, env %v", c.AllowedPaths, c.EnvAllow)
	}
}
