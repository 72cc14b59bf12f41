#!/usr/bin/env bash
# Tries the xla backend on a GPU machine with the CUDA PJRT plugin that JAX's
# wheels install (jax-cuda13-pjrt). Run from the repository root with the
# binary built by `make build-xla` at bin/latentlm-xla.
set -uo pipefail
py=$(command -v python3)
site=$($py -c 'import site; print(site.getsitepackages()[0])')
plugin=$(ls "$site"/jax_plugins/xla_cuda*/xla_cuda_plugin.so 2>/dev/null | head -1)
echo "python: $py"; echo "site-packages: $site"; echo "plugin: $plugin"
[[ -n "$plugin" ]] || { echo "no CUDA PJRT plugin found"; exit 1; }
libs=$(ls -d "$site"/nvidia/*/lib 2>/dev/null | tr '\n' ':')
export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:-}"
cu=$(ls -d "$site"/nvidia/cu13 2>/dev/null | head -1)
[[ -n "$cu" ]] && export XLA_FLAGS="--xla_gpu_cuda_data_dir=$cu"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
ldd --version | head -1
out=${OUT:-/tmp}
b="xla:$plugin"
set -x
timeout 120 ./bin/latentlm-xla info --backend "$b" 2>&1 | tee "$out/info.txt"
timeout 150 ./bin/latentlm-xla bench step --backend "$b" --steps 20 --json 2>&1 | tee "$out/bench_step.json"
timeout 150 ./bin/latentlm-xla bench train --backend "$b" --steps 20 --json 2>&1 | tee "$out/bench_train.json"
timeout 200 ./bin/latentlm-xla bench sample --backend "$b" --steps 3 --json 2>&1 | tee "$out/bench_sample.json"
