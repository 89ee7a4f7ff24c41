// Command sluice runs Sluice pipelines: plan files locally, benchmarks, and
// (later) jobs on a cluster. Run `sluice help` for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/sluicehq/sluice/executor/cluster/api"
)

// command is one subcommand. Files of this package register theirs in init.
type command struct {
	name    string // may hold a space: "plan schema"
	args    string // synopsis of the arguments after the flags
	summary string
	flags   func(fs *flag.FlagSet) // declares the flags, may be nil
	run     func(ctx context.Context, env *env, args []string) error
}

// env is what a command may touch, so tests can run commands in-process.
type env struct {
	stdout, stderr io.Writer
	stdin          io.Reader
}

var commands []*command

func register(c *command) { commands = append(commands, c) }

// errUsage asks for the command's usage to be printed.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runMain(ctx, &env{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin}, os.Args[1:])
	stop()
	os.Exit(code)
}

// runMain dispatches args to a command and returns the exit code.
func runMain(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(e.stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	// The longest registered name that prefixes the arguments wins.
	var cmd *command
	for _, c := range commands {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && slices.Equal(args[:len(words)], words) {
			if cmd == nil || len(words) > len(strings.Fields(cmd.name)) {
				cmd = c
			}
		}
	}
	if cmd == nil {
		if group := subcommands(args[0]); group != nil {
			// A group's name alone ("sluice job"): list its subcommands.
			help := len(args) > 1 && (args[1] == "-h" || args[1] == "--help" || args[1] == "-help" || args[1] == "help")
			w := e.stdout
			if !help {
				w = e.stderr
				if len(args) > 1 {
					fmt.Fprintf(e.stderr, "sluice: unknown command %q\n\n", args[0]+" "+args[1])
				}
			}
			fmt.Fprintf(w, "usage: sluice %s <subcommand> [flags] [args]\n\nsubcommands:\n", args[0])
			for _, c := range group {
				fmt.Fprintf(w, "  %-16s %s\n", c.name, c.summary)
			}
			fmt.Fprintf(w, "\nRun `sluice %s <subcommand> --help` for a subcommand's flags.\n", args[0])
			if help {
				return 0
			}
			return 2
		}
		fmt.Fprintf(e.stderr, "sluice: unknown command %q\n\n", args[0])
		usage(e.stderr)
		return 2
	}
	rest := args[len(strings.Fields(cmd.name)):]
	fs := flag.NewFlagSet("sluice "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: sluice %s [flags] %s\n\n%s\n", cmd.name, cmd.args, cmd.summary)
		if hasFlags(fs) {
			fmt.Fprintf(e.stderr, "\nflags:\n")
			fs.PrintDefaults()
		}
	}
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	if err := fs.Parse(interleave(fs, rest)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := cmd.run(ctx, e, fs.Args()); err != nil {
		if errors.Is(err, errUsage) {
			fs.Usage()
			return 2
		}
		fmt.Fprintf(e.stderr, "sluice %s: %v\n", cmd.name, err)
		if errors.Is(err, api.ErrUnavailable) {
			fmt.Fprintf(e.stderr, "no coordinator answered in time (--timeout); check that `sluice coordinator` runs at the addresses of --coordinators or SLUICE_COORDINATORS\n")
		}
		return 1
	}
	return 0
}

// interleave moves flags that follow positional arguments in front of them,
// so `sluice run plan.yaml --dry-run` works as users expect.
func interleave(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil {
			if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
				continue
			}
			if i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		}
	}
	return append(flags, pos...)
}

// subcommands are the commands of more than one word whose first word is
// group, sorted by name.
func subcommands(group string) []*command {
	var out []*command
	for _, c := range commands {
		if words := strings.Fields(c.name); len(words) > 1 && words[0] == group {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b *command) int { return strings.Compare(a.name, b.name) })
	return out
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "sluice: batch data pipelines with LLM inference\n\nusage: sluice <command> [flags] [args]\n\ncommands:\n")
	sorted := slices.Clone(commands)
	slices.SortFunc(sorted, func(a, b *command) int { return strings.Compare(a.name, b.name) })
	for _, c := range sorted {
		fmt.Fprintf(w, "  %-16s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun `sluice <command> --help` for a command's flags.\n")
}
