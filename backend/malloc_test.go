package backend

import (
	"runtime"
	"testing"
)

// TestOpenKeepsFreedMemoryReturned checks that opening the onnx backend
// fixes the C allocator's mmap threshold: a block freed above it no longer
// raises it, so the next large block is mapped (and unmapped when freed)
// instead of coming from a heap that keeps it (keepFreedMemoryReturned).
func TestOpenKeepsFreedMemoryReturned(t *testing.T) {
	if _, known := mappedAfterReuse(); !known {
		t.Skipf("no glibc allocator statistics on %s (cgo off or another C library)", runtime.GOOS)
	}
	// Before: glibc's own rule raised the threshold past the second block.
	if mapped, _ := mappedAfterReuse(); mapped {
		t.Fatal("before Open, a block below a freed larger one was mapped: glibc no longer raises its threshold, or something set it already")
	}
	b, err := Open("onnx")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Finalize()
	if mapped, _ := mappedAfterReuse(); !mapped {
		t.Fatal("after Open, a block above the threshold came from the heap: the threshold is not fixed")
	}
}
