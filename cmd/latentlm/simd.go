//go:build goexperiment.simd

package main

// simdBuild records that the binary was built with GOEXPERIMENT=simd, which
// the pure-Go backend needs for its fast matmul.
const simdBuild = true
