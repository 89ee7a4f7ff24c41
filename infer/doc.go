// Package infer runs Sluice's LLM engine (infer/engine) on real models:
// Load opens a device by name on the GPU backends (gpu/cpu, and gpu/cuda
// where a driver is found at run time), loads the model (infer/model) and
// its tokenizer, and returns a Runner for engine.New; stage.go is Generate,
// the dataset.MapBatches function that runs a model over the rows of a
// pipeline, and the Registry that loads each model once per process.
//
// Import infer/engine alone for the engine core without the backends.
//
// This package is unstable: its API may change with the engine's needs.
package infer
