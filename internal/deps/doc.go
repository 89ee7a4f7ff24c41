// Package deps holds the module's dependency rules as a test: every
// dependency points down, and the layers below never link the layers above.
//
// The direction, bottom to top:
//
//	storage, dataset/expr, dataset/format      formats and expressions
//	dataset/plan                                the logical and physical plan
//	executor/local, executor/cluster/dist       executors: they import the plan, never dataset or plans
//	dataset                                     the user API: builds plans, runs them on executor/local
//	plans                                       the YAML format, compiled to a dataset
//	infer (its plan step registers with plans)  the engine; plans never imports it
//	executor/cluster/{worker,coordinator}, cmd/sluice
//
// executor/cluster/state, the Raft state machine, sits beside the bottom:
// it fires cron schedules through the leaf package schedule and links no
// dataset, plans, infer or gpu package.
//
// TestRules runs `go list -deps` and fails naming the import chain's two
// ends when a forbidden dependency comes back. TestDirectImports checks a
// package's own imports where a transitive rule cannot hold: plans reaches
// executor/local through dataset, but imports no executor itself.
// TestTestOnlyPackages keeps internal/clustertest and internal/testcert
// out of every program.
package deps
