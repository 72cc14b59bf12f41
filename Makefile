# Everything runs through scripts/setup.sh (dependencies, build) and go test.
export GOEXPERIMENT := simd
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: setup build build-xla test demo bench check

setup:
	bash scripts/setup.sh

build:
	go build -ldflags "-X main.version=$(VERSION)" -o bin/latentlm ./cmd/latentlm

test: setup
	go test -timeout 30m ./...

demo: setup
	./bin/latentlm demo

bench: build
	./bin/latentlm bench step --json
	./bin/latentlm bench train --json
	./bin/latentlm bench sample --json

check:
	gofmt -l . | tee /dev/stderr | (! read)
	go vet ./...

# The xla backend needs cgo and a PJRT plugin at run time (GPU machines).
build-xla:
	go build -tags xla -ldflags "-X main.version=$(VERSION)" -o bin/latentlm-xla ./cmd/latentlm
