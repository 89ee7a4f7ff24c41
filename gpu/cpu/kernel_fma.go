//go:build amd64.v3

package cpu

import (
	"math"
	"unsafe"
)

// The micro-kernel tile with GOAMD64=v3, where the compiler fuses a*b+c
// into VFMADD: one register per accumulator, so a 2×4 tile fits (measured
// ≈ 15 GFLOP/s per core; 3×4 and 4×4 spill).
const (
	mr = 2
	nr = 4
)

// kernel computes the mr×nr tile of dot products of a packed A panel
// (k steps of mr values) and a packed B panel (k steps of nr values).
func kernel(k int, a, b []float32, c *[mr * nr]float32) {
	if k == 0 {
		*c = [mr * nr]float32{}
		return
	}
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	_ = a[mr*k-1]
	_ = b[nr*k-1]
	pa := unsafe.Pointer(&a[0])
	pb := unsafe.Pointer(&b[0])
	// Address each step from the base: advancing a pointer would leave it
	// past the end after the last step, which checkptr (-race) rejects.
	for i := range k {
		aa := (*[mr]float32)(unsafe.Add(pa, i*mr*4))
		bb := (*[nr]float32)(unsafe.Add(pb, i*nr*4))
		b0, b1, b2, b3 := bb[0], bb[1], bb[2], bb[3]
		a0 := aa[0]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		a1 := aa[1]
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
	}
	*c = [mr * nr]float32{c00, c01, c02, c03, c10, c11, c12, c13}
}

// kernelF32 is kernel with B read in place: nr rows of F32 weights at
// stride ldb. Decode-sized MatMuls use each weight once, so packing it
// would only add a pass over memory.
func kernelF32(k int, a, b []float32, ldb int, c *[mr * nr]float32) {
	if k == 0 {
		*c = [mr * nr]float32{}
		return
	}
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	_ = a[mr*k-1]
	b0s, b1s, b2s, b3s := b[:k], b[ldb:ldb+k], b[2*ldb:2*ldb+k], b[3*ldb:3*ldb+k]
	pa := unsafe.Pointer(&a[0])
	for i := range k {
		aa := (*[mr]float32)(unsafe.Add(pa, i*mr*4))
		b0, b1, b2, b3 := b0s[i], b1s[i], b2s[i], b3s[i]
		a0 := aa[0]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		a1 := aa[1]
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
	}
	*c = [mr * nr]float32{c00, c01, c02, c03, c10, c11, c12, c13}
}

// kernelBF16 is kernelF32 for BF16 weights, widened as they are loaded
// (a shift, on the integer ports, beside the float work).
func kernelBF16(k int, a []float32, b []uint16, ldb int, c *[mr * nr]float32) {
	if k == 0 {
		*c = [mr * nr]float32{}
		return
	}
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	_ = a[mr*k-1]
	b0s, b1s, b2s, b3s := b[:k], b[ldb:ldb+k], b[2*ldb:2*ldb+k], b[3*ldb:3*ldb+k]
	pa := unsafe.Pointer(&a[0])
	for i := range k {
		aa := (*[mr]float32)(unsafe.Add(pa, i*mr*4))
		b0 := math.Float32frombits(uint32(b0s[i]) << 16)
		b1 := math.Float32frombits(uint32(b1s[i]) << 16)
		b2 := math.Float32frombits(uint32(b2s[i]) << 16)
		b3 := math.Float32frombits(uint32(b3s[i]) << 16)
		a0 := aa[0]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		a1 := aa[1]
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
	}
	*c = [mr * nr]float32{c00, c01, c02, c03, c10, c11, c12, c13}
}
