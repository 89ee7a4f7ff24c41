package expr

import (
	"math"
)

// roundFloatKernel rounds half away from zero to digits decimal places
// (negative digits round to tens, hundreds, ...).
func roundFloatKernel(digits int64) kernel {
	d := int(max(min(digits, 400), -400))
	return mapFixed(typFloat64, func(x float64) (float64, bool) { return roundFloat(x, d), true })
}

func roundFloat(x float64, d int) float64 {
	if d == 0 {
		return math.Round(x)
	}
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return x
	}
	if d > 0 {
		p := math.Pow10(d)
		y := x * p
		if math.IsInf(y, 0) || math.IsInf(p, 0) {
			return x // already finer than the requested precision
		}
		return math.Round(y) / p
	}
	p := math.Pow10(-d)
	if math.IsInf(p, 0) {
		return math.Copysign(0, x)
	}
	return math.Round(x/p) * p
}

// roundIntKernel rounds integers to a negative number of digits, half away
// from zero: round(1250, -2) is 1300.
func roundIntKernel(digits int64) kernel {
	if digits < -18 {
		return mapFixed(typInt64, func(int64) (int64, bool) { return 0, true })
	}
	p := int64(math.Pow10(int(-digits)))
	return mapFixed(typInt64, func(x int64) (int64, bool) {
		q, r := x/p, x%p
		if r < 0 {
			r = -r
		}
		if r >= p-r { // r*2 >= p without overflow
			if x < 0 {
				q--
			} else {
				q++
			}
		}
		return mulChecked(q, p)
	})
}

func floorCeilKernel(ceil bool) kernel {
	f := math.Floor
	if ceil {
		f = math.Ceil
	}
	return mapFixed(typFloat64, func(x float64) (float64, bool) { return f(x), true })
}
