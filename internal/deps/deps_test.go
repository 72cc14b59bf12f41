package deps

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mkdirs(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDirFromEnv(t *testing.T) {
	d := t.TempDir()
	t.Setenv(EnvVar, d)
	if got, err := Dir(); err != nil || got != d {
		t.Errorf("Dir() = %q, %v; want %q", got, err, d)
	}
	t.Setenv(EnvVar, filepath.Join(d, "nope"))
	if _, err := Dir(); err == nil || !strings.Contains(err.Error(), "make setup") {
		t.Errorf("missing $%s: %v", EnvVar, err)
	}
}

// A .deps beside a go.mod wins over a nearer one without: the nearer one is
// some other project's, and the repository root also holds the weights.
func TestDirPrefersRepository(t *testing.T) {
	t.Setenv(EnvVar, "")
	root := t.TempDir()
	repo := filepath.Join(root, "repo")
	sub := filepath.Join(repo, "cmd", "x")
	mkdirs(t, filepath.Join(repo, ".deps"), filepath.Join(repo, "cmd", ".deps"), sub)
	if err := os.WriteFile(filepath.Join(repo, "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(sub)
	if got, err := Dir(); err != nil || got != filepath.Join(repo, ".deps") {
		t.Errorf("Dir() = %q, %v; want %s", got, err, filepath.Join(repo, ".deps"))
	}
	// Without a go.mod anywhere, the nearest .deps.
	os.Remove(filepath.Join(repo, "go.mod"))
	if got, err := Dir(); err != nil || got != filepath.Join(repo, "cmd", ".deps") {
		t.Errorf("Dir() = %q, %v; want %s", got, err, filepath.Join(repo, "cmd", ".deps"))
	}
}

func TestStatus(t *testing.T) {
	d := t.TempDir()
	t.Setenv(EnvVar, d)
	items := Status()
	if len(items) != 3 {
		t.Fatalf("Status() = %+v", items)
	}
	for _, it := range items {
		if it.Present || !strings.Contains(it.Detail, "make setup") {
			t.Errorf("empty .deps: %+v", it)
		}
	}
	if _, err := ONNXRuntimeLibrary(); err == nil || !strings.Contains(err.Error(), "make setup") {
		t.Errorf("ONNXRuntimeLibrary() without the library: %v", err)
	}
	mkdirs(t, filepath.Join(d, "onnxruntime"), filepath.Join(d, "mnist"))
	os.WriteFile(filepath.Join(d, onnxRuntimeLib), []byte("lib"), 0o644)
	for _, f := range idxFiles[:3] {
		os.WriteFile(filepath.Join(d, "mnist", f), []byte("x"), 0o644)
	}
	items = Status()
	if !items[0].Present || items[0].Path != filepath.Join(d, onnxRuntimeLib) {
		t.Errorf("library present: %+v", items[0])
	}
	if items[1].Present || !strings.Contains(items[1].Detail, idxFiles[3]) {
		t.Errorf("mnist with a file missing: %+v", items[1])
	}
	if p, err := ONNXRuntimeLibrary(); err != nil || p != filepath.Join(d, onnxRuntimeLib) {
		t.Errorf("ONNXRuntimeLibrary() = %q, %v", p, err)
	}
}
