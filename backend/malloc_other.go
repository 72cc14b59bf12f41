//go:build !linux || !cgo

package backend

// keepFreedMemoryReturned does nothing where there is no glibc to tune
// (see malloc_cgo.go).
func keepFreedMemoryReturned() {}

func mappedAfterReuse() (mapped, known bool) { return false, false }
