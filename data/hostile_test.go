//go:build unix

package data

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/latentlm/latentlm/internal/hostiletest"
)

func TestRefusesNonRegularFiles(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skipf("no /dev/zero: %v", err)
	}
	for _, file := range []string{imagesFile, labelsFile} {
		t.Run(file, func(t *testing.T) {
			dir := t.TempDir()
			writeTiny(t, dir)
			path := filepath.Join(dir, file)
			os.Remove(path)
			if err := syscall.Mkfifo(path, 0o644); err != nil {
				t.Skipf("cannot make a named pipe: %v", err)
			}
			err := hostiletest.CallWithin(t, path, func() error { _, err := LoadDir(dir, "mnist", "test"); return err })
			hostiletest.WantErr(t, err, path, false, "not a regular file", "named pipe")

			os.Remove(path)
			if err := os.Symlink("/dev/zero", path); err != nil {
				t.Fatal(err)
			}
			_, err = LoadDir(dir, "mnist", "test")
			hostiletest.WantErr(t, err, path, false, "not a regular file", "character device")

			os.Remove(path)
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
			_, err = LoadDir(dir, "mnist", "test")
			hostiletest.WantErr(t, err, path, false, "not a regular file", "directory")
		})
	}
	// A link to a good file is followed.
	dir, other := t.TempDir(), t.TempDir()
	writeTiny(t, other)
	for _, file := range []string{imagesFile, labelsFile} {
		if err := os.Symlink(filepath.Join(other, file), filepath.Join(dir, file)); err != nil {
			t.Fatal(err)
		}
	}
	if d, err := LoadDir(dir, "mnist", "test"); err != nil || d.N != 2 {
		t.Errorf("files behind symbolic links: %v", err)
	}
}

// padded is gz(b) followed by n empty deflate blocks (the markers of
// gzip.Writer.Flush): a valid file of b, but far larger than b needs.
func padded(t *testing.T, b []byte, n int) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	for range n {
		if err := zw.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	zw.Close()
	return buf.Bytes()
}

func TestFileSizeLimits(t *testing.T) {
	// Empty blocks inflate to nothing: a file can be made any length
	// without changing its data, and the limit follows the data.
	ok, long := padded(t, tinyImages, 100), padded(t, tinyImages, 20000)
	limit := maxFileSize(int64(len(tinyImages)))
	if int64(len(ok)) > limit || int64(len(long)) <= limit {
		t.Fatalf("test files of %d and %d bytes do not straddle the %d-byte limit", len(ok), len(long), limit)
	}
	cases := []struct {
		name    string
		content []byte
		want    []string
	}{
		{"padded within the limit", ok, nil},
		{"padded past the limit", long, []string{strconv.Itoa(len(long)) + " bytes", strconv.FormatInt(limit, 10) + "-byte limit", "24 bytes of data"}},
		// The header asks for 10000 28×28 images from a file of a few
		// dozen bytes: refused before a buffer is sized for them.
		{"more data than the file can hold", gz([]byte{0, 0, 8, 3, 0, 0, 0x27, 0x10, 0, 0, 0, 28, 0, 0, 0, 28}), []string{"announces 7840016 bytes", "can hold"}},
		{"long trailing data", gz(append(append([]byte(nil), tinyImages...), make([]byte, 2*maxTrailing)...)), []string{"1048576 bytes or more after the 8"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTiny(t, dir)
			path := filepath.Join(dir, imagesFile)
			if err := os.WriteFile(path, c.content, 0o644); err != nil {
				t.Fatal(err)
			}
			d, err := LoadDir(dir, "mnist", "test")
			if c.want == nil {
				if err != nil || d.N != 2 {
					t.Fatalf("valid file: %v", err)
				}
				return
			}
			hostiletest.WantErr(t, err, path, false, c.want...)
		})
	}

	// Before reading anything, a file larger than any header can justify
	// (a sparse one here) is refused.
	dir := t.TempDir()
	writeTiny(t, dir)
	path := filepath.Join(dir, imagesFile)
	if err := os.Truncate(path, maxFileSize(16+maxElements)+1); err != nil {
		t.Fatal(err)
	}
	_, err := LoadDir(dir, "mnist", "test")
	hostiletest.WantErr(t, err, path, false, strconv.FormatInt(maxFileSize(16+maxElements)+1, 10)+" bytes", "-byte limit")

	// The read itself stops at the size the file had when checked.
	b := gz(tinyImages)
	if _, _, err := parseIdx(bytes.NewReader(b), int64(len(b)-1), 0x803, 3); err == nil || !strings.Contains(err.Error(), "grew past") {
		t.Errorf("a file longer than its size: %v", err)
	}
}
