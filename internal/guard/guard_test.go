package guard_test

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/latentlm/latentlm/internal/guard"
)

func TestParseBytes(t *testing.T) {
	for _, c := range []struct {
		in   string
		want float64
	}{
		{"12GiB", 12 << 30},
		{"12gib", 12 << 30},
		{" 12 GiB ", 12 << 30},
		{"500MB", 5e8},
		{"2G", 2 << 30},
		{"3k", 3 << 10},
		{"4KiB", 4 << 10},
		{"1TB", 1e12},
		{"100b", 100},
		{"1048576", 1048576},
		{"0.5GiB", 1 << 29},
	} {
		got, err := guard.ParseBytes(c.in)
		if err != nil {
			t.Errorf("ParseBytes(%q): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("ParseBytes(%q) = %v, want %v", c.in, got, c.want)
		}
	}
	for _, in := range []string{"", " ", "-1", "0", "-2GiB", "NaN", "nan", "Inf", "abc", "1e30", "GiB", "12XB", "12 G B"} {
		if got, err := guard.ParseBytes(in); err == nil {
			t.Errorf("ParseBytes(%q) = %v, want an error", in, got)
		}
	}
}

func TestMemoryLimitPrecedence(t *testing.T) {
	// The default: a fraction of the machine's memory.
	t.Setenv(guard.MemoryEnv, "")
	phys := guard.PhysicalMemory()
	if phys <= 0 {
		t.Fatalf("PhysicalMemory() = %v on Linux, want > 0", phys)
	}
	got, err := guard.MemoryLimit("")
	if err != nil {
		t.Fatal(err)
	}
	if want := guard.DefaultMemoryFraction * phys; got != want {
		t.Errorf("default limit %v, want %v (%v of %v)", got, want, guard.DefaultMemoryFraction, phys)
	}

	// The environment overrides the default.
	t.Setenv(guard.MemoryEnv, "3GiB")
	if got, err := guard.MemoryLimit(""); err != nil || got != 3<<30 {
		t.Errorf("with $%s=3GiB: %v, %v; want %v", guard.MemoryEnv, got, err, 3<<30)
	}
	// The flag overrides the environment.
	if got, err := guard.MemoryLimit("500MB"); err != nil || got != 5e8 {
		t.Errorf("flag 500MB with $%s=3GiB: %v, %v; want 5e8", guard.MemoryEnv, got, err)
	}
	// A bad flag is an error even when the environment is fine.
	if got, err := guard.MemoryLimit("lots"); err == nil {
		t.Errorf("flag \"lots\": %v, want an error", got)
	}
	// A bad environment is an error naming the variable, unless a flag wins.
	t.Setenv(guard.MemoryEnv, "abc")
	if got, err := guard.MemoryLimit(""); err == nil {
		t.Errorf("$%s=abc: %v, want an error", guard.MemoryEnv, got)
	} else if !strings.Contains(err.Error(), guard.MemoryEnv) {
		t.Errorf("$%s=abc: error %q does not name the variable", guard.MemoryEnv, err)
	}
	if got, err := guard.MemoryLimit("1GiB"); err != nil || got != 1<<30 {
		t.Errorf("flag 1GiB with $%s=abc: %v, %v; want %v", guard.MemoryEnv, got, err, 1<<30)
	}
}

func TestCheckMemory(t *testing.T) {
	if err := guard.CheckMemory("training", 1<<30, 2<<30); err != nil {
		t.Errorf("1 GiB under a 2 GiB limit: %v", err)
	}
	if err := guard.CheckMemory("training", 2<<30, 2<<30); err != nil {
		t.Errorf("2 GiB at a 2 GiB limit: %v", err)
	}
	err := guard.CheckMemory("training", 3<<30, 2<<30)
	if err == nil {
		t.Fatal("3 GiB over a 2 GiB limit: accepted")
	}
	for _, want := range []string{"training", "3 GiB", "2 GiB", "--max-memory", guard.MemoryEnv} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not contain %q", err, want)
		}
	}
	if err := guard.CheckMemory("sampling", math.NaN(), 2<<30); err == nil {
		t.Error("a NaN estimate was accepted")
	}
	if err := guard.CheckMemory("sampling", math.Inf(1), 2<<30); err == nil {
		t.Error("an infinite estimate was accepted")
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestCheckOutputSameFile(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.bin")
	writeFile(t, in, "input")
	symlink := filepath.Join(dir, "sym.bin")
	if err := os.Symlink(in, symlink); err != nil {
		t.Fatal(err)
	}
	hard := filepath.Join(dir, "hard.bin")
	if err := os.Link(in, hard); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	for _, c := range []struct{ name, out, in string }{
		{"identical", in, in},
		{"relative out, absolute in", "in.bin", in},
		{"absolute out, relative in", in, "in.bin"},
		{"dotted spelling", "./sub/../in.bin", in},
		{"symlink out", symlink, in},
		{"symlink in", in, "sym.bin"},
		{"hard link", hard, in},
	} {
		mkdir(t, filepath.Join(dir, "sub"))
		err := guard.CheckOutput(c.out, "", filepath.Join(dir, "missing-input"), c.in)
		if err == nil {
			t.Errorf("%s: output %s over input %s was accepted", c.name, c.out, c.in)
		} else if !strings.Contains(err.Error(), "input") {
			t.Errorf("%s: message %q does not mention the input", c.name, err)
		}
	}
	// The input is untouched by the checks.
	if b, err := os.ReadFile(in); err != nil || string(b) != "input" {
		t.Errorf("input after the checks: %q, %v", b, err)
	}
}

func TestCheckOutputInsideInputFolder(t *testing.T) {
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "ckpt")
	mkdir(t, filepath.Join(ckpt, "sub"))
	link := filepath.Join(dir, "link")
	if err := os.Symlink(ckpt, link); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	for _, c := range []struct{ name, out, in string }{
		{"new file in the folder", filepath.Join(ckpt, "model.onnx"), ckpt},
		{"deeper", filepath.Join(ckpt, "sub", "model.onnx"), ckpt},
		{"relative", "ckpt/model.onnx", ckpt},
		{"relative input", filepath.Join(ckpt, "model.onnx"), "ckpt"},
		{"through a symlinked folder", filepath.Join(link, "model.onnx"), ckpt},
		{"deeper through a symlinked folder", filepath.Join(link, "sub", "x"), ckpt},
		{"input spelled through the symlink", filepath.Join(ckpt, "model.onnx"), link},
		{"the folder itself", ckpt, ckpt},
		{"the folder through the symlink", link, ckpt},
	} {
		if err := guard.CheckOutput(c.out, c.in); err == nil {
			t.Errorf("%s: output %s inside input %s was accepted", c.name, c.out, c.in)
		}
		if err := guard.CheckOutputDir(c.out, c.in); err == nil {
			t.Errorf("%s: CheckOutputDir: output %s inside input %s was accepted", c.name, c.out, c.in)
		}
	}
}

