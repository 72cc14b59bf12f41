#!/usr/bin/env bash
# One call of a lent GPU machine (one H200) for issue 17, the speech
# tokenizer, prepared by `scripts/gpu_pack.sh pack-speech`
# (docs/BENCHMARKS.md, "Training on a lent GPU"). The tokenizer trains on
# audio, and the 492 MB of .deps/speech cannot travel (64 MiB a call), so
# the call carries the synthesisers instead (Debian's flite and festival
# with their voices and libraries, 29 MB compressed) and renders the cache
# there, with every CPU of the machine. It then checks the rendering
# against the digests of this machine's cache, WAV for WAV, and trains, side
# by side on the one GPU, for the seconds the budget leaves (`speech-vae
# train --time`: each stops at the step that fits, its cosine schedule
# fitted to end there):
#
#   runs/gpu-speech-spec  the shipped tokenizer's recipe (spectrum domain,
#                         25 Hz × 32 channels, Griffin-Lim vocoder) at batch
#                         64 instead of 16; on the CPU it had 2500 steps
#   runs/gpu-speech-wave  the waveform decoder, as the paper's tokenizer is
#                         (--domain wave), at batch 64; on the CPU its 2500
#                         steps were far from enough
#
# RUNS="spec wave" (the default) chooses among spec, wave and spec16 (the
# shipped recipe unchanged, batch 16). In BUDGET seconds (default 540, for a
# call with timeout_s 570). The runs come back as runs.tar.part-NN (15 MiB
# pieces, without optimiser states; two runs of about 23 MB each fit the
# 64 MiB that come back) with the logs under $OUT; `scripts/gpu_pack.sh
# unpack DIR` puts them into runs/, to be scored on the CPU by `latentlm
# speech-vae eval --judge-n 20`, as every tokenizer of docs/RESULTS.md.
# `scripts/gpu_pack.sh try-speech` runs this script on the CPU (onnx, a
# short budget) with the system's synthesisers hidden.
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/gpu_lib.sh
. scripts/gpu_lib.sh
gpu_begin gpu_speech
margin=40 # seconds for the final saves and the packing
data=${SPEECH_DATA:-/tmp/speech}
compgen -G '/usr/share/games/fortunes/*.u8' >/dev/null || { mkdir -p /usr/share/games/fortunes && cp .device/fortunes/* /usr/share/games/fortunes/; }
install_synth || exit 1
gpu_setup || exit 1
echo "[$(elapsed) s] backend $BACKEND, budget $budget s, $(nproc) CPUs"

"$L" speech data --out "$data" --quiet || exit 1
echo "[$(elapsed) s] rendered $(find "$data/wav" -name '*.wav' | wc -l) WAVs into $data"
# The same synthesisers and texts must give the same bytes as this
# machine's cache: any difference would make the runs' data another one.
# (On the CPU, 2026-12-05, twice the same one WAV of 6200 differed from the
# cache in its last 40 ms: festival's rendering of it depends on the
# process it runs in, since its batch rendered again outside the try's
# namespace, by the pack's festival or the system's, gives the cache's
# bytes, and the pack's festival folder is the system's, file for file.)
if (cd "$data" && sha256sum --quiet -c -) <.device/speech-wav.sha256 >/tmp/wav-mismatch.txt 2>&1; then
	echo "[$(elapsed) s] all $(wc -l <.device/speech-wav.sha256) WAVs identical to the cache they were packed beside"
else
	echo "[$(elapsed) s] $(grep -c FAILED /tmp/wav-mismatch.txt) of $(wc -l <.device/speech-wav.sha256) WAVs differ from that cache:"
	grep FAILED /tmp/wav-mismatch.txt | head -20
fi

common=(speech-vae train --backend "$BACKEND" --data "$data" --seed 1 --save-every 100000)
declare -A flags=(
	[spec]="--batch 64"
	[wave]="--domain wave --batch 64"
	[spec16]=""
)
left=$((budget - $(elapsed) - margin))
[ "$left" -ge 60 ] || { echo "[$(elapsed) s] only $left s left for training: none started"; exit 1; }
pids=()
for name in ${RUNS:-spec wave}; do
	launch "$name" 100000000 "runs/gpu-speech-$name" --time "${left}s"
done
await_runs
for name in ${RUNS:-spec wave}; do
	[ -f "runs/gpu-speech-$name/config.json" ] && echo "[$(elapsed) s] runs/gpu-speech-$name: $(grep -o '"steps": [0-9]*' "runs/gpu-speech-$name/config.json" | tail -1)"
	tail -2 "$out/$name-gpu-speech-$name.log" 2>/dev/null
done
pack_runs runs/gpu-speech-*
