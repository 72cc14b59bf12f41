#!/usr/bin/env bash
# Packs what scripts/gpu_issues.sh or scripts/gpu_tts.sh needs for one call of a lent GPU machine,
# and unpacks what comes back (docs/BENCHMARKS.md, "Training on a lent GPU").
#
#   scripts/gpu_pack.sh pack      # before the call of scripts/gpu_issues.sh
#   scripts/gpu_pack.sh pack-tts  # before the call of scripts/gpu_tts.sh:
#       run(command: "bash scripts/gpu_tts.sh", timeout_s: 570, carry: [".device"])
#   scripts/gpu_pack.sh pack-compare  # before the call of scripts/gpu_compare.sh:
#       run(command: "bash scripts/gpu_compare.sh", timeout_s: 570, carry: [".device", ".deps/mnist"])
#   scripts/gpu_pack.sh pack-speech  # before the call of scripts/gpu_speech.sh:
#       run(command: "bash scripts/gpu_speech.sh", timeout_s: 570, carry: [".device"])
#   scripts/gpu_pack.sh try-speech  # that script on the CPU, the system's synthesisers hidden
#   scripts/gpu_pack.sh plan-compare  # its plan alone (a try on the CPU)
#   scripts/gpu_pack.sh restore   # after it, whatever happened
#   scripts/gpu_pack.sh unpack D  # the files the call returned, from folder D, into runs/
#
# Why a pack step: a device call sends the working tree (tracked files, and
# untracked ones git does not ignore) plus the ignored paths it carries, 64
# MiB in all. The tracked tree is about 105 MB, 94 MB of it weights/, so
# the call would be refused. `pack` therefore takes weights/ out of the
# index and ignores it (.git/info/exclude) until `restore` puts both back;
# no commit is made, and the files stay on disk. The call then carries
# .device (the xla binary, compressed; the fortunes; the few weights the
# runs read) and the data, about 57 MiB with the 8 MB tree:
#
#   run(command: "bash scripts/gpu_issues.sh", timeout_s: 570,
#       carry: [".device", ".deps/mnist", ".deps/emoji-twitter"])
#
# Never commit between pack and restore: the commit would delete weights/.
set -euo pipefail
cd "$(dirname "$0")/.."
exclude=.git/info/exclude
mkdir -p .git/info && touch "$exclude"

# prepare: builds the xla binary into a fresh .device (compressed), and
# takes weights/ out of the index, ignored with .device until restore.
prepare() {
	make build-xla
	rm -rf .device
	mkdir -p .device
	xz -T2 -6 -c bin/latentlm-xla >.device/latentlm-xla.xz
	grep -qx '/.device/' "$exclude" || echo '/.device/' >>"$exclude"
	grep -qx '/weights/' "$exclude" || echo '/weights/' >>"$exclude"
	# Packing twice is harmless: the second time nothing under weights/ is tracked.
	if git ls-files --error-unmatch weights >/dev/null 2>&1; then
		git rm -r -q --cached weights
	fi
}

# report PATH...: what the call will carry besides .device.
report() {
	du -sh .device "$@"
	echo "tracked files now: $(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1) bytes; run scripts/gpu_pack.sh restore after the call"
}

