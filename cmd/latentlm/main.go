// Command latentlm trains and samples LatentLM models — multimodal latent
// language modelling with next-token diffusion
// (https://arxiv.org/abs/2412.08635) — on the CPU or a GPU, without Python.
// docs/DESIGN.md describes the model and docs/ARCHITECTURE.md the packages
// behind each command.
//
// Run `latentlm help` for the commands.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"

	"github.com/latentlm/latentlm/internal/guard"
	"github.com/latentlm/latentlm/nn"
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
				// Errors of the public package carry its name; the
				// command's own prefix says the same.
				msg := strings.TrimPrefix(firstLine(err.Error()), "latentlm: ")
				fmt.Fprintf(os.Stderr, "latentlm %s: %s\n", c.name, msg)
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

// dispatch runs the subcommand named by args[0]. -h prints usage on
// stdout; a missing or unknown subcommand is one line of error.
func dispatch(name, usage string, subs map[string]func([]string) error, args []string) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Println(usage)
		return nil
	}
	names := make([]string, 0, len(subs))
	for n := range subs {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(args) == 0 {
		return fmt.Errorf("missing subcommand: want %s (run `latentlm %s -h`)", strings.Join(names, ", "), name)
	}
	if subs[args[0]] == nil {
		return fmt.Errorf("unknown subcommand %q: want %s (run `latentlm %s -h`)", args[0], strings.Join(names, ", "), name)
	}
	return subs[args[0]](args[1:])
}

// flags is a command's flag set with the checks every command shares: an
// unknown flag or a stray word is one line of error, every number must be
// finite and inside its range, and the memory limit is a flag of its own.
type flags struct {
	*flag.FlagSet
	name       string
	positional bool     // whether the command takes arguments besides its flags
	args       []string // those arguments, in order, once parsed
	bounds     map[string]bound
	maxMemory  *string
}

// bound is the range of a numeric flag; lo is exclusive when open is set.
type bound struct {
	lo, hi float64
	open   bool
}

// defaultBounds are the ranges of the flags that several commands share;
// a command narrows or widens one with flags.bound.
var defaultBounds = map[string]bound{
	"n": {lo: 1, hi: math.MaxInt32}, "batch": {lo: 1, hi: 1 << 20}, "batch-mul": {lo: 1, hi: 1 << 10},
	"steps": {lo: 0, hi: math.MaxInt32}, "save-every": {lo: 0, hi: math.MaxInt32}, "sample-every": {lo: 0, hi: math.MaxInt32},
	"snapshot-every": {lo: 0, hi: math.MaxInt32}, "limit": {lo: 0, hi: math.MaxInt32},
	"cfg": {lo: 0, hi: 1000}, "temperature": {lo: 0, hi: 100, open: true},
	"lr": {lo: 0, hi: 10, open: true}, "ema": {lo: 0, hi: 1, open: false}, "label-dropout": {lo: 0, hi: 1},
	"c-sigma": {lo: 0, hi: 100}, "kl-weight": {lo: 0, hi: 1e6},
	"dim": {lo: 1, hi: nn.MaxWidth}, "depth": {lo: 1, hi: nn.MaxDepth}, "heads": {lo: 1, hi: nn.MaxWidth},
	"kv-heads": {lo: 1, hi: nn.MaxWidth}, "head-dim": {lo: 1, hi: nn.MaxWidth}, "head-depth": {lo: 1, hi: nn.MaxDepth},
	"channels": {lo: 1, hi: nn.MaxWidth}, "width1": {lo: 1, hi: nn.MaxWidth}, "width2": {lo: 1, hi: nn.MaxWidth},
	"features": {lo: 1, hi: nn.MaxWidth},
}

// newFlags makes a command's flag set; synopsis heads its usage.
func newFlags(name, synopsis string) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	f := &flags{FlagSet: fs, name: name, bounds: map[string]bound{}}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: latentlm %s\n\n", synopsis)
		fs.PrintDefaults()
	}
	f.maxMemory = fs.String("max-memory", "", "refuse work estimated to need more memory than this, e.g. 12GiB (default: $"+guard.MemoryEnv+", else half of the RAM)")
	return f
}

