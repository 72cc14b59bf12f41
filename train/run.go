package train

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/internal/guard"
	"github.com/latentlm/latentlm/nn"
)

// Run is a training run writing to a checkpoint folder: the store it trains
// (fresh, or with everything a saved run had), the loss history and seed it
// continues from, and the folder's lock. StartRun prepares one; Finish
// releases it.
type Run struct {
	Store   *model.Store
	History []Point // the loss history so far (restored on resume)
	Seed    uint64  // the run's seed (on resume, the one it was started with)
	Dir     string

	lock *guard.Lock
}

// StartRun prepares the store of a training run of a model of the given
// kind writing to dir, holding the folder's lock (another run on it is
// refused) and cleaning what a killed run left half-written.
//
// A fresh run refuses a dir that already holds a checkpoint
// (ErrCheckpointExists); with resume, the config saved in dir is decoded
// into cfg (a pointer) and the training state is loaded, so the run
// continues exactly where it stopped, with the seed it was started with. estimate, called once cfg is final, is the
// run's memory estimate in bytes: it is checked against memoryLimit
// (guard.CheckMemory; 0 or less: the default of guard.MemoryLimit) before
// anything is allocated.
//
// The caller must call Finish, also after an error of the training itself.
func StartRun(dir, kind string, cfg checkpoint.Model, seed uint64, resume bool, memoryLimit float64, estimate func() float64) (r *Run, err error) {
	r = &Run{Store: model.NewStore(), Seed: seed, Dir: dir}
	if resume {
		if _, err := os.Stat(filepath.Join(dir, checkpoint.ConfigFile)); err != nil {
			return nil, fmt.Errorf("%s: no checkpoint to resume (no %s)", dir, checkpoint.ConfigFile)
		}
	} else if _, err := os.Stat(filepath.Join(dir, checkpoint.ConfigFile)); err == nil {
		return nil, fmt.Errorf("%s %w", dir, ErrCheckpointExists)
	}
	if r.lock, err = guard.LockDir(dir); err != nil {
		return nil, err
	}
	started := r
	defer func() {
		if err != nil {
			started.Finish()
		}
	}()
	if err := checkpoint.Clean(dir); err != nil {
		return nil, err
	}
	if resume {
		if _, err := checkpoint.ReadHeader(dir, kind, cfg); err != nil {
			return nil, err
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if memoryLimit <= 0 {
		if memoryLimit, err = guard.MemoryLimit(""); err != nil {
			return nil, err
		}
	}
	if err := guard.CheckMemory("training", estimate(), memoryLimit); err != nil {
		return nil, err
	}
	if err := nn.Init(r.Store, cfg.Specs(), seed, dtypes.Float32); err != nil {
		return nil, err
	}
	if !resume {
		return r, r.Store.SetRNGStateFromSeed(int64(seed))
	}
	statePath := filepath.Join(dir, checkpoint.StateFile)
	meta, err := checkpoint.LoadState(statePath, r.Store)
	if err != nil {
		return nil, err
	}
	if r.History, err = ParseHistory(meta["history"]); err != nil {
		return nil, fmt.Errorf("%s: %w", statePath, err)
	}
	if s, err := strconv.ParseUint(meta["seed"], 10, 64); err == nil {
		r.Seed = s
	}
	// The files of a save are one unit (checkpoint.WriteSet); the step
	// recorded in the state ties it to the weights it was saved with.
	if s, ok := meta["step"]; ok && s != fmt.Sprint(StepCount(r.Store)) {
		return nil, fmt.Errorf("%s: training state says step %s but holds step %d", statePath, s, StepCount(r.Store))
	}
	return r, nil
}

// Finish releases the run's folder; a fresh folder that never received a
// checkpoint is removed, so a run refused early leaves nothing behind.
func (r *Run) Finish() {
	r.lock.Unlock(func() bool {
		_, err := os.Stat(filepath.Join(r.Dir, checkpoint.ConfigFile))
		return err == nil
	})
}

// Save writes the run's checkpoint as one unit (checkpoint.WriteSet): the
// weights and config that writeModel puts in the staging folder it is
// given, and the training state with history, the seed and step.
func (r *Run) Save(writeModel func(dir string) error, history []Point, step int64) error {
	return checkpoint.WriteSet(r.Dir, func(staging string) error {
		if err := writeModel(staging); err != nil {
			return err
		}
		return checkpoint.SaveState(filepath.Join(staging, checkpoint.StateFile), r.Store,
			map[string]string{"history": HistoryJSON(history), "seed": fmt.Sprint(r.Seed), "step": fmt.Sprint(step)})
	})
}

// Train runs l (whose Hook should save through Save) and returns its error,
// except that a run stopped by the cancellation of ctx, which has saved its
// checkpoint, returns an *InterruptedError naming the folder.
func (r *Run) Train(ctx context.Context, l *Loop) error {
	err := l.Run(ctx)
	if errors.Is(err, context.Canceled) {
		return &InterruptedError{Dir: r.Dir, Err: err}
	}
	return err
}

// ErrCheckpointExists is the error of a fresh run (StartRun without resume)
// on a folder that already holds a checkpoint.
var ErrCheckpointExists = errors.New("already holds a checkpoint")

// InterruptedError is the error of a run whose context was cancelled
// (Ctrl-C): it saved its checkpoint in Dir, and resuming from there
// continues it exactly.
type InterruptedError struct {
	Dir string
	Err error // the context's error
}

func (e *InterruptedError) Error() string {
	return fmt.Sprintf("interrupted: checkpoint saved in %s", e.Dir)
}

func (e *InterruptedError) Unwrap() error { return e.Err }
