package main

import (
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	in := `{"Action":"start","Package":"a"}
{"Action":"run","Package":"a","Test":"TestGPU"}
{"Action":"output","Package":"a","Test":"TestGPU","Output":"=== RUN   TestGPU\n"}
{"Action":"output","Package":"a","Test":"TestGPU","Output":"    cuda_test.go:22: no CUDA GPU here: cuda: no libcuda.so.1\n"}
{"Action":"output","Package":"a","Test":"TestGPU","Output":"--- SKIP: TestGPU (0.00s)\n"}
{"Action":"skip","Package":"a","Test":"TestGPU"}
{"Action":"skip","Package":"a","Test":"TestGPU2"}
{"Action":"pass","Package":"a","Test":"TestOK"}
{"Action":"output","Package":"a","Output":"ok  \ta\t0.01s\n"}
{"Action":"pass","Package":"a","Elapsed":0.01}
{"Action":"output","Package":"b","Output":"?   \tb\t[no test files]\n"}
{"Action":"skip","Package":"b"}
{"Action":"output","Package":"c","Test":"TestBad","Output":"    x_test.go:3: broken\n"}
{"Action":"fail","Package":"c","Test":"TestBad"}
{"Action":"output","Package":"c","Output":"FAIL\tc\t0.02s\n"}
{"Action":"fail","Package":"c","Elapsed":0.02}
`
	var out strings.Builder
	if code := run(strings.NewReader(in), &out); code != 1 {
		t.Errorf("exit %d, want 1 (c failed)", code)
	}
	want := "ok  \ta\t0.01s\t(1 test skipped: no CUDA GPU here; 1 test skipped: no reason given)\n" +
		"?   \tb\t[no test files]\n" +
		"    x_test.go:3: broken\nFAIL\tc\t0.02s\n"
	if out.String() != want {
		t.Errorf("got\n%q\nwant\n%q", out.String(), want)
	}
}
