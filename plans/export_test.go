package plans

// CompileRun is compileRun for the external tests (infer_test.go links
// package infer, which imports plans to register the infer step).
var CompileRun = compileRun
