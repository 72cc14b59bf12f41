package checkpoint_test

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/latentlm/latentlm/checkpoint"
)

// The folder names of WriteSet's redo log are part of the on-disk format:
// a checkpoint written by one version is recovered by the next.
const (
	stagingName = ".staging"
	commitName  = ".commit"
)

// treeOf maps every path below dir (relative, with "/" after folders) to
// its content.
func treeOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if rel == "." {
			return nil
		}
		if d.IsDir() {
			out[filepath.ToSlash(rel)+"/"] = ""
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// populate writes files (paths relative to dir, "/" suffix for a folder).
func populate(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for _, rel := range slices.Sorted(maps.Keys(files)) {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if rel[len(rel)-1] == '/' {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(files[rel]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func sameTree(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if maps.Equal(got, want) {
		return
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[k]; !ok {
			t.Errorf("%s: %s missing", what, k)
		} else if g != want[k] {
			t.Errorf("%s: %s = %q, want %q", what, k, g, want[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected %s", what, k)
		}
	}
}

var oldSet = map[string]string{
	"config.json":             "old config",
	"model.safetensors":       "old model",
	"train_state.safetensors": "old state",
	"notes.txt":               "user notes",
	"samples/":                "",
	"samples/grid.png":        "grid",
}

func TestWriteSetReplacesTheSet(t *testing.T) {
	dir := t.TempDir()
	populate(t, dir, oldSet)
	var staged string
	err := checkpoint.WriteSet(dir, func(staging string) error {
		staged = staging
		if filepath.Dir(staging) != dir {
			t.Errorf("staging folder %s is not inside %s", staging, dir)
		}
		// Nothing of the new set is visible before write returns.
		if b, _ := os.ReadFile(filepath.Join(dir, "config.json")); string(b) != "old config" {
			t.Errorf("config.json during write: %q", b)
		}
		populate(t, staging, map[string]string{
			"config.json":             "new config",
			"model.safetensors":       "new model",
			"train_state.safetensors": "new state",
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := maps.Clone(oldSet)
	want["config.json"], want["model.safetensors"], want["train_state.safetensors"] = "new config", "new model", "new state"
	sameTree(t, "after WriteSet", treeOf(t, dir), want)
	if _, err := os.Stat(staged); !os.IsNotExist(err) {
		t.Errorf("staging folder %s remains: %v", staged, err)
	}

	// A smaller set replaces only its own files.
	err = checkpoint.WriteSet(dir, func(staging string) error {
		populate(t, staging, map[string]string{"model.safetensors": "newer model"})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want["model.safetensors"] = "newer model"
	sameTree(t, "after a one-file WriteSet", treeOf(t, dir), want)
}

func TestWriteSetCreatesFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "run")
	err := checkpoint.WriteSet(dir, func(staging string) error {
		populate(t, staging, map[string]string{"config.json": "c", "model.safetensors": "m"})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, "new checkpoint", treeOf(t, dir), map[string]string{"config.json": "c", "model.safetensors": "m"})
}

func TestWriteSetErrorKeepsOldSet(t *testing.T) {
	dir := t.TempDir()
	populate(t, dir, oldSet)
	before := treeOf(t, dir)
	boom := errors.New("disk full")
	err := checkpoint.WriteSet(dir, func(staging string) error {
		populate(t, staging, map[string]string{"config.json": "new config", "model.safetensors": "half a mod"})
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("WriteSet = %v, want the write error", err)
	}
	sameTree(t, "after a failed WriteSet", treeOf(t, dir), before)
	if err := checkpoint.Recover(dir); err != nil {
		t.Fatal(err)
	}
	sameTree(t, "after a failed WriteSet and Recover", treeOf(t, dir), before)
}

func TestWriteSetDiscardsLeftoverStaging(t *testing.T) {
	dir := t.TempDir()
	populate(t, dir, oldSet)
	// A save killed while staging left a partial set behind.
	populate(t, dir, map[string]string{stagingName + "/model.safetensors": "partial", stagingName + "/junk": "junk"})
	err := checkpoint.WriteSet(dir, func(staging string) error {
		populate(t, staging, map[string]string{"config.json": "new config"})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := maps.Clone(oldSet)
	want["config.json"] = "new config"
	sameTree(t, "after WriteSet over a leftover staging folder", treeOf(t, dir), want)
}

func TestRecoverAfterCommit(t *testing.T) {
	for _, c := range []struct {
		name   string
		commit map[string]string // what a crash after the commit rename left
		dir    map[string]string // changes to the old set already made
	}{
		{
			name:   "killed before any file moved",
			commit: map[string]string{"config.json": "new config", "model.safetensors": "new model"},
		},
		{
			name:   "killed after one file moved",
			commit: map[string]string{"model.safetensors": "new model"},
			dir:    map[string]string{"config.json": "new config"},
		},
		{
			name: "killed after every file moved",
			dir:  map[string]string{"config.json": "new config", "model.safetensors": "new model"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := maps.Clone(oldSet)
			want["config.json"], want["model.safetensors"] = "new config", "new model"

			for _, fn := range []struct {
				name string
				f    func(string) error
			}{{"Recover", checkpoint.Recover}, {"Clean", checkpoint.Clean}} {
				dir := t.TempDir()
				populate(t, dir, oldSet)
				populate(t, dir, c.dir)
				populate(t, dir, map[string]string{commitName + "/": ""})
				for name, content := range c.commit {
					populate(t, dir, map[string]string{commitName + "/" + name: content})
				}
				if err := fn.f(dir); err != nil {
					t.Fatalf("%s: %v", fn.name, err)
				}
				sameTree(t, "after "+fn.name, treeOf(t, dir), want)
				// A second recovery (another reader) changes nothing.
				if err := fn.f(dir); err != nil {
					t.Fatalf("second %s: %v", fn.name, err)
				}
				sameTree(t, "after a second "+fn.name, treeOf(t, dir), want)
			}
		})
	}
}

func TestWriteSetFinishesCommittedSave(t *testing.T) {
	dir := t.TempDir()
	populate(t, dir, oldSet)
	populate(t, dir, map[string]string{commitName + "/config.json": "new config", commitName + "/model.safetensors": "new model"})
	err := checkpoint.WriteSet(dir, func(staging string) error {
		populate(t, staging, map[string]string{"train_state.safetensors": "new state"})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := maps.Clone(oldSet)
	want["config.json"], want["model.safetensors"], want["train_state.safetensors"] = "new config", "new model", "new state"
	sameTree(t, "after WriteSet over an unfinished commit", treeOf(t, dir), want)
}

func TestRecoverLeavesStagingCleanRemovesIt(t *testing.T) {
	dir := t.TempDir()
	populate(t, dir, oldSet)
	leftovers := map[string]string{
		stagingName + "/":                  "",
		stagingName + "/config.json":       "new config",
		stagingName + "/model.safetensors": "half a m",
		".model.safetensors.123456.tmp":    "half a write",
		".samples.42.tmp/":                 "",
		".samples.42.tmp/a.png":            "a",
	}
	populate(t, dir, leftovers)
	before := treeOf(t, dir)

	// Readers recover, but must not delete what a live writer may be filling.
	if err := checkpoint.Recover(dir); err != nil {
		t.Fatal(err)
	}
	sameTree(t, "after Recover", treeOf(t, dir), before)

	// The lock holder cleans: the old set stays, the leftovers go.
	if err := checkpoint.Clean(dir); err != nil {
		t.Fatal(err)
	}
	sameTree(t, "after Clean", treeOf(t, dir), oldSet)
}

func TestRecoverCleanFolderChangesNothing(t *testing.T) {
	dir := t.TempDir()
	populate(t, dir, oldSet)
	populate(t, dir, map[string]string{".lock": "", "model.tmp": "not a temporary of ours"})
	before := treeOf(t, dir)
	beforeTimes := map[string]int64{}
	for name := range before {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		beforeTimes[name] = st.ModTime().UnixNano()
	}
	for _, fn := range []struct {
		name string
		f    func(string) error
	}{{"Recover", checkpoint.Recover}, {"Clean", checkpoint.Clean}} {
		if err := fn.f(dir); err != nil {
			t.Fatalf("%s: %v", fn.name, err)
		}
		sameTree(t, "after "+fn.name+" on a clean folder", treeOf(t, dir), before)
		for name, mt := range beforeTimes {
			st, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if st.ModTime().UnixNano() != mt {
				t.Errorf("%s: %s was modified", fn.name, name)
			}
		}
	}
	// Nor does it create a missing folder.
	missing := filepath.Join(dir, "missing")
	if err := checkpoint.Recover(missing); err != nil {
		t.Errorf("Recover on a missing folder: %v", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("Recover created %s: %v", missing, err)
	}
}