func TestCheckOutputAccepts(t *testing.T) {
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "ckpt")
	mkdir(t, ckpt)
	// A sibling whose name starts with the input's is not inside it.
	mkdir(t, filepath.Join(dir, "ckpt2"))
	in := filepath.Join(dir, "in.bin")
	writeFile(t, in, "input")
	other := filepath.Join(dir, "other.bin")
	writeFile(t, other, "old output")
	for _, out := range []string{
		filepath.Join(dir, "out.png"),
		filepath.Join(dir, "ckpt2", "out.png"),
		other, // an existing unrelated file may be replaced
	} {
		if err := guard.CheckOutput(out, ckpt, in, ""); err != nil {
			t.Errorf("unrelated output %s refused: %v", out, err)
		}
	}
	if err := guard.CheckOutput(filepath.Join(dir, "out.png")); err != nil {
		t.Errorf("output with no inputs refused: %v", err)
	}
}

func TestCheckOutputFormat(t *testing.T) {
	dir := t.TempDir()
	for _, out := range []string{"x.png", "X.PNG", "a.b.png"} {
		if err := guard.CheckOutputFormat(filepath.Join(dir, out), ".png"); err != nil {
			t.Errorf("%s refused as a PNG name: %v", out, err)
		}
	}
	for _, out := range []string{"x.jpg", "x", "x.png.wav", "png"} {
		err := guard.CheckOutputFormat(filepath.Join(dir, out), ".png")
		if err == nil || !strings.Contains(err.Error(), out) || !strings.Contains(err.Error(), "ending in .png") {
			t.Errorf("%s as a PNG name: got %v, want a refusal naming it and .png", out, err)
		}
	}
	// The other checks still apply.
	if err := guard.CheckOutputFormat(filepath.Join(dir, "missing", "x.png"), ".png"); err == nil {
		t.Error("a PNG in a missing folder accepted")
	}
}

