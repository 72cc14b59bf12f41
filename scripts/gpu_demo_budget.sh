#!/usr/bin/env bash
# Compares LatentLM training recipes that fit the CPU demo budget (about 11
# minutes of LatentLM steps on 2 cores) by running the same steps on a GPU:
# the computation is the same, only faster.
set -uo pipefail
site=$(python3 -c 'import site; print(site.getsitepackages()[0])')
plugin=$(ls "$site"/jax_plugins/xla_cuda*/xla_cuda_plugin.so | head -1)
export LD_LIBRARY_PATH="$(ls -d "$site"/nvidia/*/lib | tr '\n' ':')${LD_LIBRARY_PATH:-}"
export GOPJRT_CUDA_CHECKS=0 GOPJR_CUDA_CHECKS=0
out=${OUT:-/tmp}
run() { # name batch steps lr
  ./bin/latentlm-xla train --backend "xla:$plugin" --target eps --batch "$2" --steps "$3" --lr "$4" \
    --save-every "$3" --sample-every "$3" --out "runs/$1" --quiet 2>&1 | grep -v "^W11" | tail -2
  cp "runs/$1/samples-$(printf %06d "$3").png" "$out/$1.png"
}
run b64-s600-lr1e-3 64 600 1e-3
run b32-s1200-lr2e-3 32 1200 2e-3
run b16-s2400-lr2e-3 16 2400 2e-3
run b32-s1200-lr4e-3 32 1200 4e-3
