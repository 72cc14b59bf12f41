//go:build unix

package safetensors

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// callWithin runs call and fails the test if it has not returned within a
// few seconds (opening a named pipe for reading blocks until a writer
// comes); it then unblocks the call by opening fifo for writing.
func callWithin(t *testing.T, fifo string, call func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- call() }()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
		<-done
		t.Fatalf("reading %s blocked", fifo)
		return nil
	}
}

// wantErr checks that err is one line starting with path and saying each
// of frags.
func wantErr(t *testing.T, err error, path string, frags ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want one with %q", path, frags)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, path+": ") || strings.Contains(msg, "\n") {
		t.Errorf("error %q does not start with %s on one line", msg, path)
	}
	for _, f := range frags {
		if !strings.Contains(msg, f) {
			t.Errorf("error %q does not say %q", msg, f)
		}
	}
}

func TestLoadRefusesNonRegularFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe.safetensors")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("cannot make a named pipe: %v", err)
	}
	err := callWithin(t, fifo, func() error { _, err := Load(fifo); return err })
	wantErr(t, err, fifo, "not a regular file", "named pipe")

	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skipf("no /dev/zero: %v", err)
	}
	zero := filepath.Join(dir, "zero.safetensors")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	_, err = Load(zero)
	wantErr(t, err, zero, "not a regular file", "character device")

	_, err = Load(dir)
	wantErr(t, err, dir, "not a regular file", "directory")

	// A link to a good file is followed.
	good := filepath.Join(dir, "good.safetensors")
	if err := Save(good, sample(), nil); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.safetensors")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	if f, err := Load(link); err != nil || len(f.Tensors) != len(sample()) {
		t.Errorf("file behind a symbolic link: %v", err)
	}
}

func TestLoadRefusesLargeFiles(t *testing.T) {
	// A sparse file of MaxFileSize+1 bytes, refused before it is read.
	big := filepath.Join(t.TempDir(), "big.safetensors")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxFileSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	start := time.Now()
	_, err = Load(big)
	wantErr(t, err, big, strconv.Itoa(MaxFileSize+1)+" bytes", strconv.Itoa(MaxFileSize)+"-byte limit")
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusing a large file took %v", d)
	}
}