func TestCheckOutputFolder(t *testing.T) {
	dir := t.TempDir()
	if err := guard.CheckOutput(""); err == nil {
		t.Error("empty output path accepted")
	}
	missing := filepath.Join(dir, "no", "such", "folder", "out.png")
	if err := guard.CheckOutput(missing); err == nil {
		t.Error("output in a missing folder accepted")
	} else if !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing folder: message %q", err)
	}
	file := filepath.Join(dir, "file")
	writeFile(t, file, "x")
	if err := guard.CheckOutput(filepath.Join(file, "out.png")); err == nil {
		t.Error("output below a regular file accepted")
	}

	t.Run("not writable", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root can write to any folder")
		}
		ro := filepath.Join(dir, "ro")
		mkdir(t, ro)
		if err := os.Chmod(ro, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(ro, 0o755) })
		if err := guard.CheckOutput(filepath.Join(ro, "out.png")); err == nil {
			t.Error("output in a read-only folder accepted")
		} else if !strings.Contains(err.Error(), "not writable") {
			t.Errorf("read-only folder: message %q", err)
		}
	})
}

func TestCheckOutputDir(t *testing.T) {
	dir := t.TempDir()
	full := filepath.Join(dir, "full")
	mkdir(t, full)
	writeFile(t, filepath.Join(full, "keep.png"), "user data")
	if err := guard.CheckOutputDir(full); err == nil {
		t.Error("non-empty output folder accepted")
	}
	hidden := filepath.Join(dir, "hidden")
	mkdir(t, hidden)
	writeFile(t, filepath.Join(hidden, ".x"), "")
	if err := guard.CheckOutputDir(hidden); err == nil {
		t.Error("output folder holding a hidden file accepted")
	}
	empty := filepath.Join(dir, "empty")
	mkdir(t, empty)
	if err := guard.CheckOutputDir(empty); err != nil {
		t.Errorf("empty output folder refused: %v", err)
	}
	if err := guard.CheckOutputDir(filepath.Join(dir, "new")); err != nil {
		t.Errorf("missing output folder refused: %v", err)
	}
	if err := guard.CheckOutputDir(filepath.Join(dir, "a", "b")); err == nil {
		t.Error("output folder whose parent is missing accepted")
	}
	if b, err := os.ReadFile(filepath.Join(full, "keep.png")); err != nil || string(b) != "user data" {
		t.Errorf("existing file after the checks: %q, %v", b, err)
	}
}

// readFileWithin runs guard.ReadFile in a goroutine so that a read that blocks
// fails the test instead of hanging it.
func readFileWithin(t *testing.T, path string, limit int64, d time.Duration) ([]byte, error) {
	t.Helper()
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := guard.ReadFile(path, limit)
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		return r.b, r.err
	case <-time.After(d):
		t.Fatalf("ReadFile(%s) still running after %v", path, d)
		return nil, nil
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()

	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	// Unblock a reader that opened the FIFO anyway, so that a failing test
	// does not leak a goroutine stuck in open(2) forever.
	t.Cleanup(func() {
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	if _, err := readFileWithin(t, fifo, 1<<20, time.Second); err == nil {
		t.Error("FIFO accepted")
	} else if !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("FIFO: message %q", err)
	}

	zero := filepath.Join(dir, "zero")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	if _, err := readFileWithin(t, zero, 1<<20, time.Second); err == nil {
		t.Error("symlink to /dev/zero accepted")
	}
	if _, err := readFileWithin(t, dir, 1<<20, time.Second); err == nil {
		t.Error("folder accepted")
	}
	if _, err := readFileWithin(t, filepath.Join(dir, "missing"), 1<<20, time.Second); err == nil {
		t.Error("missing file accepted")
	}

	big := filepath.Join(dir, "big")
	writeFile(t, big, strings.Repeat("x", 101))
	if _, err := readFileWithin(t, big, 100, time.Second); err == nil {
		t.Error("101-byte file under a 100-byte limit accepted")
	}

	small := filepath.Join(dir, "small")
	content := "{\"a\": 1}\n\x00\xff tail"
	writeFile(t, small, content)
	b, err := readFileWithin(t, small, int64(len(content)), time.Second)
	if err != nil {
		t.Fatalf("file exactly at the limit: %v", err)
	}
	if string(b) != content {
		t.Errorf("read %q, want %q", b, content)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(small, link); err != nil {
		t.Fatal(err)
	}
	if b, err := readFileWithin(t, link, 1<<20, time.Second); err != nil || string(b) != content {
		t.Errorf("symlink to a regular file: %q, %v", b, err)
	}
	empty := filepath.Join(dir, "empty")
	writeFile(t, empty, "")
	if b, err := readFileWithin(t, empty, 0, time.Second); err != nil || len(b) != 0 {
		t.Errorf("empty file: %q, %v", b, err)
	}
}

// lockWithin runs guard.LockDir in a goroutine so that a lock that blocks
// instead of failing fails the test instead of hanging it.
func lockWithin(t *testing.T, dir string) (*guard.Lock, error) {
	t.Helper()
	type result struct {
		l   *guard.Lock
		err error
	}
	done := make(chan result, 1)
	go func() {
		l, err := guard.LockDir(dir)
		done <- result{l, err}
	}()
	select {
	case r := <-done:
		return r.l, r.err
	case <-time.After(5 * time.Second):
		t.Fatalf("LockDir(%s) still waiting after 5 s: it must fail at once when the folder is in use", dir)
		return nil, nil
	}
}

func TestLockDirExclusive(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	l1, err := guard.LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Fatalf("LockDir did not create %s: %v", dir, err)
	}
	l2, err := lockWithin(t, dir)
	if err == nil {
		l2.Unlock(func() bool { return true })
		t.Fatal("second LockDir on a held folder succeeded")
	}
	if !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), dir) {
		t.Errorf("second LockDir: message %q does not say %s is in use", err, dir)
	}
	l1.Unlock(func() bool { return true })
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("Unlock(keep) removed the folder: %v", err)
	}
	l3, err := guard.LockDir(dir)
	if err != nil {
		t.Fatalf("LockDir after Unlock: %v", err)
	}
	l3.Unlock(func() bool { return true })
	// Unlock twice and on nil is harmless.
	l3.Unlock(func() bool { return false })
	var nilLock *guard.Lock
	nilLock.Unlock(func() bool { return false })
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("a second Unlock removed the folder: %v", err)
	}
}

