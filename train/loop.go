package train

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/internal/progress"
)

// Point is one entry of the loss history.
type Point struct {
	Step int64   `json:"step"`
	Loss float64 `json:"loss"`
	// Metrics are the averages of the loss's named terms (Loop.Metrics),
	// in that order.
	Metrics []float64 `json:"metrics,omitempty"`
}

// Loop drives a Trainer for a number of steps with a progress bar, periodic
// hooks (checkpoints, sample grids) and a loss history.
type Loop struct {
	Trainer *Trainer
	Store   *model.Store
	Steps   int64 // total steps of the run (a resumed run continues to this)
	// Batch returns the inputs of 0-based step and how many items (for the
	// items/s figure) they hold. It must depend only on step, so that a
	// resumed run sees the same data. The tensors among the inputs must be
	// new ones: the loop frees them after the step (Trainer.StepAndFree;
	// keeping them cost 0.8 MB a step in an emoji run: docs/BENCHMARKS.md).
	Batch func(step int64) ([]any, int, error)
	// Prefetch lets Batch prepare the next step's inputs on another
	// goroutine while this step trains, so that host work (the speech
	// tokenizer's STFTs) overlaps the accelerator's. Set it only where Batch
	// shares nothing with the step: no backend, no buffers. A batch made
	// for a step that never runs (the run cancelled, or cut short by its
	// Deadline) is dropped.
	Prefetch bool
	// Every is the period, in steps, of Hook; 0 calls it only at the end.
	// Hook is always called when the run ends (finished or cancelled), so
	// every run saves its last step.
	Every int64
	Hook  func(step int64, history []Point) error
	// History is the loss history so far (restored on resume).
	History []Point
	// RecordEvery thins the history to one averaged point per this many steps.
	RecordEvery int64
	// Metrics names the extra scalars the loss returns after the total
	// (such as "ce" and "diffusion"); the progress bar shows them and the
	// history records their averages.
	Metrics []string
	Desc    string
	Quiet   bool
	// Deadline, when set, is when the run must end: once its pace is
	// measured the run is cut to the steps that fit (pacer), and the
	// cosine schedule is refitted to end there (Trainer.SetTotalSteps),
	// so that a run on an unknown machine still anneals. Steps stays the
	// most it may take, and ends up the step it stopped at. A deadline
	// already past when Run starts leaves one step to take.
	Deadline time.Time

	clock func() time.Time // time.Now but in tests
}

// Run trains from the store's current step to Steps. When ctx is cancelled
// (Ctrl-C) it stops after the current step, calls Hook so the work is saved,
// and returns ctx.Err().
func (l *Loop) Run(ctx context.Context) error {
	start := StepCount(l.Store)
	if note := l.Trainer.KeptSchedule(); note != "" {
		fmt.Fprintln(os.Stderr, note) // even when quiet: the run is not what its flags say
	}
	if l.RecordEvery <= 0 {
		l.RecordEvery = 10
	}
	bar := progress.Quiet()
	if !l.Quiet {
		bar = progress.New(int(l.Steps-start), l.Desc)
	}
	var acc float64
	var accN int64
	accM := make([]float64, len(l.Metrics))
	now := l.clock
	if now == nil {
		now = time.Now
	}
	itemsDone, t0 := 0, now()
	var pace *pacer
	if !l.Deadline.IsZero() {
		pace = newPacer(t0, l.Deadline.Sub(t0), l.Steps)
	}
	hooked := int64(-1)
	var ahead chan prepared // the next step's inputs, when prefetching
	for step := start; step < l.Steps; step++ {
		if err := ctx.Err(); err != nil {
			bar.Finish()
			if l.Hook != nil && hooked != step {
				if herr := l.Hook(step, l.History); herr != nil {
					return herr
				}
			}
			return err
		}
		var next prepared
		if l.Prefetch {
			if ahead == nil {
				ahead = l.prepare(step)
			}
			next, ahead = <-ahead, nil
			if step+1 < l.Steps {
				ahead = l.prepare(step + 1)
			}
		} else {
			next.inputs, next.items, next.err = l.Batch(step)
		}
		inputs, items, err := next.inputs, next.items, next.err
		if err != nil {
			return err
		}
		res, err := l.Trainer.StepAndFree(inputs...)
		if err != nil {
			return err
		}
		if res.Loss != res.Loss {
			return fmt.Errorf("loss is NaN at step %d", step+1)
		}
		acc += res.Loss
		accN++
		terms := ""
		for i, name := range l.Metrics {
			if i < len(res.Metrics) {
				accM[i] += res.Metrics[i]
				terms += fmt.Sprintf(" %s %.4f", name, res.Metrics[i])
			}
		}
		if (step+1)%l.RecordEvery == 0 {
			p := Point{Step: step + 1, Loss: acc / float64(accN)}
			for i := range accM {
				p.Metrics = append(p.Metrics, accM[i]/float64(accN))
				accM[i] = 0
			}
			l.History = append(l.History, p)
			acc, accN = 0, 0
		}
		itemsDone += items
		t := now() // once a step, for the rate and the pace
		rate := float64(itemsDone) / t.Sub(t0).Seconds()
		if pace != nil {
			if last, ok := pace.observe(t, step+1); ok && last != l.Steps {
				l.Steps = last
				if err := l.Trainer.SetTotalSteps(last); err != nil {
					return err
				}
				bar.SetTotal(int(last - start))
			}
		}
		bar.Step(1, fmt.Sprintf("loss %.4f%s lr %.2e %.0f items/s", res.Loss, terms, res.LR, rate))
		if l.Hook != nil && l.Every > 0 && ((step+1)%l.Every == 0 || step+1 == l.Steps) {
			if err := l.Hook(step+1, l.History); err != nil {
				return err
			}
			hooked = step + 1
		}
	}
	bar.Finish()
	if end := max(start, l.Steps); l.Hook != nil && hooked != end {
		return l.Hook(end, l.History)
	}
	return nil
}

// prepared is one step's inputs as Batch returned them.
type prepared struct {
	inputs []any
	items  int
	err    error
}

// prepare runs Batch(step) on its own goroutine; the channel delivers it.
func (l *Loop) prepare(step int64) chan prepared {
	ch := make(chan prepared, 1)
	go func() {
		var p prepared
		p.inputs, p.items, p.err = l.Batch(step)
		ch <- p
	}()
	return ch
}

// HistoryJSON encodes a loss history for the training-state metadata.
func HistoryJSON(h []Point) string {
	b, _ := json.Marshal(h)
	return string(b)
}

// ParseHistory decodes HistoryJSON's output; an empty string is no history.
func ParseHistory(s string) ([]Point, error) {
	if s == "" {
		return nil, nil
	}
	var h []Point
	if err := json.Unmarshal([]byte(s), &h); err != nil {
		return nil, fmt.Errorf("loss history: %w", err)
	}
	return h, nil
}
