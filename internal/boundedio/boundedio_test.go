package boundedio

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A regular file that reports a size of 0 but has content (as in /proc) is
// read no further than the limit.
func TestReadFileLimitsTheRead(t *testing.T) {
	const path = "/proc/self/status"
	if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() || st.Size() != 0 {
		t.Fatalf("%s is not an empty-looking regular file here", path)
	}
	if _, err := ReadFile(path, 10); err == nil || !strings.Contains(err.Error(), "grew past the 10-byte limit") {
		t.Errorf("error %v, want one about the limit", err)
	}
	b, err := ReadFile(path, 1<<20)
	if err != nil || !strings.Contains(string(b), "Name:") {
		t.Errorf("reading %s within the limit: %v, %q", path, err, b)
	}
}

// Pipes and devices are refused before they are opened (opening a pipe
// would block), oversized files by their size, and a missing file keeps
// matching fs.ErrNotExist; errors leave the path to the caller.
func TestRefusals(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "p.png")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 11), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, c := range []struct{ path, want string }{
			{fifo, "not a regular file (a named pipe)"},
			{"/dev/zero", "not a regular file (a character device)"},
			{dir, "not a regular file (a directory)"},
			{big, "file of 11 bytes exceeds the 10-byte limit"},
		} {
			_, err := ReadFile(c.path, 10)
			if err == nil || err.Error() != c.want {
				t.Errorf("ReadFile(%s): %v, want %q", c.path, err, c.want)
			}
		}
		_, err := ReadFile(filepath.Join(dir, "missing"), 10)
		if !errors.Is(err, fs.ErrNotExist) || strings.Contains(err.Error(), dir) {
			t.Errorf("missing file: %v, want ErrNotExist without the path", err)
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a refusal blocked")
	}
	if b, err := ReadFile(big, 11); err != nil || len(b) != 11 {
		t.Errorf("file at the limit: %d bytes, %v", len(b), err)
	}
}
