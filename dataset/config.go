package dataset

import "github.com/sluicehq/sluice/executor/local"

// Config is the local executor's settings for a Dataset's consumers (see
// Configure and Run). It is local.Config, named here so that packages above
// dataset (plans, the commands) go through the dataset API and need not
// import the executor.
type Config = local.Config

// Stats is what a run of the local executor measured (local.Stats).
type Stats = local.Stats

// DefaultConfig is the local executor's default settings.
func DefaultConfig() Config { return local.DefaultConfig() }
