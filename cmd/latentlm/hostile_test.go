//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Time bounds of one run: a refused input must fail fast; a training run
// encodes all 60000 training images first, which takes tens of seconds on a
// small CPU.
const (
	hostileTimeout = 60 * time.Second
	trainTimeout   = 240 * time.Second
)

// tinyTrain is the smallest LatentLM training configuration.
var tinyTrain = []string{"train", "--dim", "32", "--depth", "1", "--heads", "2", "--kv-heads", "2",
	"--head-dim", "32", "--head-depth", "1", "--batch", "4", "--sample-every", "0", "--quiet"}

func tinyTrainArgs(extra ...string) []string {
	return append(slices.Clone(tinyTrain), extra...)
}

// hostileEnv is the environment of every run: the default memory limit
// (half of the RAM, $LATENTLM_MAX_MEMORY unset), a Go heap limit for
// safety, and the checkout's .deps, which a run in a temporary folder would
// not find by walking up.
func hostileEnv(root string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "LATENTLM_MAX_MEMORY", "LATENTLM_DEPS", "LATENTLM_DEBUG", "GOMEMLIMIT":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LATENTLM_DEPS="+filepath.Join(root, ".deps"), "GOMEMLIMIT=4GiB")
}

// started is a run of the binary in progress; done is closed when it ends.
type started struct {
	cmd            *exec.Cmd
	ctx            context.Context
	cancel         context.CancelFunc
	stdout, stderr bytes.Buffer
	t0             time.Time
	done           chan struct{}
	err            error
}

// startBinary starts the binary in dir; the run is killed after timeout.
func startBinary(t *testing.T, root, dir string, timeout time.Duration, args ...string) *started {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	s := &started{ctx: ctx, cancel: cancel, done: make(chan struct{})}
	s.cmd = exec.CommandContext(ctx, binary_, args...)
	s.cmd.Dir = dir
	s.cmd.Env = hostileEnv(root)
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	s.cmd.WaitDelay = 5 * time.Second
	s.t0 = time.Now()
	if err := s.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		cancel()
	})
	return s
}

// wait waits for the run and returns its exit status (-1 when a signal
// ended it); a run past its time bound is an error.
func (s *started) wait(t *testing.T, args []string) (int, string, string) {
	t.Helper()
	<-s.done
	var ee *exec.ExitError
	switch {
	case errors.Is(s.ctx.Err(), context.DeadlineExceeded):
		t.Errorf("latentlm %s: still running after %s (killed)", strings.Join(args, " "), time.Since(s.t0).Round(time.Millisecond))
	case s.err != nil && !errors.As(s.err, &ee):
		t.Fatalf("latentlm %s: %v", strings.Join(args, " "), s.err)
	}
	return s.cmd.ProcessState.ExitCode(), s.stdout.String(), s.stderr.String()
}

