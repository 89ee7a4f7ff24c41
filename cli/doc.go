// Package cli holds the cluster commands of sluice as library entries:
// the flags of `sluice coordinator`, `sluice worker` and the client
// commands, and the parsers behind them (tokens, secrets, resources,
// sizes, TLS files). A program that registers its own plan functions
// (plans.MustRegister) runs as a worker with RunWorker, with the same
// flags and messages as `sluice worker`; examples/cluster-udf does.
//
// Errors name the flag: "--resources: unknown resource "disk"".
package cli
