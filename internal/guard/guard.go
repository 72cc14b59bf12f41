// Package guard holds the checks that keep a command from losing the
// user's data or the machine's memory: a bound on the memory a command may
// plan to use, a refusal to write an output over one of its own inputs,
// and an advisory lock on a training folder.
//
// Every check runs before the work starts, so a refused command has
// created nothing (docs/RELIABILITY.md lists the promises and their tests).
package guard

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/latentlm/latentlm/internal/boundedio"
	"golang.org/x/sys/unix"
)

// MemoryEnv overrides the default memory limit, like --max-memory.
const MemoryEnv = "LATENTLM_MAX_MEMORY"

// DefaultMemoryFraction is the share of physical memory a command may plan
// to use when neither --max-memory nor $LATENTLM_MAX_MEMORY says otherwise:
// enough for every shipped recipe (the largest, demo --train, peaks at
// 2.9 GB on a 24 GiB machine), and far from swapping the machine.
const DefaultMemoryFraction = 0.5

// PhysicalMemory is the machine's RAM in bytes (0 if unknown).
func PhysicalMemory() float64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0
	}
	return float64(si.Totalram) * float64(si.Unit)
}

// ParseBytes reads a size such as 12GiB, 500MB, 2G or 1048576.
func ParseBytes(s string) (float64, error) {
	t := strings.TrimSpace(strings.ToLower(s))
	mult := 1.0
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
		{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
		{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40}, {"b", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 || v != v || v > 1e18 {
		return 0, fmt.Errorf("memory size %q: want a positive size such as 12GiB or 800MB", s)
	}
	return v * mult, nil
}

// MemoryLimit is the limit named by flag (if not empty), else by
// $LATENTLM_MAX_MEMORY, else DefaultMemoryFraction of physical memory.
func MemoryLimit(flag string) (float64, error) {
	if flag != "" {
		return ParseBytes(flag)
	}
	if env := os.Getenv(MemoryEnv); env != "" {
		v, err := ParseBytes(env)
		if err != nil {
			return 0, fmt.Errorf("$%s: %w", MemoryEnv, err)
		}
		return v, nil
	}
	if p := PhysicalMemory(); p > 0 {
		return DefaultMemoryFraction * p, nil
	}
	return 8 << 30, nil
}

// Bytes formats a size for messages.
func Bytes(b float64) string {
	switch {
	case b >= 1<<40:
		return fmt.Sprintf("%.3g TiB", b/(1<<40))
	case b >= 1<<30:
		return fmt.Sprintf("%.3g GiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.3g MiB", b/(1<<20))
	}
	return fmt.Sprintf("%.3g KiB", b/(1<<10))
}

// CheckMemory refuses work whose estimated memory exceeds limit, naming
// both and the way to raise the limit.
func CheckMemory(what string, estimate, limit float64) error {
	if estimate > limit || estimate != estimate {
		return fmt.Errorf("%s needs about %s of memory, more than the limit of %s (raise it with --max-memory or $%s)",
			what, Bytes(estimate), Bytes(limit), MemoryEnv)
	}
	return nil
}

// CheckOutput refuses an output path that is, or lies inside, one of the
// command's inputs (files or checkpoint folders, compared by identity with
// os.SameFile, so links and other spellings are caught too), and one whose
// folder is missing or not writable. Call it before the work starts.
func CheckOutput(out string, inputs ...string) error {
	if st, err := os.Stat(out); err == nil && st.IsDir() {
		return fmt.Errorf("output %s is a folder: give a file name", out)
	}
	return checkOutput(out, inputs)
}

// CheckOutputFormat is CheckOutput for a file written in one format, named by
// its extension (".png", ".wav", ".safetensors"): a name with another
// extension, or none, is refused, since the file would not be what its name
// says (a WAV named .png, or a spectrogram written over the audio it was
// meant to sit beside). The extension is compared without regard to case.
func CheckOutputFormat(out, ext string, inputs ...string) error {
	if err := CheckOutput(out, inputs...); err != nil {
		return err
	}
	if !strings.EqualFold(filepath.Ext(out), ext) {
		return fmt.Errorf("output %s: want a name ending in %s, the format it is written in", out, ext)
	}
	return nil
}

func checkOutput(out string, inputs []string) error {
	if out == "" {
		return errors.New("empty output path")
	}
	// The folder as the kernel will resolve it: a link followed by ".."
	// leads elsewhere than the text suggests, so the parent is resolved
	// before it is cleaned.
	parent := "."
	if i := strings.LastIndex(out, string(filepath.Separator)); i >= 0 {
		parent = out[:i+1]
	}
	if real, err := filepath.EvalSymlinks(parent); err == nil {
		parent = real
	} else {
		parent = filepath.Clean(parent)
	}
	if st, err := os.Stat(parent); err != nil {
		return fmt.Errorf("output %s: folder %s does not exist", out, parent)
	} else if !st.IsDir() {
		return fmt.Errorf("output %s: %s is not a folder", out, parent)
	}
	if err := unix.Access(parent, unix.W_OK); err != nil {
		return fmt.Errorf("output %s: folder %s is not writable", out, parent)
	}
	// An existing output that is a link points somewhere too: that place
	// must not be inside an input either.
	folders := []string{parent}
	if target, err := filepath.EvalSymlinks(out); err == nil {
		folders = append(folders, filepath.Dir(target))
	}
	for _, in := range inputs {
		if in == "" {
			continue
		}
		inSt, err := os.Stat(in)
		if err != nil {
			continue
		}
		if outSt, err := os.Stat(out); err == nil && os.SameFile(inSt, outSt) {
			return fmt.Errorf("output %s is the input %s: choose another output", out, in)
		}
		for _, f := range folders {
			if inSt.IsDir() && within(f, inSt) {
				return fmt.Errorf("output %s lies inside the input folder %s: choose another output", out, in)
			}
		}
	}
	return nil
}

// within reports whether dir is the folder dirSt or lies below it.
func within(dir string, dirSt os.FileInfo) bool {
	d, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		if st, err := os.Stat(d); err == nil && os.SameFile(st, dirSt) {
			return true
		}
		up := filepath.Dir(d)
		if up == d {
			return false
		}
		d = up
	}
}

// LockFile is the advisory lock a training run holds in its folder.
const LockFile = ".lock"

// Lock is a held advisory lock on a training folder.
type Lock struct {
	f       *os.File
	dir     string
	created bool
}

// LockDir creates dir if needed and takes its advisory lock (flock, which
// the kernel drops when the holder dies, so a killed run never keeps it).
// A second run on the same folder gets an error naming the folder.
func LockDir(dir string) (*Lock, error) {
	created := false
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("creating %s: %w", dir, err)
		}
		created = true
	}
	f, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s is in use by another training run (it holds %s); wait for it or choose another --out", dir, filepath.Join(dir, LockFile))
		}
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	return &Lock{f: f, dir: dir, created: created}, nil
}

// Unlock releases the lock. If LockDir created the folder and keep reports
// that nothing worth keeping was written to it, the folder is removed, so
// that a run refused before its first save leaves nothing behind.
func (l *Lock) Unlock(keep func() bool) {
	if l == nil || l.f == nil {
		return
	}
	if l.created && !keep() {
		_ = os.RemoveAll(l.dir)
	}
	_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	_ = l.f.Close()
	l.f = nil
}

// CheckOutputDir is CheckOutput for an output folder, which must also be
// missing or empty: a multi-file output replaces nothing of the user's.
func CheckOutputDir(dir string, inputs ...string) error {
	if err := checkOutput(dir, inputs); err != nil {
		return err
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("output folder %s already exists and is not empty: choose another", dir)
	} else if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("output folder %s: %w", dir, err)
	}
	return nil
}

// ReadFile reads a whole input file of at most limit bytes through
// boundedio (regular files only, size checked before and while reading),
// with errors that name the path.
func ReadFile(path string, limit int64) ([]byte, error) {
	b, err := boundedio.ReadFile(path, limit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}
