package atomicfile_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/latentlm/latentlm/internal/atomicfile"
)

// names lists a folder's entries, sorted.
func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	slices.Sort(out)
	return out
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func fillTwo(dir string) error {
	if err := os.WriteFile(filepath.Join(dir, "a.png"), []byte("A"), 0o644); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "sub", "b.png"), []byte("B"), 0o644)
}

func TestWriteDirCreates(t *testing.T) {
	parent := t.TempDir()
	dst := filepath.Join(parent, "out")
	var filled string
	err := atomicfile.WriteDir(dst, func(dir string) error {
		filled = dir
		if filepath.Dir(dir) != parent {
			t.Errorf("fill got %s, not a sibling of %s", dir, dst)
		}
		if dir == dst {
			t.Error("fill writes into dst itself, not a temporary folder")
		}
		if _, err := os.Stat(dst); !os.IsNotExist(err) {
			t.Errorf("dst visible while fill runs: %v", err)
		}
		return fillTwo(dir)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := readString(t, filepath.Join(dst, "a.png")); got != "A" {
		t.Errorf("a.png = %q", got)
	}
	if got := readString(t, filepath.Join(dst, "sub", "b.png")); got != "B" {
		t.Errorf("sub/b.png = %q", got)
	}
	if got := names(t, parent); !slices.Equal(got, []string{"out"}) {
		t.Errorf("parent holds %v, want [out]", got)
	}
	if _, err := os.Stat(filled); !os.IsNotExist(err) {
		t.Errorf("temporary folder %s still there: %v", filled, err)
	}
	st, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o755 {
		t.Errorf("dst mode %v, want 0755", perm)
	}
}

func TestWriteDirFillErrorLeavesNothing(t *testing.T) {
	parent := t.TempDir()
	dst := filepath.Join(parent, "out")
	boom := errors.New("boom")
	err := atomicfile.WriteDir(dst, func(dir string) error {
		if err := fillTwo(dir); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("WriteDir = %v, want the fill error", err)
	}
	if got := names(t, parent); len(got) != 0 {
		t.Errorf("after a failed fill the parent holds %v, want nothing", got)
	}

	// The same with an empty dst that existed before: it stays, empty.
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.WriteDir(dst, func(dir string) error { _ = fillTwo(dir); return boom }); !errors.Is(err, boom) {
		t.Fatalf("WriteDir = %v, want the fill error", err)
	}
	if got := names(t, parent); !slices.Equal(got, []string{"out"}) {
		t.Errorf("after a failed fill the parent holds %v, want [out]", got)
	}
	if got := names(t, dst); len(got) != 0 {
		t.Errorf("after a failed fill the empty dst holds %v", got)
	}
}

func TestWriteDirRefusesNonEmpty(t *testing.T) {
	parent := t.TempDir()
	dst := filepath.Join(parent, "out")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "mine.txt"), []byte("user data"), 0o644); err != nil {
		t.Fatal(err)
	}
	called := false
	err := atomicfile.WriteDir(dst, func(dir string) error { called = true; return fillTwo(dir) })
	if err == nil {
		t.Fatal("WriteDir over a non-empty folder succeeded")
	}
	if called {
		t.Error("fill ran although dst is not empty")
	}
	if got := names(t, dst); !slices.Equal(got, []string{"mine.txt"}) {
		t.Errorf("dst holds %v, want [mine.txt]", got)
	}
	if got := readString(t, filepath.Join(dst, "mine.txt")); got != "user data" {
		t.Errorf("mine.txt = %q", got)
	}
	if got := names(t, parent); !slices.Equal(got, []string{"out"}) {
		t.Errorf("parent holds %v, want [out]", got)
	}

	// A regular file at dst is refused too, and kept.
	file := filepath.Join(parent, "file")
	if err := os.WriteFile(file, []byte("F"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.WriteDir(file, fillTwo); err == nil {
		t.Error("WriteDir over a regular file succeeded")
	}
	if got := readString(t, file); got != "F" {
		t.Errorf("file = %q", got)
	}
}

func TestWriteDirReplacesEmpty(t *testing.T) {
	parent := t.TempDir()
	dst := filepath.Join(parent, "out")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.WriteDir(dst, fillTwo); err != nil {
		t.Fatal(err)
	}
	if got := names(t, dst); !slices.Equal(got, []string{"a.png", "sub"}) {
		t.Errorf("dst holds %v, want [a.png sub]", got)
	}
	if got := names(t, parent); !slices.Equal(got, []string{"out"}) {
		t.Errorf("parent holds %v, want [out]", got)
	}
}

func TestWriteFillErrorKeepsOld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.json")
	if err := atomicfile.WriteBytes(path, []byte("old")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := atomicfile.Write(path, func(w io.Writer) error {
		_, _ = w.Write([]byte("half of the new"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Write = %v, want the fill error", err)
	}
	if got := readString(t, path); got != "old" {
		t.Errorf("after a failed write: %q, want \"old\"", got)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"f.json"}) {
		t.Errorf("folder holds %v, want [f.json]", got)
	}
	if err := atomicfile.WriteBytes(path, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, path); got != "new" {
		t.Errorf("after a write: %q, want \"new\"", got)
	}
}

func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	stale := []string{".model.safetensors.123.tmp", ".config.json.4567.tmp"}
	staleDirs := []string{".samples.89.tmp"}
	keep := []string{"model.safetensors", "config.json", "notes.tmp", "x.123.tmp", ".lock", ".hidden", ".a.123.tmp.bak", ".staging"}
	for _, n := range append(slices.Clone(stale), keep...) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range staleDirs {
		if err := os.MkdirAll(filepath.Join(dir, n, "inner"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n, "inner", "f"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Not recursive: a stale-looking name in a subfolder is not this folder's.
	if err := os.WriteFile(filepath.Join(dir, "sub", ".x.1.tmp"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.RemoveStale(dir); err != nil {
		t.Fatal(err)
	}
	want := append(slices.Clone(keep), "sub")
	slices.Sort(want)
	if got := names(t, dir); !slices.Equal(got, want) {
		t.Errorf("after RemoveStale: %v, want %v", got, want)
	}
	for _, n := range keep {
		if got := readString(t, filepath.Join(dir, n)); got != n {
			t.Errorf("%s changed: %q", n, got)
		}
	}
	if got := names(t, filepath.Join(dir, "sub")); !slices.Equal(got, []string{".x.1.tmp"}) {
		t.Errorf("sub after RemoveStale: %v", got)
	}
	if err := atomicfile.RemoveStale(filepath.Join(dir, "missing")); err != nil {
		t.Errorf("RemoveStale on a missing folder: %v", err)
	}
}
