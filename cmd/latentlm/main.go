// Command latentlm trains and samples LatentLM models — multimodal latent
// language modelling with next-token diffusion — on the CPU or a GPU,
// without Python.
//
// Run `latentlm help` for the commands.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

type command struct {
	name    string
	summary string
	run     func(args []string) error
}

var commands []command

func register(name, summary string, run func(args []string) error) {
	commands = append(commands, command{name, summary, run})
}

func init() {
	register("info", "show backend, library paths, CPU features, datasets and version", runInfo)
	register("bench", "measure training and sampling speed", runBench)
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "latentlm %s — multimodal latent language modelling with next-token diffusion\n\n", version)
	fmt.Fprintf(w, "usage: latentlm <command> [flags]\n\ncommands:\n")
	sort.Slice(commands, func(i, j int) bool { return commands[i].name < commands[j].name })
	for _, c := range commands {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun `latentlm <command> -h` for a command's flags.\n")
	fmt.Fprintf(w, "The backend is chosen by --backend or $LATENTLM_BACKEND: onnx (default), go, xla.\n")
}

func main() {
	os.Exit(run(os.Args[1:]))
}

// run dispatches to a command and turns every failure, panics included,
// into one line on stderr and exit status 1.
func run(args []string) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "latentlm: internal error: %v\n", firstLine(fmt.Sprint(r)))
			if os.Getenv("LATENTLM_DEBUG") != "" {
				fmt.Fprintf(os.Stderr, "%s\n", debug.Stack())
			}
			code = 1
		}
	}()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(os.Stdout)
		return 0
	}
	if args[0] == "version" || args[0] == "--version" {
		fmt.Println(version)
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			err := c.run(args[1:])
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "latentlm %s: %s\n", c.name, firstLine(err.Error()))
				return 1
			}
			return 0
		}
	}
	fmt.Fprintf(os.Stderr, "latentlm: unknown command %q (run `latentlm help`)\n", args[0])
	return 2
}

// firstLine keeps error output to one line. Errors that list several
// problems (a checkpoint's mismatched tensors) have their lines joined with
// "; "; GoMLX errors can carry stack traces after the message, which are
// dropped from the first indented or file:line line on.
func firstLine(s string) string {
	var kept []string
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "\t") || strings.HasPrefix(line, " ") || strings.Contains(line, ".go:") || strings.HasPrefix(line, "goroutine ") {
			break
		}
		kept = append(kept, strings.TrimSpace(line))
	}
	return strings.Join(kept, "; ")
}

// newFlags makes a flag set whose usage names the command and its purpose.
func newFlags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: latentlm %s\n\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// flagSet reports whether the command line set the named flag.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
