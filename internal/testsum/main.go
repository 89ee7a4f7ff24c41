// Command testsum reads `go test -json` on stdin and prints what `go test`
// prints, with each package's skipped tests counted by reason on its
// summary line, so that a green run says what it did not run:
//
//	ok  	github.com/sluicehq/sluice/gpu/cuda	0.012s	(41 tests skipped: no CUDA GPU here)
//
// A failed package's whole output is printed. It exits 1 when a test or a
// build failed. .ci/run pipes the CI's test run through it.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
)

type event struct {
	Action     string
	Package    string
	ImportPath string
	Test       string
	Elapsed    float64
	Output     string
}

type pkg struct {
	out     []string          // every output line, for a failure
	last    map[string]string // each test's last message line
	skipped map[string]int    // reason → tests
}

// location is the "file_test.go:12: " prefix of a t.Log or t.Skip line.
var location = regexp.MustCompile(`^\s*[\w./-]+\.go:\d+: `)

func main() { os.Exit(run(os.Stdin, os.Stdout)) }

func run(r io.Reader, w io.Writer) int {
	pkgs := map[string]*pkg{}
	get := func(name string) *pkg {
		if pkgs[name] == nil {
			pkgs[name] = &pkg{last: map[string]string{}, skipped: map[string]int{}}
		}
		return pkgs[name]
	}
	code := 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			fmt.Fprintln(w, string(line)) // not JSON: go's own messages
			continue
		}
		switch e.Action {
		case "build-output":
			fmt.Fprint(w, e.Output)
		case "build-fail":
			code = 1
		case "output":
			p := get(e.Package)
			p.out = append(p.out, e.Output)
			if e.Test != "" {
				if m := strings.TrimSpace(e.Output); m != "" && !strings.HasPrefix(m, "---") && !strings.HasPrefix(m, "===") {
					p.last[e.Test] = location.ReplaceAllString(m, "")
				}
			}
		case "skip":
			p := get(e.Package)
			if e.Test != "" {
				p.skipped[reason(p.last[e.Test])]++
				continue
			}
			for _, o := range p.out { // a package without tests: its "?" line
				fmt.Fprint(w, o)
			}
			delete(pkgs, e.Package)
		case "pass", "fail":
			if e.Test != "" {
				continue
			}
			p := get(e.Package)
			if e.Action == "fail" {
				code = 1
				for _, o := range p.out {
					fmt.Fprint(w, o)
				}
				continue
			}
			summary := ""
			for _, o := range p.out {
				if strings.HasPrefix(o, "ok  \t") {
					summary = strings.TrimRight(o, "\n")
				}
			}
			if summary == "" {
				summary = fmt.Sprintf("ok  \t%s\t%.3fs", e.Package, e.Elapsed)
			}
			if len(p.skipped) > 0 {
				var parts []string
				for r, n := range p.skipped {
					noun := "tests"
					if n == 1 {
						noun = "test"
					}
					parts = append(parts, fmt.Sprintf("%d %s skipped: %s", n, noun, r))
				}
				slices.Sort(parts)
				summary += "\t(" + strings.Join(parts, "; ") + ")"
			}
			fmt.Fprintln(w, summary)
			delete(pkgs, e.Package)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(w, "testsum:", err)
		return 1
	}
	return code
}

// reason is a skip message cut to its cause: "no CUDA GPU here: cuda:
// no libcuda.so.1" → "no CUDA GPU here".
func reason(msg string) string {
	if msg == "" {
		return "no reason given"
	}
	if i := strings.Index(msg, ": "); i > 0 {
		msg = msg[:i]
	}
	return msg
}
