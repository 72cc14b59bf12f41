//go:build unix

package safetensors

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/latentlm/latentlm/internal/hostiletest"
)

func TestLoadRefusesNonRegularFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe.safetensors")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("cannot make a named pipe: %v", err)
	}
	err := hostiletest.CallWithin(t, fifo, func() error { _, err := Load(fifo); return err })
	hostiletest.WantErr(t, err, fifo, true, "not a regular file", "named pipe")

	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skipf("no /dev/zero: %v", err)
	}
	zero := filepath.Join(dir, "zero.safetensors")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	_, err = Load(zero)
	hostiletest.WantErr(t, err, zero, true, "not a regular file", "character device")

	_, err = Load(dir)
	hostiletest.WantErr(t, err, dir, true, "not a regular file", "directory")

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
	hostiletest.WantErr(t, err, big, true, strconv.Itoa(MaxFileSize+1)+" bytes", strconv.Itoa(MaxFileSize)+"-byte limit")
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusing a large file took %v", d)
	}
}
