package checkpoint

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/latentlm/latentlm/internal/atomicfile"
)

// A checkpoint's files change together. A training save replaces
// config.json, model.safetensors and train_state.safetensors; were each
// renamed into place on its own, a kill between two renames would leave a
// model one step ahead of its training state. WriteSet makes the set one
// unit with a redo log in two folders:
//
//	.staging/  the new files being written (incomplete: discarded on recovery)
//	.commit/   the complete new set, renamed from .staging in one step;
//	           recovery finishes moving its files into the checkpoint
//
// A reader therefore sees the old set, or the new set once Recover has
// rolled it forward; never a mix.
const (
	stagingDir = ".staging"
	commitDir  = ".commit"
)

// WriteSet writes a set of checkpoint files into dir as one unit: write
// fills a staging folder (with the files' final names), and the set
// replaces the same-named files of dir only once all of it is on disk.
// Files of dir that the set does not contain are left as they are.
func WriteSet(dir string, write func(staging string) error) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating checkpoint folder: %w", err)
	}
	if err := Recover(dir); err != nil {
		return err
	}
	staging := filepath.Join(dir, stagingDir)
	if err := os.RemoveAll(staging); err != nil {
		return fmt.Errorf("%s: %w", staging, err)
	}
	if err := os.Mkdir(staging, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", staging, err)
	}
	if err := write(staging); err != nil {
		_ = os.RemoveAll(staging)
		return err
	}
	if err := atomicfile.SyncDir(staging); err != nil {
		_ = os.RemoveAll(staging)
		return err
	}
	if err := os.Rename(staging, filepath.Join(dir, commitDir)); err != nil {
		_ = os.RemoveAll(staging)
		return fmt.Errorf("committing %s: %w", dir, err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return err
	}
	return rollForward(dir)
}

// Recover finishes a save that was interrupted after its set was complete
// (rolling the committed files forward). It is safe to call while another
// process does the same, and it changes nothing in a clean checkpoint.
func Recover(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, commitDir)); err != nil {
		return nil
	}
	return rollForward(dir)
}

// Clean removes what interrupted saves left behind and no one can finish:
// an incomplete staging folder and temporary files. Only the holder of the
// folder's lock may call it (another process could be writing them).
func Clean(dir string) error {
	if err := Recover(dir); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(dir, stagingDir)); err != nil {
		return err
	}
	return atomicfile.RemoveStale(dir)
}

func rollForward(dir string) error {
	commit := filepath.Join(dir, commitDir)
	entries, err := os.ReadDir(commit)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // another process finished it
		}
		return fmt.Errorf("recovering %s: %w", dir, err)
	}
	for _, e := range entries {
		err := os.Rename(filepath.Join(commit, e.Name()), filepath.Join(dir, e.Name()))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("recovering %s: %w", dir, err)
		}
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return err
	}
	if err := os.Remove(commit); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("recovering %s: %w", dir, err)
	}
	return nil
}
