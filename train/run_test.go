package train_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/internal/guard"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/train"
)

// runCfg is a one-weight model config for the tests of StartRun.
type runCfg struct {
	Width int `json:"width"`
}

func (c runCfg) Specs() []nn.Spec { return []nn.Spec{{Name: "w", Shape: []int{1, c.Width}, Std: 1}} }

func (c runCfg) Validate() error {
	if c.Width < 1 {
		return fmt.Errorf("width %d: want at least 1", c.Width)
	}
	return nil
}

const runKind = "tiny"

const noLimit = 1 << 40

func free() float64 { return 1 }

// saveRun saves r at step with cfg and the given history.
func saveRun(t *testing.T, r *train.Run, cfg runCfg, h []train.Point, step int64) {
	t.Helper()
	if err := r.Save(func(dir string) error {
		return checkpoint.Save(dir, runKind, cfg, map[string]any{"steps": step}, r.Store, false, nil)
	}, h, step); err != nil {
		t.Fatal(err)
	}
}

func weight(t *testing.T, r *train.Run) []float32 {
	t.Helper()
	v := r.Store.GetVariable(nn.WeightsScope + "/w")
	if v == nil {
		t.Fatal("no weight w in the store")
	}
	return tensors.MustCopyFlatData[float32](v.MustValue())
}

func TestStartRunFreshThenResume(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	cfg := runCfg{Width: 3}
	r, err := train.StartRun(dir, runKind, &cfg, 5, false, noLimit, free)
	if err != nil {
		t.Fatal(err)
	}
	if r.Seed != 5 || r.History != nil || r.Dir != dir {
		t.Errorf("fresh run: seed %d, history %v, dir %s", r.Seed, r.History, r.Dir)
	}
	w := weight(t, r)
	h := []train.Point{{Step: 10, Loss: 0.5}}
	saveRun(t, r, cfg, h, 0)
	// The folder is in use until Finish.
	if _, err := train.StartRun(dir, runKind, &runCfg{}, 5, true, noLimit, free); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second run on a folder in use: %v, want an error saying it is in use", err)
	}
	r.Finish()
	for _, f := range []string{checkpoint.ConfigFile, checkpoint.WeightsFile, checkpoint.StateFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("saved run has no %s: %v", f, err)
		}
	}

	// A fresh run refuses the folder.
	_, err = train.StartRun(dir, runKind, &runCfg{Width: 3}, 5, false, noLimit, free)
	if !errors.Is(err, train.ErrCheckpointExists) || err.Error() != dir+" already holds a checkpoint" {
		t.Errorf("fresh run on a checkpoint: %v, want ErrCheckpointExists naming the folder", err)
	}

	// Resuming reads the saved config, seed, history and weights.
	var got runCfg
	estimated := 0
	r2, err := train.StartRun(dir, runKind, &got, 99, true, noLimit, func() float64 {
		estimated = got.Width
		return 1
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Finish()
	if got != cfg || estimated != cfg.Width {
		t.Errorf("resumed config %+v (estimated with width %d), want %+v", got, estimated, cfg)
	}
	if r2.Seed != 5 {
		t.Errorf("resumed seed %d, want the saved 5", r2.Seed)
	}
	if !reflect.DeepEqual(r2.History, h) {
		t.Errorf("resumed history %v, want %v", r2.History, h)
	}
	if w2 := weight(t, r2); !slices.Equal(w2, w) {
		t.Errorf("resumed weights %v, want %v", w2, w)
	}
}

func TestStartRunRefusals(t *testing.T) {
	root := t.TempDir()
	// Nothing to resume.
	_, err := train.StartRun(filepath.Join(root, "none"), runKind, &runCfg{Width: 1}, 1, true, noLimit, free)
	if err == nil || !strings.Contains(err.Error(), "no checkpoint to resume") {
		t.Errorf("resume of an empty folder: %v", err)
	}
	// Over the memory limit: refused, and the folder it created is gone.
	dir := filepath.Join(root, "big")
	_, err = train.StartRun(dir, runKind, &runCfg{Width: 1}, 1, false, 1000, func() float64 { return 2000 })
	if err == nil || err.Error() != guard.CheckMemory("training", 2000, 1000).Error() {
		t.Errorf("run over the memory limit: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("a refused run left its folder: %v", err)
	}
	// An invalid config, likewise.
	_, err = train.StartRun(dir, runKind, &runCfg{}, 1, false, noLimit, free)
	if err == nil || !strings.Contains(err.Error(), "width 0") {
		t.Errorf("invalid config: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("a refused run left its folder: %v", err)
	}
}

func TestRunTrainInterrupted(t *testing.T) {
	l, hooks := tinyLoop(t, 10, 0)
	r := &train.Run{Dir: "somewhere"}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := r.Train(ctx, l)
	var ie *train.InterruptedError
	if !errors.As(err, &ie) || ie.Dir != "somewhere" || !errors.Is(err, context.Canceled) {
		t.Fatalf("Train with a cancelled context = %v, want an InterruptedError naming the folder", err)
	}
	if err.Error() != "interrupted: checkpoint saved in somewhere" {
		t.Errorf("message %q", err.Error())
	}
	if len(*hooks) != 1 {
		t.Errorf("the interrupted run saved %d times, want once", len(*hooks))
	}
	// Errors other than cancellation pass through.
	boom := errors.New("disk full")
	l.Hook = func(int64, []train.Point) error { return boom }
	if err := r.Train(context.Background(), l); err != boom {
		t.Errorf("Train = %v, want the hook's error", err)
	}
}