// runBinary runs the binary in dir to completion within timeout.
func runBinary(t *testing.T, root, dir string, timeout time.Duration, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary_, args...)
	cmd.Dir = dir
	cmd.Env = hostileEnv(root)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	t0 := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("latentlm %s: still running after %s (killed); stderr %q", strings.Join(args, " "),
			time.Since(t0).Round(time.Millisecond), stderr.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("latentlm %s: %v", strings.Join(args, " "), err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// snapshot describes every entry under dir, recursively and without
// following links: folders, links with their targets, other special files
// by type, and regular files by their sha256.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		switch typ := d.Type(); {
		case typ.IsDir():
			snap[rel] = "folder"
		case typ&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			snap[rel] = "link to " + target
		case typ.IsRegular():
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			h := sha256.New()
			if _, err := io.Copy(h, f); err != nil {
				return err
			}
			snap[rel] = "file " + hex.EncodeToString(h.Sum(nil))
		default:
			snap[rel] = "special " + typ.String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// diffSnapshots lists what appeared, vanished or changed, except the paths
// in ignore.
func diffSnapshots(before, after map[string]string, ignore ...string) []string {
	var diffs []string
	for p, a := range after {
		if slices.Contains(ignore, p) {
			continue
		}
		if b, ok := before[p]; !ok {
			diffs = append(diffs, "new "+p+" ("+a+")")
		} else if a != b {
			diffs = append(diffs, "changed "+p+" (was "+b+", now "+a+")")
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok && !slices.Contains(ignore, p) {
			diffs = append(diffs, "removed "+p)
		}
	}
	slices.Sort(diffs)
	return diffs
}

// copyDir copies the regular files of the folder src into a new folder dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// writeGrayPNG writes a valid 28×28 grayscale PNG.
func writeGrayPNG(t *testing.T, path string) {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, 28, 28))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeLatents writes a safetensors file, built by hand, holding one F32
// [1,49,8] tensor "latents" of 0.5, with the first value NaN if nan is set.
func writeLatents(t *testing.T, path string, nan bool) {
	t.Helper()
	header := `{"latents":{"dtype":"F32","shape":[1,49,8],"data_offsets":[0,1568]}}`
	b := safetensorsFile(header, 1568)
	data := b[8+len(header):]
	for i := 0; i < 392; i++ {
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(0.5))
	}
	if nan {
		binary.LittleEndian.PutUint32(data, math.Float32bits(float32(math.NaN())))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// editModelConfig sets config.<key> of the checkpoint's config.json.
func editModelConfig(t *testing.T, dir, key string, value any) {
	t.Helper()
	p := filepath.Join(dir, "config.json")
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	cfg, ok := doc["config"].(map[string]any)
	if !ok {
		t.Fatalf("%s has no config object", p)
	}
	cfg[key] = value
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// savedSteps reads info.steps from a training run's config.json.
func savedSteps(t *testing.T, dir string) int64 {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Info struct {
			Steps *int64 `json:"steps"`
		} `json:"info"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Info.Steps == nil {
		t.Fatalf("%s/config.json records no info.steps", dir)
	}
	return *doc.Info.Steps
}

// flockHeld reports whether some process holds a flock on path, from
// /proc/locks (which only observes, unlike trying the lock ourselves).
func flockHeld(t *testing.T, path string) bool {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return false
	}
	raw, err := os.ReadFile("/proc/locks")
	if err != nil {
		t.Fatal(err)
	}
	ino := ":" + strconv.FormatUint(st.Ino, 10)
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && f[1] == "FLOCK" && strings.HasSuffix(f[5], ino) {
			return true
		}
	}
	return false
}

// waitFor polls cond until it holds, the run s ends, or timeout passes.
func waitFor(t *testing.T, s *started, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		select {
		case <-s.done:
			t.Fatalf("the run ended before %s (stderr %q)", what, s.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHostileInput runs the binary, in a fresh working folder per case, on
// the inputs of the hostile-input issue: outputs that are inputs, sizes
// that cannot fit in memory, non-regular files, bad numbers, stray words
// and flags. Each must end in exit status 1 with one line on stderr naming
// the problem, within a time bound, creating nothing and changing no input.
func TestHostileInput(t *testing.T) {
	root := repoRoot(t)
	for _, w := range []string{"latentlm-mnist", "vae-mnist"} {
		if _, err := os.Stat(filepath.Join(root, "weights", w, "model.safetensors")); err != nil {
			t.Fatalf("shipped weights missing: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, ".deps")); err != nil {
		t.Fatalf("no .deps (run make setup): %v", err)
	}
	model := func(t *testing.T, dir string) {
		copyDir(t, filepath.Join(root, "weights", "latentlm-mnist"), filepath.Join(dir, "M"))
	}
	vae := func(t *testing.T, dir string) {
		copyDir(t, filepath.Join(root, "weights", "vae-mnist"), filepath.Join(dir, "V"))
	}
	editedModel := func(key string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			copyDir(t, filepath.Join(root, "weights", "latentlm-mnist"), filepath.Join(dir, "M2"))
			editModelConfig(t, filepath.Join(dir, "M2"), key, 1000000000)
		}
	}
	args := func(a ...string) []string { return a }

	cases := []struct {
		name  string
		setup func(t *testing.T, dir string) // creates the case's inputs in dir
		args  []string
		want  string // part of the one-line error
	}{
		// 1. Outputs that are, or lie inside, an input.
		{name: "sample_out_is_weights", setup: model,
			args: args("sample", "--model", "M", "--class", "3", "--n", "1", "--out", "M/model.safetensors"), want: "inside the input folder"},
		{name: "reconstruct_out_is_weights", setup: vae,
			args: args("vae", "reconstruct", "--vae", "V", "--out", "V/model.safetensors"), want: "inside the input folder"},
		{name: "encode_out_is_input", setup: func(t *testing.T, dir string) { vae(t, dir); writeGrayPNG(t, filepath.Join(dir, "in.png")) },
			args: args("vae", "encode", "--vae", "V", "--out", "in.png", "in.png"), want: "is the input"},
		{name: "sample_out_inside_model", setup: model,
			args: args("sample", "--model", "M", "--out", "M/new.png"), want: "inside the input folder"},
		{name: "sample_out_via_linked_folder", setup: func(t *testing.T, dir string) {
			model(t, dir)
			if err := os.Symlink("M", filepath.Join(dir, "L")); err != nil {
				t.Fatal(err)
			}
		}, args: args("sample", "--model", "M", "--class", "3", "--n", "1", "--out", "L/new.png"), want: "inside the input folder"},
		{name: "encode_out_link_to_input", setup: func(t *testing.T, dir string) {
			vae(t, dir)
			writeGrayPNG(t, filepath.Join(dir, "in.png"))
			if err := os.Symlink("in.png", filepath.Join(dir, "link.safetensors")); err != nil {
				t.Fatal(err)
			}
		}, args: args("vae", "encode", "--vae", "V", "--out", "link.safetensors", "in.png"), want: "is the input"},
		{name: "sample_out_link_to_weights", setup: func(t *testing.T, dir string) {
			model(t, dir)
			if err := os.Symlink("M/model.safetensors", filepath.Join(dir, "link.png")); err != nil {
				t.Fatal(err)
			}
		}, args: args("sample", "--model", "M", "--class", "3", "--n", "1", "--out", "link.png"), want: "inside the input folder"},

		// 2. Sizes that cannot fit, and files that never end.
		{name: "sample_n_huge", args: args("sample", "--class", "3", "--n", "1000000000"), want: "memory"},
		{name: "eval_n_huge", args: args("eval", "--n", "1000000000"), want: "memory"},
		{name: "train_dim_huge", args: args("train", "--dim", "1000000000"), want: "--dim"},
		{name: "train_dim_memory", args: args("train", "--dim", "65536", "--out", "X"), want: "memory"},
		{name: "vae_train_dim_huge", args: args("vae", "train", "--dim", "2000000000"), want: "--dim"},
		{name: "bench_batches_huge", args: args("bench", "sample", "--batches", "100000000"), want: "memory"},
		{name: "config_depth_huge", setup: editedModel("depth"),
			args: args("sample", "--model", "M2", "--n", "1", "--class", "3", "--out", "o.png"), want: "depth 1000000000 out of range"},
		{name: "config_head_depth_huge", setup: editedModel("head_depth"),
			args: args("sample", "--model", "M2", "--n", "1", "--class", "3", "--out", "o.png"), want: "head_depth 1000000000 out of range"},
		{name: "config_max_len_huge", setup: editedModel("max_len"),
			args: args("sample", "--model", "M2", "--n", "1", "--class", "3", "--out", "o.png"), want: "max_len 1000000000 out of range"},
		{name: "encode_dev_zero", setup: vae, args: args("vae", "encode", "--vae", "V", "/dev/zero"), want: "not a regular file"},
		{name: "encode_link_to_dev_zero", setup: func(t *testing.T, dir string) {
			vae(t, dir)
			if err := os.Symlink("/dev/zero", filepath.Join(dir, "z.png")); err != nil {
				t.Fatal(err)
			}
		}, args: args("vae", "encode", "--vae", "V", "z.png"), want: "not a regular file"},
		{name: "encode_fifo", setup: func(t *testing.T, dir string) {
			vae(t, dir)
			if err := syscall.Mkfifo(filepath.Join(dir, "f.png"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, args: args("vae", "encode", "--vae", "V", "f.png"), want: "not a regular file"},

		// 3. Nothing to do.
		{name: "reconstruct_n0", args: args("vae", "reconstruct", "--n", "0"), want: "--n 0"},

		// 6. Stray words.
		{name: "sample_stray_word", args: args("sample", "--class", "3", "--n", "1", "extra", "--out", "o2.png"), want: `unexpected argument "extra"`},
		{name: "train_stray_word", args: args("train", "junk", "--out", "X"), want: `unexpected argument "junk"`},

		// 7. Numbers that are not finite or out of range, and NaN latents.
		{name: "cfg_nan", args: args("sample", "--cfg", "NaN"), want: "--cfg NaN: want a finite number"},
		{name: "cfg_inf", args: args("sample", "--cfg", "Inf"), want: "want a finite number"},
		{name: "temperature_nan", args: args("sample", "--temperature", "NaN"), want: "--temperature NaN: want a finite number"},
		{name: "lr_negative", args: args("train", "--lr", "-1"), want: "--lr -1"},
		{name: "ema_2", args: args("train", "--ema", "2"), want: "--ema 2"},
		{name: "label_dropout_2", args: args("train", "--label-dropout", "2"), want: "--label-dropout 2"},
		{name: "decode_nan_latents", setup: func(t *testing.T, dir string) {
			vae(t, dir)
			writeLatents(t, filepath.Join(dir, "lat.safetensors"), true)
		},
			args: args("vae", "decode", "--vae", "V", "--out-dir", "D", "lat.safetensors"), want: "non-finite"},

		// 8. Empty batches and benchmarks.
		{name: "sample_batch_0", args: args("sample", "--batch", "0"), want: "--batch 0"},
		{name: "sample_batch_negative", args: args("sample", "--batch", "-3"), want: "--batch -3"},
		{name: "bench_step_steps_0", args: args("bench", "step", "--steps", "0"), want: "--steps 0"},

		// 9. Unknown flags and missing subcommands.
		{name: "unknown_flag", args: args("sample", "--bogus-flag"), want: "latentlm sample -h"},
		{name: "vae_no_subcommand", args: args("vae"), want: "missing subcommand"},

		// 10. Output folders that hold files, or whose parent is missing.
		{name: "decode_into_nonempty_dir", setup: func(t *testing.T, dir string) {
			vae(t, dir)
			writeLatents(t, filepath.Join(dir, "lat.safetensors"), false)
			if err := os.Mkdir(filepath.Join(dir, "D"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "D", "0000.png"), []byte("the user's file"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, args: args("vae", "decode", "--vae", "V", "--out-dir", "D", "lat.safetensors"), want: "not empty"},
		{name: "sample_out_missing_folder", args: args("sample", "--class", "3", "--n", "1", "--out", "/nonexistent/dir/o.png"), want: "does not exist"},
		{name: "sample_out_is_folder", setup: func(t *testing.T, dir string) {
			if err := os.Mkdir(filepath.Join(dir, "E"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, args: args("sample", "--class", "3", "--n", "1", "--out", "E"), want: "is a folder"},
		{name: "sample_out_empty", args: args("sample", "--class", "3", "--n", "1", "--out", ""), want: "empty output path"},
		{name: "decode_out_dir_missing_parent", setup: func(t *testing.T, dir string) {
			vae(t, dir)
			writeLatents(t, filepath.Join(dir, "lat.safetensors"), false)
		},
			args: args("vae", "decode", "--vae", "V", "--out-dir", "/nonexistent/dir/D", "lat.safetensors"), want: "does not exist"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if c.setup != nil {
				c.setup(t, dir)
			}
			before := snapshot(t, dir)
			t0 := time.Now()
			code, stdout, stderr := runBinary(t, root, dir, hostileTimeout, c.args...)
			elapsed := time.Since(t0)
			if strings.Contains(stdout, "goroutine") || strings.Contains(stdout, "panic") {
				t.Errorf("panic trace on stdout:\n%s", stdout)
			}
			after := snapshot(t, dir)
			expectOneLineError(t, code, stderr, c.want)
			if d := diffSnapshots(before, after); len(d) > 0 {
				t.Errorf("the refused run changed its folder: %s", strings.Join(d, "; "))
			}
			if elapsed > hostileTimeout {
				t.Errorf("took %s, more than %s", elapsed, hostileTimeout)
			}
			if _, err := os.Stat("/nonexistent"); err == nil && strings.Contains(strings.Join(c.args, " "), "/nonexistent/") {
				t.Errorf("/nonexistent was created")
			}
		})
	}

	// 4. A training folder is locked while a run uses it; an interrupted run
	// saves and says how to resume; a killed run does not keep the lock.
	t.Run("lock", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		x := filepath.Join(dir, "X")
		firstArgs := tinyTrainArgs("--steps", "100000", "--out", "X")
		first := startBinary(t, root, dir, trainTimeout, firstArgs...)
		waitFor(t, first, "X/.lock", hostileTimeout, func() bool {
			_, err := os.Stat(filepath.Join(x, ".lock"))
			return err == nil
		})

		// A second run on the same folder is refused at once.
		secondArgs := tinyTrainArgs("--steps", "100000", "--out", "X", "--seed", "2")
		code, _, stderr := runBinary(t, root, dir, hostileTimeout, secondArgs...)
		expectOneLineError(t, code, stderr, "in use")

		// Ctrl-C: the first run saves and prints the command that resumes it.
		if err := first.cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		code, _, stderr = first.wait(t, firstArgs)
		expectOneLineError(t, code, stderr, "resume with")
		for _, f := range []string{"config.json", "model.safetensors", "train_state.safetensors"} {
			if _, err := os.Stat(filepath.Join(x, f)); err != nil {
				t.Errorf("interrupted run left no %s: %v", f, err)
			}
		}
		saved := savedSteps(t, x)

		// A resumed run killed with SIGKILL while it holds the lock…
		killedArgs := tinyTrainArgs("--steps", "100000", "--out", "X", "--resume")
		killed := startBinary(t, root, dir, trainTimeout, killedArgs...)
		waitFor(t, killed, "flock on X/.lock", hostileTimeout, func() bool { return flockHeld(t, filepath.Join(x, ".lock")) })
		if err := killed.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-killed.done
		if ws, ok := killed.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Errorf("the resumed run was not ended by SIGKILL: %v (stderr %q)", killed.cmd.ProcessState, killed.stderr.String())
		}

		// …does not keep it: the next resume takes it and finishes.
		target := saved + 2
		code, _, stderr = runBinary(t, root, dir, trainTimeout, tinyTrainArgs("--steps", fmt.Sprint(target), "--out", "X", "--resume")...)
		if code != 0 {
			t.Fatalf("resume after a killed run: exit status %d: %s", code, stderr)
		}
		if got := savedSteps(t, x); got != target {
			t.Errorf("resumed run saved step %d, want %d", got, target)
		}
	})

	// 5. A run whose --save-every never falls due, and a run of zero steps,
	// still save a complete checkpoint at the end.
	t.Run("save_at_end", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		for _, c := range []struct {
			out   string
			steps int64
			extra []string
		}{
			{"X", 5, []string{"--save-every", "0"}},
			{"Y", 0, nil},
		} {
			a := tinyTrainArgs(append([]string{"--steps", fmt.Sprint(c.steps), "--out", c.out}, c.extra...)...)
			code, _, stderr := runBinary(t, root, dir, trainTimeout, a...)
			if code != 0 {
				t.Errorf("latentlm %s: exit status %d: %s", strings.Join(a, " "), code, stderr)
				continue
			}
			for _, f := range []string{"config.json", "model.safetensors", "train_state.safetensors"} {
				if _, err := os.Stat(filepath.Join(dir, c.out, f)); err != nil {
					t.Errorf("latentlm %s left no %s: %v", strings.Join(a, " "), f, err)
				}
			}
			if got := savedSteps(t, filepath.Join(dir, c.out)); got != c.steps {
				t.Errorf("%s/config.json records step %d, want %d", c.out, got, c.steps)
			}
		}
	})
}
