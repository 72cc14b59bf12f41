#!/usr/bin/env bash
# The tokenizer comparison of docs/BENCHMARKS.md: σ-VAE, VAE and AE with one
# architecture and one training budget (the defaults), each timed and
# evaluated on the MNIST test set.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${DATA:-mnist}
mkdir -p runs/compare
for kind in sigma vae ae; do
  dir=runs/compare/$kind-$data
  rm -rf "$dir"
  start=$(date +%s)
  ./bin/latentlm vae train --kind "$kind" --data "$data" --out "$dir" --quiet
  echo "$kind train_seconds $(( $(date +%s) - start ))" | tee -a runs/compare/times-$data.txt
  ./bin/latentlm vae eval --data "$data" --vae "$dir" --json > runs/compare/$kind-$data.json
done
