package main

import (
	"context"
	"fmt"
	"runtime/debug"
)

func init() {
	register(&command{
		name:    "version",
		summary: "print the version of sluice and of its Go toolchain",
		run: func(ctx context.Context, e *env, args []string) error {
			v, goV := "devel", "unknown"
			if bi, ok := debug.ReadBuildInfo(); ok {
				goV = bi.GoVersion
				if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
					v = bi.Main.Version
				}
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" && len(s.Value) >= 12 {
						v += "+" + s.Value[:12]
					}
				}
			}
			fmt.Fprintf(e.stdout, "sluice %s (%s)\n", v, goV)
			return nil
		},
	})
}
