package main

import (
	"fmt"
	"os"

	"github.com/sluicehq/sluice/infer/serve/deploy"
)

// A worker process registers the map_batches function that runs a
// deployment's replica (as tune.go does for trials): `sluice serve` of
// this executable.
func init() {
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		if err := deploy.Register(serveCommand); err != nil {
			panic(err)
		}
	}
}

// serveCommand is the program a replica runs: this executable's serve.
var serveCommand = func() ([]string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this executable for `sluice serve`: %w", err)
	}
	return []string{self, "serve"}, nil
}