// takesArgs lets the command accept arguments besides its flags. Flags
// may come before, between or after them (`caption x.png --steps 5`), as
// people type them; "--" ends the flags, for an argument that starts with
// a dash.
func (f *flags) takesArgs() *flags { f.positional = true; return f }

// parseInterspersed parses flags before and after the command's arguments,
// which the flag package alone stops at, and returns the arguments.
func (f *flags) parseInterspersed(args []string) ([]string, error) {
	var pos []string
	for {
		if err := f.FlagSet.Parse(args); err != nil {
			return nil, err
		}
		rest := f.FlagSet.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// The flag package stopped at "--" (which it consumed) or at the
		// first argument.
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// Args are the command's arguments (those of a command that takes none
// are refused by Parse).
func (f *flags) Args() []string {
	if f.positional {
		return f.args
	}
	return f.FlagSet.Args()
}

// NArg is the number of the command's arguments.
func (f *flags) NArg() int { return len(f.Args()) }

// Arg is the i-th argument, or "" if there is none.
func (f *flags) Arg(i int) string {
	if a := f.Args(); i >= 0 && i < len(a) {
		return a[i]
	}
	return ""
}

// bound sets the range of a numeric flag (lo exclusive when open).
func (f *flags) bound(name string, lo, hi float64, open bool) {
	f.bounds[name] = bound{lo, hi, open}
}

// Parse parses args and checks them: -h prints the usage on stdout and
// returns flag.ErrHelp; every other problem is one line of error.
func (f *flags) Parse(args []string) error {
	f.SetOutput(io.Discard)
	var err error
	if f.positional {
		f.args, err = f.parseInterspersed(args)
	} else {
		err = f.FlagSet.Parse(args)
	}
	if errors.Is(err, flag.ErrHelp) {
		f.SetOutput(os.Stdout)
		f.Usage()
		return err
	}
	if err != nil {
		return fmt.Errorf("%v (run `latentlm %s -h` for its flags)", err, f.name)
	}
	if !f.positional && f.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: this command takes only flags (a flag's value with spaces needs quotes)", f.Arg(0))
	}
	var bad error
	f.VisitAll(func(fl *flag.Flag) {
		if bad != nil {
			return
		}
		g, ok := fl.Value.(flag.Getter)
		if !ok {
			return
		}
		var v float64
		switch x := g.Get().(type) {
		case float64:
			v = x
		case int:
			v = float64(x)
		case int64:
			v = float64(x)
		default:
			return
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			bad = fmt.Errorf("--%s %v: want a finite number", fl.Name, fl.Value)
			return
		}
		b, ok := f.bounds[fl.Name]
		if !ok {
			b, ok = defaultBounds[fl.Name]
		}
		if ok && (v < b.lo || v > b.hi || (b.open && v == b.lo)) {
			lo := "≥"
			if b.open {
				lo = ">"
			}
			bad = fmt.Errorf("--%s %v: want a value %s %s and ≤ %s", fl.Name, fl.Value, lo, number(b.lo), number(b.hi))
		}
	})
	if bad != nil {
		return bad
	}
	_, err = f.memoryLimit()
	return err
}

// number formats a bound without an exponent for whole numbers.
func number(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// memoryLimit is the limit of --max-memory, $LATENTLM_MAX_MEMORY or the
// default share of the RAM.
func (f *flags) memoryLimit() (float64, error) {
	flag := ""
	if f != nil {
		flag = *f.maxMemory
	}
	l, err := guard.MemoryLimit(flag)
	if err != nil {
		return 0, fmt.Errorf("--max-memory: %w", err)
	}
	return l, nil
}

// checkMemory refuses work whose estimate is over the memory limit.
func (f *flags) checkMemory(what string, estimate float64) error {
	limit, err := f.memoryLimit()
	if err != nil {
		return err
	}
	return guard.CheckMemory(what, estimate, limit)
}

// isSet reports whether the command line set the named flag.
func (f *flags) isSet(name string) bool {
	set := false
	f.Visit(func(fl *flag.Flag) { set = set || fl.Name == name })
	return set
}
