package cpu

import (
	"testing"
	"time"
)

// BenchmarkKernel times the bare micro-kernel on panels that stay in L1:
// the ceiling for MatMul.
func BenchmarkKernel(b *testing.B) {
	const k = 512
	a, p := make([]float32, mr*k), make([]float32, nr*k)
	for i := range a {
		a[i] = float32(i%7) / 7
	}
	for i := range p {
		p[i] = float32(i%5) / 5
	}
	var c [mr * nr]float32
	start := time.Now()
	for range b.N {
		kernel(k, a, p, &c)
	}
	b.ReportMetric(2*mr*nr*k*float64(b.N)/time.Since(start).Seconds()/1e9, "GFLOP/s")
}

func TestKernel(t *testing.T) {
	for _, k := range []int{0, 1, 2, 7} {
		a, p := make([]float32, mr*k), make([]float32, nr*k)
		for i := range a {
			a[i] = float32(i + 1)
		}
		for i := range p {
			p[i] = float32(2*i - 3)
		}
		var c [mr * nr]float32
		kernel(k, a, p, &c)
		for r := range mr {
			for j := range nr {
				var want float32
				for kk := range k {
					want += a[kk*mr+r] * p[kk*nr+j]
				}
				if c[r*nr+j] != want {
					t.Errorf("k=%d: c[%d][%d] = %v, want %v", k, r, j, c[r*nr+j], want)
				}
			}
		}
	}
}
