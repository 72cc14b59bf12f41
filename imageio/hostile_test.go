//go:build unix

package imageio

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/latentlm/latentlm/internal/hostiletest"
)

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Skipf("cannot make a named pipe: %v", err)
	}
}

func symlinkDevZero(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skipf("no /dev/zero: %v", err)
	}
	if err := os.Symlink("/dev/zero", path); err != nil {
		t.Fatal(err)
	}
}

func TestReadGrayRefusesNonRegularFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe.png")
	mkfifo(t, fifo)
	err := hostiletest.CallWithin(t, fifo, func() error { _, err := ReadGray(fifo, 28, 28); return err })
	hostiletest.WantErr(t, err, fifo, false, "not a regular file", "named pipe")

	zero := filepath.Join(dir, "zero.png")
	symlinkDevZero(t, zero)
	_, err = ReadGray(zero, 28, 28)
	hostiletest.WantErr(t, err, zero, false, "not a regular file", "character device")

	sub := filepath.Join(dir, "folder.png")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = ReadGray(sub, 28, 28)
	hostiletest.WantErr(t, err, sub, false, "not a regular file", "directory")
}

func TestReadGrayRefusesLargeFiles(t *testing.T) {
	dir := t.TempDir()
	// A sparse file: a PNG signature, then MaxPNGSize bytes of nothing.
	big := filepath.Join(dir, "big.png")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(pngSignature); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxPNGSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = ReadGray(big, 28, 28)
	hostiletest.WantErr(t, err, big, false, strconv.Itoa(MaxPNGSize+1), strconv.Itoa(MaxPNGSize)+"-byte limit")

	// A size the caller asks for is bounded too.
	if _, err := ReadGray(big, 1<<15, 1<<15); err == nil || !strings.Contains(err.Error(), "invalid image size") {
		t.Errorf("2^30 pixels: error %v", err)
	}
}

func TestReadDirRefusesNonRegularFiles(t *testing.T) {
	good := make([]float32, 28*28)
	newDir := func() string {
		d := t.TempDir()
		for _, n := range []string{"0.png", "9.png"} {
			if err := WriteGray(filepath.Join(d, n), good, 28, 28); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	d := newDir()
	fifo := filepath.Join(d, "5.png")
	mkfifo(t, fifo)
	err := hostiletest.CallWithin(t, fifo, func() error { _, _, err := ReadDir(d, 28, 28); return err })
	hostiletest.WantErr(t, err, fifo, false, "not a regular file")

	d = newDir()
	zero := filepath.Join(d, "5.png")
	symlinkDevZero(t, zero)
	_, _, err = ReadDir(d, 28, 28)
	hostiletest.WantErr(t, err, zero, false, "not a regular file")

	// The folder itself: a named pipe, or a link to a device.
	pipeDir := filepath.Join(t.TempDir(), "pipe")
	mkfifo(t, pipeDir)
	err = hostiletest.CallWithin(t, pipeDir, func() error { _, _, err := ReadDir(pipeDir, 28, 28); return err })
	hostiletest.WantErr(t, err, pipeDir, false, "not a directory", "named pipe")
	zeroDir := filepath.Join(t.TempDir(), "zero")
	symlinkDevZero(t, zeroDir)
	_, _, err = ReadDir(zeroDir, 28, 28)
	hostiletest.WantErr(t, err, zeroDir, false, "not a directory")

	// A link to a folder of images is followed.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(newDir(), link); err != nil {
		t.Fatal(err)
	}
	if imgs, _, err := ReadDir(link, 28, 28); err != nil || len(imgs) != 2 {
		t.Errorf("folder behind a symbolic link: %d images, %v", len(imgs), err)
	}
}
