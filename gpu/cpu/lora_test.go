package cpu_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/cpu"
)

// TestMatMulGroup checks MatMulGroup, stored and accumulated, against a
// float64 product of the same (rounded) operands, in F32 and BF16, with
// one and three workers, over products of one block row (B read in place),
// several block rows (k = 2048 makes blocks of 32 rows), partial panels,
// and an empty product among them.
func TestMatMulGroup(t *testing.T) {
	shapes := [][3]int{{16, 16, 64}, {3, 5, 7}, {40, 200, 16}, {70, 9, 2048}, {0, 4, 8}, {1, 1, 1}}
	for _, dt := range []gpu.DType{gpu.F32, gpu.BF16} {
		for _, threads := range []int{1, 3} {
			for _, acc := range []bool{false, true} {
				t.Run(fmt.Sprintf("%v/threads=%d/acc=%v", dt, threads, acc), func(t *testing.T) {
					d, err := cpu.New(cpu.Config{Threads: threads})
					if err != nil {
						t.Fatal(err)
					}
					defer d.Close()
					rng := rand.New(rand.NewPCG(1, uint64(threads)))
					var cs, as, bs []*gpu.Tensor
					var c0, av, bv [][]float64
					for _, s := range shapes {
						m, n, k := s[0], s[1], s[2]
						c, cv := tensor(t, d, dt, rng, m, n)
						a, x := tensor(t, d, dt, rng, m, k)
						b, y := tensor(t, d, dt, rng, n, k)
						cs, as, bs = append(cs, c), append(as, a), append(bs, b)
						c0, av, bv = append(c0, cv), append(av, x), append(bv, y)
					}
					if err := d.MatMulGroup(cs, as, bs, acc); err != nil {
						t.Fatal(err)
					}
					for p, s := range shapes {
						m, n, k := s[0], s[1], s[2]
						got := download(t, d, cs[p])
						for i := range m {
							for j := range n {
								want := 0.0
								if acc {
									want = c0[p][i*n+j]
								}
								for kk := range k {
									want += av[p][i*k+kk] * bv[p][j*k+kk]
								}
								tol := 1e-4 * (1 + math.Abs(want)) * math.Sqrt(float64(k))
								if dt == gpu.BF16 {
									tol = 1e-2 * (1 + math.Abs(want))
								}
								if g := float64(got[i*n+j]); math.Abs(g-want) > tol {
									t.Fatalf("product %d %v: c[%d][%d] = %g, want %g", p, s, i, j, g, want)
								}
							}
						}
					}
				})
			}
		}
	}
	d, err := cpu.New(cpu.Config{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rng := rand.New(rand.NewPCG(2, 2))
	c, _ := tensor(t, d, gpu.F32, rng, 2, 3)
	a, _ := tensor(t, d, gpu.F32, rng, 2, 4)
	b, _ := tensor(t, d, gpu.F32, rng, 3, 5)
	if err := d.MatMulGroup([]*gpu.Tensor{c}, []*gpu.Tensor{a}, []*gpu.Tensor{b}, true); err == nil {
		t.Error("MatMulGroup of a [2,4] by a [3,5]: no error")
	}
	if err := d.MatMulGroup([]*gpu.Tensor{c}, []*gpu.Tensor{a, a}, []*gpu.Tensor{b}, true); err == nil {
		t.Error("MatMulGroup of 1 output and 2 a: no error")
	}
}

// tensor allocates a [rows, cols] tensor of dt with values in [-1, 1) and
// returns them as dt holds them.
func tensor(t *testing.T, d *cpu.Device, dt gpu.DType, rng *rand.Rand, rows, cols int) (*gpu.Tensor, []float64) {
	t.Helper()
	x, err := d.Alloc(dt, rows, cols)
	if err != nil {
		t.Fatal(err)
	}
	vals := make([]float64, rows*cols)
	var raw []byte
	for i := range vals {
		v := float32(rng.Float64()*2 - 1)
		if dt == gpu.BF16 {
			h := gpu.ToBFloat16(v)
			raw = binary.LittleEndian.AppendUint16(raw, uint16(h))
			vals[i] = float64(h.Float32())
		} else {
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
			vals[i] = float64(v)
		}
	}
	if err := d.Upload(x, raw); err != nil {
		t.Fatal(err)
	}
	return x, vals
}

func download(t *testing.T, d *cpu.Device, x *gpu.Tensor) []float32 {
	t.Helper()
	n := x.Len()
	sz := 4
	if x.DType() == gpu.BF16 {
		sz = 2
	}
	raw := make([]byte, n*sz)
	if err := d.Download(raw, x); err != nil {
		t.Fatal(err)
	}
	out := make([]float32, n)
	for i := range out {
		if sz == 2 {
			out[i] = gpu.BFloat16(binary.LittleEndian.Uint16(raw[2*i:])).Float32()
		} else {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	}
	return out
}
