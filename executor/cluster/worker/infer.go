package worker

// Workers compile the plans they run, and a plan may hold infer steps:
// linking package infer registers the infer step's compiler with plans.
import _ "github.com/sluicehq/sluice/infer"
