package tune

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestSchedulers runs the scripts under testdata/sched: a scheduler is made
// (fifo, asha, median or pbt, its options as arguments, PBT's space as the
// input), results go in (one "t iter reward [ckpt]" per input line of
// "report") and each line's decision comes out. Regenerate with -rewrite.
func TestSchedulers(t *testing.T) {
	datadriven.Walk(t, "testdata/sched", func(t *testing.T, path string) {
		var s Scheduler
		samples := map[int]Sample{}
		var space Space
		var seed uint64
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			arg := func(key, def string) string {
				if a, ok := d.Arg(key); ok && len(a.Vals) > 0 {
					return a.Vals[0]
				}
				return def
			}
			num := func(key, def string) float64 {
				f, err := strconv.ParseFloat(arg(key, def), 64)
				if err != nil {
					t.Fatalf("%s: %v", key, err)
				}
				return f
			}
			switch d.Cmd {
			case "fifo", "asha", "median", "pbt":
				space = Space{"x": Uniform{0, 1}}
				if strings.TrimSpace(d.Input) != "" {
					var err error
					if space, err = ParseSpace("space.yaml", []byte(d.Input)); err != nil {
						return "error: " + err.Error() + "\n"
					}
				}
				seed = uint64(num("seed", "0"))
				switch d.Cmd {
				case "fifo":
					s = FIFO()
				case "asha":
					a := NewASHA()
					a.MaxT, a.GracePeriod, a.ReductionFactor = int(num("max_t", "100")), int(num("grace", "1")), num("rf", "4")
					s = a
				case "median":
					m := NewMedian()
					m.GracePeriod, m.MinSamples = int(num("grace", "1")), int(num("min_samples", "3"))
					s = m
				case "pbt":
					p := NewPBT()
					p.Interval = int(num("interval", "5"))
					p.QuantileFraction = num("quantile", "0.25")
					p.ResampleProbability = num("resample", "0.25")
					if f, ok := d.Arg("factors"); ok {
						p.Factors = nil
						for _, v := range f.Vals {
							x, _ := strconv.ParseFloat(v, 64)
							p.Factors = append(p.Factors, x)
						}
					}
					s = p
				}
				samples = map[int]Sample{}
				if err := s.Init(Setup{Space: space, Mode: Max, Seed: seed}); err != nil {
					return "error: " + err.Error() + "\n"
				}
				if st, ok := s.(fmt.Stringer); ok {
					return st.String()
				}
				return "ok\n"
			case "report":
				var b strings.Builder
				for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
					f := strings.Fields(line)
					if len(f) < 3 {
						t.Fatalf("want: trial iter reward [ckpt], got %q", line)
					}
					tr, _ := strconv.Atoi(f[0])
					it, _ := strconv.Atoi(f[1])
					rw, _ := strconv.ParseFloat(f[2], 64)
					ck := 0
					if len(f) > 3 {
						ck, _ = strconv.Atoi(f[3])
					}
					smp, ok := samples[tr]
					if !ok {
						smp = space.build(randomPick(trialRand(seed, tr)))
						samples[tr] = smp
					}
					dec := s.OnResult(Result{Trial: tr, Iter: it, Reward: rw, Checkpoint: ck, Sample: smp})
					fmt.Fprintf(&b, "t%d@%d %s: %s", tr, it, f[2], dec.Action)
					if dec.Action == Exploit {
						fmt.Fprintf(&b, " t%d@%d %s -> %s", dec.Donor, dec.DonorCheckpoint,
							formatConfig(samples[dec.Donor].Config), formatConfig(dec.Sample.Config))
						samples[tr] = dec.Sample
					}
					b.WriteByte('\n')
				}
				return b.String()
			case "end":
				tr, _ := strconv.Atoi(arg("t", "0"))
				s.OnEnd(tr)
				return "ok\n"
			case "state":
				return s.(fmt.Stringer).String()
			}
			t.Fatalf("unknown command %q", d.Cmd)
			return ""
		})
	})
}

// TestSearchers runs the scripts under testdata/search: "random", "grid" or
// "tpe" with a seed and num_samples over the input space, then "suggest"
// prints the next trials' configs, and "observe t=N loss=X" tells the
// searcher how a trial ended.
func TestSearchers(t *testing.T) {
	datadriven.Walk(t, "testdata/search", func(t *testing.T, path string) {
		var s Searcher
		next := 0
		samples := map[int]Sample{}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			arg := func(key, def string) string {
				if a, ok := d.Arg(key); ok && len(a.Vals) > 0 {
					return a.Vals[0]
				}
				return def
			}
			atoi := func(key, def string) int {
				n, err := strconv.Atoi(arg(key, def))
				if err != nil {
					t.Fatalf("%s: %v", key, err)
				}
				return n
			}
			switch d.Cmd {
			case "random", "grid", "tpe":
				space, err := ParseSpace("space.yaml", []byte(d.Input))
				if err != nil {
					return "error: " + err.Error() + "\n"
				}
				switch d.Cmd {
				case "random":
					s = Random()
				case "grid":
					s = GridSearch()
				case "tpe":
					s = TPE(TPEOptions{Startup: atoi("startup", "10")})
				}
				next, samples = 0, map[int]Sample{}
				if err := s.Init(Setup{Space: space, Mode: Min, NumSamples: atoi("n", "1"), Seed: uint64(atoi("seed", "0"))}); err != nil {
					return "error: " + err.Error() + "\n"
				}
				return "ok\n"
			case "suggest":
				var b strings.Builder
				for range atoi("n", "1") {
					smp, ok := s.Suggest(next)
					if !ok {
						b.WriteString("no more trials\n")
						break
					}
					samples[next] = smp
					fmt.Fprintf(&b, "t%d %s\n", next, formatConfig(smp.Config))
					next++
				}
				return b.String()
			case "observe":
				for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
					f := strings.Fields(line)
					tr, _ := strconv.Atoi(f[0])
					loss, _ := strconv.ParseFloat(f[1], 64)
					s.Observe(tr, samples[tr], loss)
				}
				return "ok\n"
			}
			t.Fatalf("unknown command %q", d.Cmd)
			return ""
		})
	})
}
