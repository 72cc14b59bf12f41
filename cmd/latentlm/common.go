package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/train"

	"github.com/latentlm/latentlm/backend"
	"github.com/latentlm/latentlm/data"
	"github.com/latentlm/latentlm/internal/deps"
	"github.com/latentlm/latentlm/internal/guard"
	"github.com/latentlm/latentlm/lm"
)

// openBackend opens the backend named by the flag or the environment.
func openBackend(flagValue string) (compute.Backend, string, error) {
	name := backend.Resolve(flagValue)
	b, err := backend.Open(name)
	return b, name, err
}

// signalContext is cancelled by Ctrl-C or SIGTERM, so that training loops
// can save before they stop.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// weightsDir is where the shipped weights live: weights/<name> in the
// repository (found like .deps, from the working directory or the binary).
func weightsDir(name string) (string, error) {
	d, err := deps.Dir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(filepath.Dir(d), "weights", name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("shipped weights %s not found: %w", p, err)
	}
	return p, nil
}

// checkDataName validates a --data flag.
func checkDataName(name string) error {
	for _, n := range data.Names {
		if n == name {
			return nil
		}
	}
	return fmt.Errorf("unknown data set %q: want mnist or fashion", name)
}

// batches yields the images of d, n at a time, scaled to [0, 1].
func batches(d *data.Dataset, n int, limit int) func(yield func([][]float32) error) error {
	return func(yield func([][]float32) error) error {
		if n < 1 {
			return fmt.Errorf("batch size %d: want at least 1", n)
		}
		total := d.N
		if limit > 0 && limit < total {
			total = limit
		}
		px := d.Height * d.Width
		for start := 0; start < total; start += n {
			end := min(start+n, total)
			batch := make([][]float32, end-start)
			for i := range batch {
				batch[i] = make([]float32, px)
				d.Float32(start+i, batch[i])
			}
			if err := yield(batch); err != nil {
				return err
			}
		}
		return nil
	}
}

// newNormal returns a seeded standard normal generator, for noise added on
// the host (evaluation perturbations).
func newNormal(seed uint64) func() float64 {
	r := rand.New(rand.NewPCG(seed, 0x6e6f697365))
	return r.NormFloat64
}

// runState is what a training command starts from: a store with the weights
// (fresh, or with everything a saved run had), its loss history and seed.
type runState struct {
	store   *model.Store
	history []train.Point
	seed    uint64
	dir     string
	lock    *guard.Lock
}

