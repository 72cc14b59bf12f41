package benchmark

import (
	"strings"

	"golang.org/x/sys/cpu"
)

// CPUFeatures lists the SIMD extensions of this CPU that matter to the
// matmul kernels of the backends, space-separated ("avx avx2 fma"), or says
// that none was detected. Speed figures depend on them, so the project
// prints them with every figure (`latentlm info`, every benchmark Result).
func CPUFeatures() string {
	var f []string
	add := func(ok bool, name string) {
		if ok {
			f = append(f, name)
		}
	}
	add(cpu.X86.HasAVX, "avx")
	add(cpu.X86.HasAVX2, "avx2")
	add(cpu.X86.HasFMA, "fma")
	add(cpu.X86.HasAVX512F, "avx512f")
	add(cpu.X86.HasAVX512BW, "avx512bw")
	add(cpu.X86.HasAVX512VNNI, "avx512vnni")
	add(cpu.X86.HasAVX512BF16, "avx512bf16")
	add(cpu.ARM64.HasASIMD, "asimd")
	if len(f) == 0 {
		return "no SIMD extensions detected"
	}
	return strings.Join(f, " ")
}