# plan_compare: the plan of scripts/gpu_compare.sh, .device/compare/plan.env.
# Each arch trains one step here at the script's size (DIM, DEPTH, HEADS,
# BATCH; the baselines at LatentLM's parameter count, --match-params), so
# that the script knows, before any GPU time is spent, each one's counted
# work a step and therefore the steps that give all three LatentLM's
# budget: its LM_STEPS steps (default 7000; on 2026-12-04 the H200 ran
# three d256 × 6 runs side by side at about 75 steps a second each, and the
# baselines take about twice LatentLM's steps for the same FLOPs).
plan_compare() {
	local dim=${DIM:-256} depth=${DEPTH:-6} heads=${HEADS:-4} batch=${BATCH:-32} lm_steps=${LM_STEPS:-7000}
	local tmp=runs/compare-plan a vae vq=${VQVAE:-runs/vae-vq-canvas}
	[ -f "$vq/config.json" ] || {
		echo "the VQ tokenizer $vq (4.3 min)"
		./bin/latentlm vae train --data mnist-canvas --kind vq --seed 1 --out "$vq" --quiet
	}
	rm -rf "$tmp"
	mkdir -p .device/compare
	for a in latentlm vq transfusion; do
		vae=weights/vae-mnist-canvas size=(--depth "$depth")
		[ "$a" = vq ] && vae=$vq
		[ "$a" != latentlm ] && size=(--match-params "$tmp/latentlm")
		./bin/latentlm train --task multimodal --arch "$a" --data mnist-canvas --vae "$vae" --dim "$dim" "${size[@]}" \
			--heads "$heads" --kv-heads "$heads" --batch "$batch" --steps 1 --sample-every 0 --seed 1 --quiet --out "$tmp/$a"
	done
	gflop() { jq -r '.info.train_gflop' "$tmp/$1/config.json"; }
	{
		echo "# scripts/gpu_pack.sh plan-compare, $(date -u +%FT%TZ): d$dim x $depth, $heads heads, batch $batch"
		echo "DIM=$dim HEADS=$heads BATCH=$batch LM_DEPTH=$depth LM_STEPS=$lm_steps"
		echo "BUDGET_GFLOP=$(jq -n "$lm_steps * $(gflop latentlm)")"
		for a in latentlm vq transfusion; do
			echo "STEP_GFLOP_$a=$(gflop "$a") DEPTH_$a=$(jq -r '.config.depth' "$tmp/$a/config.json")"
		done
		echo "LM_PARAMS_DIR=.device/compare/latentlm"
	} >.device/compare/plan.env
	mkdir -p .device/compare/latentlm
	cp "$tmp/latentlm/config.json" .device/compare/latentlm/
	# What the runs and their scores read (weights/ does not travel).
	rm -rf .device/compare/vae-mnist-canvas .device/compare/judge-mnist-canvas .device/compare/vae-vq-canvas
	cp -r weights/vae-mnist-canvas weights/judge-mnist-canvas .device/compare/
	mkdir -p .device/compare/vae-vq-canvas
	cp "$vq"/config.json "$vq"/model.safetensors .device/compare/vae-vq-canvas/
	cat .device/compare/plan.env
}

# The Debian packages whose programs render the speech data (speech/voices.go).
synth_packages=(flite libflite1 festival libestools2.5 festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts festlex-cmu festlex-poslex)

# pack_synth: .device/synth.tar.xz, what scripts/gpu_lib.sh install_synth
# unpacks where these packages are not installed: their files (not their
# documentation) under root/, the shared libraries their programs and
# libraries load, glibc's own excepted, under lib/ (an x86-64 glibc at
# least as new as this one, 2.36, runs them), the pronouncing dictionary,
# and versions.txt. Then .device/speech-wav.sha256, the digest of each WAV
# of .deps/speech, which the call's freshly rendered cache must match.
pack_synth() {
	local stage=/tmp/synth-pack.$$ p f
	rm -rf "$stage" && mkdir -p "$stage/root" "$stage/lib"
	for p in "${synth_packages[@]}"; do dpkg -L "$p"; done | sort -u | while read -r f; do
		{ [ -f "$f" ] || [ -L "$f" ]; } && echo "$f"
	done | grep -v -E '^/usr/share/(doc|man|lintian)/|emacs' >"$stage/files.txt"
	tar c -T "$stage/files.txt" 2>/dev/null | tar x -C "$stage/root"
	# (ldd fails on the scripts among the programs, such as text2wave.)
	{ grep -E '\.so|/bin/' "$stage/files.txt" | xargs ldd 2>/dev/null || true; } | awk '/=>/ {print $3}' | sort -u |
		grep -v -E '/lib(c|m|pthread|dl|rt|resolv)\.so|ld-linux|libflite|libest' | xargs -r cp -L -t "$stage/lib"
	cp /usr/share/pocketsphinx/model/en-us/cmudict-en-us.dict "$stage/"
	for p in "${synth_packages[@]}" pocketsphinx-en-us; do echo "$p $(dpkg-query -W -f='${Version}' "$p")"; done >"$stage/versions.txt"
	rm "$stage/files.txt"
	tar c -C "$stage" . | xz -T2 -6 >.device/synth.tar.xz
	rm -rf "$stage"
	(cd .deps/speech && find wav -name '*.wav' | LC_ALL=C sort | xargs sha256sum) >.device/speech-wav.sha256
	echo "synth.tar.xz: $(du -h .device/synth.tar.xz | cut -f1); $(wc -l <.device/speech-wav.sha256) WAV digests of .deps/speech"
}

case "${1:-}" in
plan-compare)
	plan_compare
	;;
