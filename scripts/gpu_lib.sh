#!/usr/bin/env bash
# Shared by the scripts of one lent-GPU call (scripts/gpu_issues.sh,
# scripts/gpu_tts.sh, scripts/gpu_compare.sh); sourced, not run, first
# thing. The launching functions expect the array `common` (flags of every
# run) and the associative array `flags` (each run's own flags).

# gpu_begin NAME: starts the call's clock and log: start (now), budget
# (BUDGET seconds, default 540, for a call with timeout_s 570), out (OUT,
# default /tmp/NAME with - for _: the folder whose files come back) and the
# script's output, from here on, also in $out/NAME.log.
gpu_begin() {
	start=$(date +%s)
	budget=${BUDGET:-540}
	out=${OUT:-/tmp/${1//_/-}}
	mkdir -p "$out" runs
	exec > >(tee "$out/$1.log") 2>&1
}

# elapsed: the seconds since gpu_begin.
elapsed() { echo $(($(date +%s) - start)); }

# gpu_setup: unpacks the xla binary that scripts/gpu_pack.sh packed and
# points the xla backend at the CUDA PJRT plugin of JAX's wheels
# (scripts/gpu_xla_check.sh), unless BACKEND is set (a try on the CPU:
# BACKEND=onnx L=./bin/latentlm).
gpu_setup() {
	L=${L:-./bin/latentlm-xla}
	[ -n "${BACKEND:-}" ] && return 0
	mkdir -p bin
	xz -dc .device/latentlm-xla.xz >bin/latentlm-xla && chmod +x bin/latentlm-xla || return 1
	local site plugin cu
	site=$(python3 -c 'import site; print(site.getsitepackages()[0])')
	plugin=$(ls "$site"/jax_plugins/xla_cuda*/xla_cuda_plugin.so | head -1)
	export LD_LIBRARY_PATH="$(ls -d "$site"/nvidia/*/lib | tr '\n' ':')${LD_LIBRARY_PATH:-}"
	cu=$(ls -d "$site"/nvidia/cu13 2>/dev/null | head -1)
	[ -n "$cu" ] && export XLA_FLAGS="--xla_gpu_cuda_data_dir=$cu"
	export GOPJRT_CUDA_CHECKS=0 GOMLX_NO_AUTO_INSTALL=1
	# No preallocation: the runs share the one GPU, each allocating as it goes.
	BACKEND="xla:$plugin,preallocate=false"
	nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
}

# launch NAME STEPS OUT [FLAG...]: one run in the background, each line of
# its output stamped with the seconds since launch, into
# $out/NAME-<base of OUT>.log. STEPS "-" gives no --steps (a run whose
# flags set its length otherwise, such as --train-gflop).
launch() {
	local name=$1 steps=$2 dir=$3 t0 len=()
	shift 3
	[ "$steps" != - ] && len=(--steps "$steps")
	t0=$(date +%s)
	# shellcheck disable=SC2086
	"$L" "${common[@]}" ${flags[$name]} "${len[@]}" --out "$dir" "$@" 2>&1 |
		while IFS= read -r line; do echo "$(($(date +%s) - t0)) $line"; done >"$out/$name-$(basename "$dir").log" &
	pids+=($!)
}

# running: whether a launched run is still going. (A plain wait would also
# wait for the tee of the script's log, which never ends.)
running() {
	local pid
	for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && return 0; done
	return 1
}

# parse_steps "NAME=STEPS ...": sets steps[NAME] for each, and names to
# the NAMEs in order.
parse_steps() {
	local kv
	names=()
	for kv in $1; do
		names+=("${kv%%=*}")
		steps[${kv%%=*}]=${kv#*=}
	done
}

# await_runs: waits for the launched runs until 25 s before the budget
# and stops any still going with SIGTERM, which saves it.
await_runs() {
	while running && [ "$(elapsed)" -lt $((budget - 25)) ]; do sleep 2; done
	if running; then
		pkill -TERM -f -- "--out runs/gpu-"
		echo "[$(elapsed) s] stopped at the deadline: a run is incomplete"
		wait "${pids[@]}"
	fi
}

# pack_runs DIR...: the runs DIR... (without optimiser states) as
# $out/runs.tar.part-NN, pieces of 15 MiB (scripts/gpu_pack.sh unpack).
# At most 8 files and 64 MiB come back from a call: three d256 × 6 models
# (24.8 MB each) did not on 2026-12-04, and the last piece had to be
# fetched by a second call while the machine was warm. So pack what must
# come back, and score the rest on the device.
pack_runs() {
	tar c --exclude='train_state*' "$@" 2>/dev/null | split -b 15M -d - "$out/runs.tar.part-"
	ls -la "$out"
	local total
	total=$(du -cb "$out" | tail -1 | cut -f1)
	[ "$total" -gt $((64 << 20)) ] && echo "warning: $total bytes under $out, above the 64 MiB that come back"
	echo "[$(elapsed) s] done"
}

# install_synth: makes the speech synthesisers that scripts/gpu_pack.sh
# pack-speech packed (.device/synth.tar.xz: Debian's flite and festival
# with its voices and lexicons, the shared libraries they load beyond
# glibc, and pocketsphinx-en-us's pronouncing dictionary, which `speech
# data` reads to keep sentences to known words) runnable where Debian's
# packages are not installed. Nothing is unpacked over the system: the
# files go to SYNTH_ROOT (default /opt/synth), the programs run through
# wrappers in SYNTH_ROOT/bin that put the packed libraries first, and only
# paths that are missing are added: festival's library folder, whose path
# festival and `speech data` both expect, as a link (or, where the folder
# exists empty, as a bind mount) and the dictionary as a copy.
install_synth() {
	local s=${SYNTH_ROOT:-/opt/synth} p dict=/usr/share/pocketsphinx/model/en-us/cmudict-en-us.dict
	mkdir -p "$s" && xz -T0 -dc .device/synth.tar.xz | tar x -C "$s" || return 1
	if [ ! -f /usr/share/festival/init.scm ]; then
		if [ -d /usr/share/festival ]; then
			mount --bind "$s/root/usr/share/festival" /usr/share/festival || return 1
		else
			ln -s "$s/root/usr/share/festival" /usr/share/festival || return 1
		fi
	fi
	[ -f "$dict" ] || { mkdir -p "$(dirname "$dict")" && cp "$s/cmudict-en-us.dict" "$dict"; } || return 1
	mkdir -p "$s/bin"
	for p in flite festival; do
		printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s "$@"\n' "$s/root/usr/lib/x86_64-linux-gnu:$s/lib" "$s/root/usr/bin/$p" >"$s/bin/$p"
		chmod +x "$s/bin/$p"
	done
	export PATH="$s/bin:$PATH"
	echo "synthesisers from the pack: $(cat "$s/versions.txt" | tr '\n' ' ')"
}
