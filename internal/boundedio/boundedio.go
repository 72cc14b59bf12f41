// Package boundedio reads input files that may be hostile: only regular
// files (after following links) are opened, since opening a named pipe
// blocks until a writer appears and a device such as /dev/zero never ends,
// and only up to a size limit that fits the file's format, checked before
// the file is opened and again while it is read (a file may grow, or
// misreport its size).
//
// Errors leave out the path, which every caller already names in its own
// wrapping ("imageio: reading x.png: not a regular file (a named pipe)");
// a missing file still matches errors.Is(err, fs.ErrNotExist).
package boundedio

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Stat checks that path is a regular file of at most limit bytes.
func Stat(path string, limit int64) (os.FileInfo, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, unwrapPath(err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", FileKind(st.Mode()))
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("file of %d bytes exceeds the %d-byte limit", st.Size(), limit)
	}
	return st, nil
}

// ReadFile reads the whole regular file at path, of at most limit bytes.
func ReadFile(path string, limit int64) ([]byte, error) {
	st, err := Stat(path, limit)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, unwrapPath(err)
	}
	defer f.Close()
	// One byte of room past the stat size lets the read see EOF without
	// growing the buffer; reading one byte past the limit shows a file
	// that grew.
	lr := &io.LimitedReader{R: f, N: limit + 1}
	b := make([]byte, 0, st.Size()+1)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := lr.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, unwrapPath(err)
		}
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("file grew past the %d-byte limit while being read", limit)
	}
	return b, nil
}

// Open opens the regular file at path, of at most limit bytes, for
// streaming; the reader it returns stops one byte past the stat size.
func Open(path string, limit int64) (*os.File, io.Reader, os.FileInfo, error) {
	st, err := Stat(path, limit)
	if err != nil {
		return nil, nil, nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, nil, unwrapPath(err)
	}
	return f, io.LimitReader(f, st.Size()+1), st, nil
}

// FileKind names what a file is, for error messages.
func FileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m.IsRegular():
		return "a regular file"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	}
	return "mode " + m.String()
}

// unwrapPath drops the path from a *PathError, which the caller names, but
// keeps the error matching errors.Is(err, fs.ErrNotExist).
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}
