//go:build xla

package backend

import (
	"github.com/gomlx/go-xla/compute/xla" // registers "xla" (cgo; build with -tags xla)
)

// Never download plugins: these machines cannot reach the download sites.
// The PJRT plugin must already be installed (for CUDA, from JAX's wheels).
func init() { xla.EnableAutoInstall(false) }
