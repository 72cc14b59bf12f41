//go:build linux && cgo

package backend

/*
#include <malloc.h>
#include <stdlib.h>

// fixMmapThreshold sets glibc's mmap threshold to n bytes and, because it
// is set explicitly, turns off glibc's dynamic raising of it. It does
// nothing where the C library has no such option (musl).
static void fixMmapThreshold(int n) {
#ifdef M_MMAP_THRESHOLD
	mallopt(M_MMAP_THRESHOLD, n);
#endif
}

// isMapped reports whether glibc mapped the block p of its own: the
// IS_MMAPPED bit (2) of the chunk's size word, just before p. It reads the
// block itself, so other threads allocating or freeing at the same time
// (ONNX Runtime's, once opened) cannot change the answer, as they could a
// process-wide count of mapped bytes. Elsewhere it is always 0.
static int isMapped(void *p) {
#ifdef __GLIBC__
	return (((size_t *)p)[-1] & 2) != 0;
#else
	return 0;
#endif
}

static int isGlibc(void) {
#ifdef __GLIBC__
	return 1;
#else
	return 0;
#endif
}

static void *allocate(size_t n) { return malloc(n); }
static void release(void *p) { free(p); }
*/
import "C"

import "unsafe"

// mmapThreshold is the size from which the C allocator maps each block of
// its own, and unmaps it when freed: glibc's initial threshold, kept.
const mmapThreshold = 128 << 10

// keepFreedMemoryReturned stops the C heap of ONNX Runtime (or XLA) from
// keeping what it has freed. glibc starts by mapping blocks of 128 KiB or
// more and unmapping them on free, but each time such a block is freed it
// raises the threshold to that block's size (up to 32 MiB), so that after
// the first graph is released, the activations and caches of the next
// ones come from the heap, whose freed middle the process keeps. A
// long-lived process that loads, runs and closes model after model (sweep
// over snapshots, a server) then grows by the size of each model's working
// memory: measured on a sweep of six snapshots, 2.3 → 4.3 GB resident
// (docs/BENCHMARKS.md, "Memory of long-lived processes"). Setting the
// threshold explicitly keeps it fixed.
func keepFreedMemoryReturned() { C.fixMmapThreshold(mmapThreshold) }

// mappedAfterReuse frees a block of four times the threshold, then
// allocates blocks of twice it, and reports whether one of them was mapped
// (as a fixed threshold does) rather than taken from the heap (as glibc's
// raised threshold does). For the tests of keepFreedMemoryReturned.
//
// glibc maps a block only when its arena's free space cannot hold it, so
// with the threshold fixed the first such block may still come from free
// space left by earlier work (it once did, and the test failed). It keeps
// allocating, up to 64 blocks (16 MiB), until the free space is spent: a
// fixed threshold then maps one, a raised one never does.
func mappedAfterReuse() (mapped, known bool) {
	p := C.allocate(C.size_t(mmapThreshold * 4))
	C.release(p)
	var held []unsafe.Pointer
	for range 64 {
		q := C.allocate(C.size_t(mmapThreshold * 2))
		held = append(held, q)
		if C.isMapped(q) == 1 {
			mapped = true
			break
		}
	}
	for _, q := range held {
		C.release(q)
	}
	return mapped, C.isGlibc() == 1
}