// startRun prepares the store of a training run writing to dir, holding
// the folder's lock (another run on it is refused) and cleaning what a
// killed run left half-written. A fresh run refuses a dir that already
// holds a checkpoint; with resume, the config saved in dir is decoded into
// cfg (a pointer) and the training state is loaded, so the run continues
// exactly where it stopped. estimate, given the decoded config, is the
// run's memory estimate, checked before anything is allocated. The caller
// must call finish.
func startRun(dir, kind string, cfg checkpoint.Model, seed uint64, resume bool, fs *flags, estimate func() float64) (rs *runState, err error) {
	rs = &runState{store: model.NewStore(), seed: seed, dir: dir}
	if resume {
		if _, err := os.Stat(filepath.Join(dir, checkpoint.ConfigFile)); err != nil {
			return nil, fmt.Errorf("%s: no checkpoint to resume (no %s)", dir, checkpoint.ConfigFile)
		}
	} else if _, err := os.Stat(filepath.Join(dir, checkpoint.ConfigFile)); err == nil {
		return nil, fmt.Errorf("%s already holds a checkpoint: pass --resume to continue it or choose another --out", dir)
	}
	if rs.lock, err = guard.LockDir(dir); err != nil {
		return nil, err
	}
	started := rs
	defer func() {
		if err != nil {
			started.finish()
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
	if err := fs.checkMemory("training", estimate()); err != nil {
		return nil, err
	}
	if err := nn.Init(rs.store, cfg.Specs(), seed, dtypes.Float32); err != nil {
		return nil, err
	}
	if !resume {
		return rs, rs.store.SetRNGStateFromSeed(int64(seed))
	}
	statePath := filepath.Join(dir, checkpoint.StateFile)
	meta, err := checkpoint.LoadState(statePath, rs.store)
	if err != nil {
		return nil, err
	}
	if rs.history, err = train.ParseHistory(meta["history"]); err != nil {
		return nil, fmt.Errorf("%s: %w", statePath, err)
	}
	if s, err := strconv.ParseUint(meta["seed"], 10, 64); err == nil {
		rs.seed = s
	}
	// The files of a save are one unit (checkpoint.WriteSet); the step
	// recorded in the state ties it to the weights it was saved with.
	if s, ok := meta["step"]; ok && s != fmt.Sprint(train.StepCount(rs.store)) {
		return nil, fmt.Errorf("%s: training state says step %s but holds step %d", statePath, s, train.StepCount(rs.store))
	}
	return rs, nil
}

// finish releases the run's folder; a fresh folder that never received a
// checkpoint is removed, so a run refused early leaves nothing behind.
func (rs *runState) finish() {
	rs.lock.Unlock(func() bool {
		_, err := os.Stat(filepath.Join(rs.dir, checkpoint.ConfigFile))
		return err == nil
	})
}

// save writes the run's checkpoint as one unit: the weights and config that
// writeModel puts in the staging folder, and the training state.
func (rs *runState) save(writeModel func(dir string) error, history []train.Point, step int64) error {
	return checkpoint.WriteSet(rs.dir, func(staging string) error {
		if err := writeModel(staging); err != nil {
			return err
		}
		return checkpoint.SaveState(filepath.Join(staging, checkpoint.StateFile), rs.store,
			map[string]string{"history": train.HistoryJSON(history), "seed": fmt.Sprint(rs.seed), "step": fmt.Sprint(step)})
	})
}

// interrupted turns a cancelled run's error into the message a user needs:
// what was saved and the exact command that resumes it.
func interrupted(err error, dir string, args []string) error {
	if !errors.Is(err, context.Canceled) {
		return err
	}
	resume := []string{"latentlm"}
	hasResume := false
	for _, a := range args {
		hasResume = hasResume || a == "--resume" || a == "-resume"
	}
	resume = append(resume, args...)
	if !hasResume {
		resume = append(resume, "--resume")
	}
	if !slices.ContainsFunc(args, func(a string) bool {
		return a == "--out" || a == "-out" || strings.HasPrefix(a, "--out=") || strings.HasPrefix(a, "-out=")
	}) {
		resume = append(resume, "--out", dir)
	}
	return fmt.Errorf("interrupted: checkpoint saved in %s; resume with: %s", dir, strings.Join(resume, " "))
}

// loadTrainingSet loads the training split, or its first limit images when
// limit > 0 (for quick runs).
func loadTrainingSet(name string, limit int) (*data.Dataset, error) {
	ds, err := data.Load(name, "train")
	if err != nil || limit <= 0 || limit >= ds.N {
		return ds, err
	}
	idx := make([]int, limit)
	for i := range idx {
		idx[i] = i
	}
	return ds.Subset(idx), nil
}

// trainFlags are the flags every training command shares.
type trainFlags struct {
	backend, data, out *string
	steps, saveEvery   *int64
	batch, limit       *int
	lr                 *float64
	seed               *uint64
	resume, quiet      *bool
}

// addTrainFlags declares the shared training flags with a command's defaults.
func addTrainFlags(fs *flags, outHelp string, steps int64, batch int, lr float64) trainFlags {
	return trainFlags{
		backend:   fs.String("backend", "", "compute backend: onnx, go or xla"),
		data:      fs.String("data", "mnist", "data set: mnist or fashion"),
		out:       fs.String("out", "", outHelp),
		steps:     fs.Int64("steps", steps, "training steps"),
		batch:     fs.Int("batch", batch, "batch size"),
		lr:        fs.Float64("lr", lr, "peak learning rate"),
		seed:      fs.Uint64("seed", 1, "seed of initialisation, data order and noise"),
		limit:     fs.Int("limit", 0, "use only the first N training images (0: all)"),
		resume:    fs.Bool("resume", false, "continue the run saved in --out"),
		saveEvery: fs.Int64("save-every", 500, "checkpoint period in steps"),
		quiet:     fs.Bool("quiet", false, "no progress bar"),
	}
}

// sampleFlags are the generation flags shared by sample and eval.
type sampleFlags struct {
	model, vae       *string
	steps, batch     *int
	cfg, temperature *float64
	seed             *int64
}

// addSampleFlags declares the generation flags; modelHelp and vaeHelp say
// what the command falls back on.
func addSampleFlags(fs *flags, modelHelp, vaeHelp string, batch int) sampleFlags {
	fs.bound("steps", 0, 1000, false) // the schedule has 1000 steps
	return sampleFlags{
		model:       fs.String("model", "", modelHelp),
		vae:         fs.String("vae", "", vaeHelp),
		steps:       fs.Int("steps", 20, "DPM-Solver++ steps, at most 1000 (0: DDPM over all 1000 steps)"),
		cfg:         fs.Float64("cfg", 4, "classifier-free guidance scale"),
		temperature: fs.Float64("temperature", 1, "scale of the initial noise"),
		seed:        fs.Int64("seed", 1, "random seed"),
		batch:       fs.Int("batch", batch, "images generated at once"),
	}
}

// options are the sampler options the flags select.
func (f sampleFlags) options() lm.SampleOptions {
	return lm.SampleOptions{Steps: *f.steps, CFG: *f.cfg, Temperature: *f.temperature, Seed: *f.seed}
}