func TestUnlockRemovesOnlyCreatedFolder(t *testing.T) {
	base := t.TempDir()

	created := filepath.Join(base, "created")
	l, err := guard.LockDir(created)
	if err != nil {
		t.Fatal(err)
	}
	l.Unlock(func() bool { return false })
	if _, err := os.Stat(created); !os.IsNotExist(err) {
		t.Errorf("Unlock(keep=false) left the folder LockDir created: %v", err)
	}

	existing := filepath.Join(base, "existing")
	mkdir(t, existing)
	writeFile(t, filepath.Join(existing, "notes.txt"), "user data")
	l, err = guard.LockDir(existing)
	if err != nil {
		t.Fatal(err)
	}
	l.Unlock(func() bool { return false })
	if b, err := os.ReadFile(filepath.Join(existing, "notes.txt")); err != nil || string(b) != "user data" {
		t.Errorf("Unlock(keep=false) on a folder that existed before: notes.txt %q, %v", b, err)
	}
	// The lock is released: it can be taken again.
	l, err = guard.LockDir(existing)
	if err != nil {
		t.Fatalf("LockDir after Unlock: %v", err)
	}
	l.Unlock(func() bool { return true })
}

const lockHolderEnv = "LATENTLM_TEST_LOCK_HOLDER_DIR"

// TestHelperLockHolder is not a test: TestLockReleasedWhenHolderDies runs the
// test binary again with it, to hold a lock in another process.
func TestHelperLockHolder(t *testing.T) {
	dir := os.Getenv(lockHolderEnv)
	if dir == "" {
		t.Skip("helper process for TestLockReleasedWhenHolderDies")
	}
	if _, err := guard.LockDir(dir); err != nil {
		os.Stdout.WriteString("error: " + err.Error() + "\n")
		os.Exit(2)
	}
	os.Stdout.WriteString("locked\n")
	time.Sleep(time.Hour) // until killed
	os.Exit(3)
}

func TestLockReleasedWhenHolderDies(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperLockHolder$", "-test.count=1")
	cmd.Env = append(os.Environ(), lockHolderEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if l := sc.Text(); l == "locked" || strings.HasPrefix(l, "error:") {
				lines <- l
				return
			}
		}
		lines <- fmt.Sprintf("helper exited without taking the lock (%v)", sc.Err())
	}()
	select {
	case l := <-lines:
		if l != "locked" {
			t.Fatalf("helper: %s", l)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("helper did not take the lock within 30 s")
	}

	// While the other process lives, the folder is in use.
	if l, err := lockWithin(t, dir); err == nil {
		l.Unlock(func() bool { return true })
		t.Fatal("LockDir succeeded while another process holds the lock")
	} else if !strings.Contains(err.Error(), "in use") {
		t.Errorf("LockDir while held elsewhere: message %q", err)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killed = true

	l, err := lockWithin(t, dir)
	if err != nil {
		t.Fatalf("LockDir after the holder was killed: %v", err)
	}
	l.Unlock(func() bool { return true })
}
