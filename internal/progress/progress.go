// Package progress shows long work on the terminal: a bar with the step,
// the rate and the figures the caller reports (loss, items/s), refreshed in
// place on a terminal and printed as a line every few seconds otherwise, so
// that logs of background runs stay readable.
package progress

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Bar reports progress over a known number of steps.
type Bar struct {
	bar       *progressbar.ProgressBar
	out       io.Writer
	total     int
	done      int
	start     time.Time
	lastLine  time.Time
	desc      string
	terminal  bool
	quiet     bool
	lineEvery time.Duration
}

// New starts a bar for total steps, described by desc, on stderr.
func New(total int, desc string) *Bar {
	b := &Bar{out: os.Stderr, total: total, desc: desc, start: time.Now(), lineEvery: 10 * time.Second}
	b.terminal = term.IsTerminal(int(os.Stderr.Fd()))
	if b.terminal {
		b.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(24),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionClearOnFinish(),
		)
	}
	return b
}

// Quiet returns a bar that shows nothing (for tests and --quiet).
func Quiet() *Bar { return &Bar{quiet: true, start: time.Now()} }

// Step records n more steps done, with status shown beside the bar.
func (b *Bar) Step(n int, status string) {
	b.done += n
	if b.quiet {
		return
	}
	if b.terminal {
		b.bar.Describe(b.desc + " " + status)
		_ = b.bar.Add(n)
		return
	}
	if time.Since(b.lastLine) >= b.lineEvery || b.done == b.total {
		b.lastLine = time.Now()
		fmt.Fprintf(b.out, "%s %d/%d %s [%s]\n", b.desc, b.done, b.total, status, time.Since(b.start).Round(time.Second))
	}
}

// Finish ends the bar.
func (b *Bar) Finish() {
	if b.quiet {
		return
	}
	if b.terminal {
		_ = b.bar.Finish()
		fmt.Fprintf(b.out, "%s done: %d steps in %s\n", b.desc, b.done, time.Since(b.start).Round(time.Second))
	}
}

// SetTotal changes the number of steps the bar counts to, for work whose
// length is settled as it goes (a training run with a time budget).
func (b *Bar) SetTotal(total int) {
	b.total = total
	if b.terminal && !b.quiet {
		b.bar.ChangeMax(total)
	}
}
