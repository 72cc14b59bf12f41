//go:build unix

// Package hostiletest holds what the readers' hostile-input tests share: a
// watchdog for calls that could block on a named pipe, and the check that an
// error is one line naming the file.
package hostiletest

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// CallWithin runs call and fails the test if it has not returned within a
// few seconds (opening a named pipe for reading blocks until a writer
// comes); it then unblocks the call by opening fifo for writing.
func CallWithin(t *testing.T, fifo string, call func() error) error {
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

// WantErr checks that err is one line naming path (at its start, when
// prefix is set) and saying each of frags.
func WantErr(t *testing.T, err error, path string, prefix bool, frags ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want one with %q", path, frags)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, path) || (prefix && !strings.HasPrefix(msg, path+": ")) {
		t.Errorf("error %q does not name %s on one line (at its start: %v)", msg, path, prefix)
	}
	for _, f := range frags {
		if !strings.Contains(msg, f) {
			t.Errorf("error %q does not say %q", msg, f)
		}
	}
}
