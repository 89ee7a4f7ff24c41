package main

import (
	"flag"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The commands users and docs rely on; each must stay registered.
var documentedCommands = []string{
	"run", "validate", "explain", "plan schema", "schedule next", "version",
	"generate", "bench etl", "bench etl-query", "bench etl-s3", "bench infer", "gen sales",
	"coordinator", "worker", "submit", "jobs", "job status", "job cancel", "cluster status",
}

// TestCommandHelp runs `sluice CMD --help` (and -h) for every registered
// command: it exits 0 and prints a usage that names the command, its
// summary and each of its flags.
func TestCommandHelp(t *testing.T) {
	var names []string
	for _, c := range commands {
		names = append(names, c.name)
	}
	for _, want := range documentedCommands {
		if !slices.Contains(names, want) {
			t.Errorf("command %q is not registered (have %q)", want, names)
		}
	}
	for _, c := range commands {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			var flags []string
			if c.flags != nil {
				fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
				c.flags(fs)
				fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f.Name) })
			}
			for _, h := range []string{"--help", "-h"} {
				code, out, errOut := sluice(t, append(strings.Fields(c.name), h)...)
				text := out + errOut
				if code != 0 {
					t.Errorf("%s %s: exit %d\n%s", c.name, h, code, text)
				}
				if !strings.HasPrefix(text, "usage: sluice "+c.name+" [flags]") || !strings.Contains(text, c.summary) {
					t.Errorf("%s %s: usage lacks the command or its summary:\n%s", c.name, h, text)
				}
				for _, f := range flags {
					if !regexp.MustCompile(`(?m)^  -` + regexp.QuoteMeta(f) + `( |$)`).MatchString(text) {
						t.Errorf("%s %s: usage lacks flag -%s:\n%s", c.name, h, f, text)
					}
				}
				if len(flags) > 0 != strings.Contains(text, "\nflags:\n") {
					t.Errorf("%s %s: %d flags, usage:\n%s", c.name, h, len(flags), text)
				}
			}
		})
	}
}

// TestGroupHelp: the first word of commands like "job status" lists them.
func TestGroupHelp(t *testing.T) {
	groups := map[string]bool{}
	for _, c := range commands {
		if words := strings.Fields(c.name); len(words) > 1 {
			groups[words[0]] = true
		}
	}
	for _, g := range []string{"bench", "gen", "job", "plan", "schedule", "cluster"} {
		if !groups[g] {
			t.Errorf("no command group %q", g)
		}
	}
	for g := range groups {
		code, out, errOut := sluice(t, g, "--help")
		if code != 0 || errOut != "" || !strings.HasPrefix(out, "usage: sluice "+g+" <subcommand>") {
			t.Errorf("%s --help: exit %d\n%s%s", g, code, out, errOut)
		}
		for _, c := range subcommands(g) {
			if !strings.Contains(out, "  "+c.name+" ") {
				t.Errorf("%s --help does not list %q:\n%s", g, c.name, out)
			}
		}
		code, out, errOut = sluice(t, g)
		if code != 2 || out != "" || !strings.Contains(errOut, "usage: sluice "+g+" <subcommand>") {
			t.Errorf("%s: exit %d\n%s%s", g, code, out, errOut)
		}
		code, _, errOut = sluice(t, g, "frob")
		if code != 2 || !strings.HasPrefix(errOut, `sluice: unknown command "`+g+` frob"`) {
			t.Errorf("%s frob: exit %d\n%s", g, code, errOut)
		}
	}
}

func TestTopLevelHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		code, out, _ := sluice(t, args...)
		if code != 0 || !strings.Contains(out, "usage: sluice <command>") {
			t.Errorf("%v: exit %d\n%s", args, code, out)
		}
		for _, c := range commands {
			if !strings.Contains(out, "  "+c.name+" ") {
				t.Errorf("%v does not list %q", args, c.name)
			}
		}
	}
	if code, _, _ := sluice(t); code != 2 {
		t.Errorf("no arguments: exit %d, want 2", code)
	}
}

func TestVersionCommand(t *testing.T) {
	code, out, errOut := sluice(t, "version")
	if code != 0 || errOut != "" || !regexp.MustCompile(`^sluice \S+ \(go\S+\)\n$`).MatchString(out) {
		t.Errorf("exit %d %q %q", code, out, errOut)
	}
}

func TestUnknownCommand(t *testing.T) {
	code, out, errOut := sluice(t, "frobnicate", "x")
	if code == 0 || out != "" || !strings.HasPrefix(errOut, `sluice: unknown command "frobnicate"`) {
		t.Errorf("exit %d\nstdout %q\nstderr %s", code, out, errOut)
	}
	for _, c := range commands {
		if !strings.Contains(errOut, "  "+c.name+" ") {
			t.Errorf("the message does not list %q:\n%s", c.name, errOut)
		}
	}
}
