#!/usr/bin/env bash
# Trains the shipped LatentLM demo model on a GPU with the xla backend (see
# gpu_xla_check.sh for the plugin setup). Same command and defaults as on the
# CPU, only longer and with a larger batch.
set -uo pipefail
site=$(python3 -c 'import site; print(site.getsitepackages()[0])')
plugin=$(ls "$site"/jax_plugins/xla_cuda*/xla_cuda_plugin.so | head -1)
export LD_LIBRARY_PATH="$(ls -d "$site"/nvidia/*/lib | tr '\n' ':')${LD_LIBRARY_PATH:-}"
export GOPJRT_CUDA_CHECKS=0 GOPJR_CUDA_CHECKS=0
out=${OUT:-/tmp}
steps=${STEPS:-12000}
time ./bin/latentlm-xla train --backend "xla:$plugin" --data mnist --target eps --steps "$steps" --batch 128 \
  --save-every 3000 --sample-every 6000 --out runs/gpu-latentlm-mnist --quiet
cp runs/gpu-latentlm-mnist/{config.json,model.safetensors,loss.png} "$out/" 2>/dev/null
cp runs/gpu-latentlm-mnist/samples-*.png "$out/" 2>/dev/null
ls -la runs/gpu-latentlm-mnist