pack-compare)
	# scripts/gpu_compare.sh: the plan, the tokenizers and the judge.
	plan_compare
	mv .device/compare /tmp/gpu-compare-plan.$$
	prepare
	mv /tmp/gpu-compare-plan.$$ .device/compare
	mkdir -p .device/fortunes
	cp -L /usr/share/games/fortunes/*.u8 .device/fortunes/
	report .deps/mnist
	;;
pack)
	[ -f runs/vae-canvas-p7/model.safetensors ] || {
		echo "gpu_pack.sh: no runs/vae-canvas-p7: train it first (scripts/multimodal_cpu.sh trains it, 3.5 min)" >&2
		exit 1
	}
	prepare
	mkdir -p .device/fortunes .device/runs/vae-canvas-p7 .device/runs/vae-emoji .device/tokenizer
	# The collections' *.u8 names are links in Debian's package; -L copies their text.
	cp -L /usr/share/games/fortunes/*.u8 .device/fortunes/
	cp weights/multimodal-mnist/tokenizer.json .device/tokenizer/multimodal-mnist.json
	cp runs/vae-canvas-p7/config.json runs/vae-canvas-p7/model.safetensors .device/runs/vae-canvas-p7/
	cp weights/vae-emoji/config.json weights/vae-emoji/model.safetensors .device/runs/vae-emoji/
	report .deps/mnist .deps/emoji-twitter
	;;
pack-tts)
	# scripts/gpu_tts.sh: the encoded training split of .deps/speech-1600
	# (built by `PART=texts1600 scripts/tts.sh`, 11 min) and weights/tts.
	corpus=.deps/speech-1600-numbers-train.safetensors
	if [ ! -f "$corpus" ]; then
		[ -f .deps/speech-1600/manifest.json ] || ./bin/latentlm speech data --out .deps/speech-1600 --texts 1600 --quiet
		./bin/latentlm speech-vae encode-data --data .deps/speech-1600 --set numbers --model weights/speech-vae --out "$corpus"
	fi
	prepare
	mkdir -p .device/tts
	cp weights/tts/config.json weights/tts/model.safetensors .device/tts/
	xz -T2 -6 -c "$corpus" >".device/$(basename "$corpus").xz"
	report
	;;
pack-speech)
	# scripts/gpu_speech.sh: the synthesisers, so that the call renders the
	# speech data itself (the 492 MB of .deps/speech cannot travel), and
	# the fortunes its sentences come from.
	./bin/latentlm speech data --quiet
	prepare
	pack_synth
	mkdir -p .device/fortunes
	cp -L /usr/share/games/fortunes/*.u8 .device/fortunes/
	report
	;;
try-speech)
	# scripts/gpu_speech.sh on this CPU (onnx, BUDGET seconds, default 420),
	# after pack-speech, with Debian's synthesisers hidden in a private
	# mount namespace: their programs and libraries read as empty files, and
	# festival's library folder and pocketsphinx's model folder (the
	# dictionary) as empty ones, so that every rendering comes from the
	# pack. Needs root (unshare).
	[ -f .device/synth.tar.xz ] || { echo "gpu_pack.sh try-speech: run pack-speech first" >&2; exit 1; }
	unshare -m --propagation private bash -c '
		for f in /usr/bin/flite /usr/bin/festival $(ls /usr/lib/x86_64-linux-gnu/libflite*.so.* /usr/lib/x86_64-linux-gnu/libest*.so.* 2>/dev/null); do
			[ -f "$f" ] && [ ! -L "$f" ] && mount --bind /dev/null "$f"
		done
		mount -t tmpfs tmpfs /usr/share/festival
		mount -t tmpfs tmpfs /usr/share/pocketsphinx/model/en-us
		festival --version >/dev/null 2>&1 && { echo "festival still runs: not hidden" >&2; exit 1; }
		SYNTH_ROOT=/tmp/synth-try BACKEND=onnx L=./bin/latentlm BUDGET=${BUDGET:-420} OUT=/tmp/gpu-speech-try bash scripts/gpu_speech.sh'
	;;
restore)
	sed -i '\#^/weights/$#d' "$exclude"
	git reset -q -- weights
	git status --short weights | head -5
	echo "weights/ tracked again"
	;;
unpack)
	from=${2:?gpu_pack.sh unpack: name the folder the call returned}
	cat "$from"/runs.tar.part-* | tar x
	ls -d runs/gpu-*
	;;
*)
	echo "usage: scripts/gpu_pack.sh pack|pack-tts|pack-compare|pack-speech|plan-compare|try-speech|restore|unpack DIR" >&2
	exit 2
	;;
esac
