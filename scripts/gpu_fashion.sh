#!/usr/bin/env bash
# Trains the Fashion-MNIST tokenizer and LatentLM on a GPU with the xla
# backend (plugin setup as in gpu_xla_check.sh), with the CPU defaults except
# for longer runs.
set -uo pipefail
site=$(python3 -c 'import site; print(site.getsitepackages()[0])')
plugin=$(ls "$site"/jax_plugins/xla_cuda*/xla_cuda_plugin.so | head -1)
export LD_LIBRARY_PATH="$(ls -d "$site"/nvidia/*/lib | tr '\n' ':')${LD_LIBRARY_PATH:-}"
export GOPJRT_CUDA_CHECKS=0 GOPJR_CUDA_CHECKS=0
out=${OUT:-/tmp}
b="xla:$plugin"
time ./bin/latentlm-xla vae train --backend "$b" --data fashion --steps 3000 --out runs/vae-fashion --quiet || exit 1
time ./bin/latentlm-xla vae eval --backend "$b" --data fashion --vae runs/vae-fashion | tee "$out/vae-eval.txt"
time ./bin/latentlm-xla train --backend "$b" --data fashion --vae runs/vae-fashion --target eps --steps "${STEPS:-8000}" --batch 128 \
  --save-every 4000 --sample-every 8000 --out runs/latentlm-fashion --quiet
mkdir -p "$out/vae" "$out/lm"
cp runs/vae-fashion/{config.json,model.safetensors,loss.png} "$out/vae/"
cp runs/latentlm-fashion/{config.json,model.safetensors,loss.png} "$out/lm/"
cp runs/latentlm-fashion/samples-*.png "$out/" 2>/dev/null
