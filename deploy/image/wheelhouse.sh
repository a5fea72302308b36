#!/usr/bin/env bash
# Build a wheelhouse: every wheel medai needs at run time on CPython 3.11, Linux x86_64.
#   deploy/image/wheelhouse.sh [cpu]   deploy/dist/wheelhouse/: the CPU build of torch
#                                      (localhost/medai, `make image`)
#   deploy/image/wheelhouse.sh gpu     deploy/dist/wheelhouse-gpu/: torch's CUDA build from
#                                      the package index (the default Linux x86-64 wheel on PyPI)
#                                      and the nvidia-*/cuda-* runtime wheels and triton it
#                                      pulls, several GB (localhost/medai-gpu, `make image-gpu`)
# The image installs from it with no network (pip inside a container build cannot verify the
# package index's certificate here), and an air-gapped host installs from the same folder:
#   python3 -m venv /opt/medai && /opt/medai/bin/pip install --no-index \
#     --find-links deploy/dist/wheelhouse 'medai[dicom]'
# Nothing is installed on this host (wheels are downloaded and built into the folder only):
# never a CUDA torch into the project's .venv, whose CPU torch stays as it is.
#
# Environment: PYTHON (a CPython 3.11 with pip; default Debian's /usr/bin/python3, the image's
# own 3.11.2: a newer 3.11 picks releases that refuse 3.11.2, e.g. soupsieve 4.1), WHEELHOUSE
# (output folder), TORCH_WHEEL (the torch 2.13.0 wheel of the variant; cpu default: found in
# pip's find-links or on disk, else downloaded from the PyTorch CPU index; gpu default: the one
# already in the wheelhouse, else downloaded from the configured index), MEDAI_EXTRAS (default
# "dicom": the compressed-DICOM decoders; "dicom,tracking" adds MLflow; "" none). Never the
# dev extras.
set -euo pipefail

variant=${1:-cpu}
case "$variant" in
    cpu) folder=wheelhouse ;;
    gpu) folder=wheelhouse-gpu ;;
    *) echo "usage: $0 [cpu|gpu]" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${WHEELHOUSE:-$root/deploy/dist/$folder}
py=${PYTHON:-$([ -x /usr/bin/python3 ] && echo /usr/bin/python3 || echo python3)}
extras=${MEDAI_EXTRAS-dicom}
torch_version=2.13.0
image_python=3.11.2  # Debian bookworm's python3: every wheel must accept it

log() { printf 'wheelhouse: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

tag=$("$py" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
[ "$tag" = cp311 ] || die "$py is $tag; the image's Python is Debian bookworm's 3.11: set PYTHON"
full=$("$py" -c 'import platform; print(platform.python_version())')
[ "$full" = "$image_python" ] || log "warning: $py is $full, the image's is $image_python" \
    "(the offline check below still holds the wheels to $image_python)"
[ "$(uname -m)" = x86_64 ] || die "build on x86_64 (the image's architecture)"

find_torch() {
    local dirs d
    # pip's own find-links first (this machine keeps the CPU wheel there), then the disk
    dirs=$("$py" -m pip config list 2>/dev/null | sed -n "s/.*find-links='\(.*\)'/\1/p" \
           | tr ' ' '\n')
    for d in $dirs /opt/wheels; do
        d=${d#file://}
        ls "$d"/torch-"$torch_version"+cpu-"$tag"-*x86_64.whl 2>/dev/null | head -1 && return
    done
    find / -xdev -name "torch-$torch_version+cpu-$tag-*x86_64.whl" -not -path '*/deploy/dist/*' \
        2>/dev/null | head -1
}

cuda_torch() {  # the CUDA build: torch 2.13.0 with no local label, as PyPI ships it
    ls "$out"/torch-"$torch_version"-"$tag"-*x86_64.whl 2>/dev/null | head -1 || true
}

mkdir -p "$out"
if [ "$variant" = cpu ]; then
    torch=${TORCH_WHEEL:-$(find_torch)}
    if [ -z "$torch" ]; then
        log "no local torch $torch_version CPU wheel: downloading it from the PyTorch CPU index"
        "$py" -m pip download --no-deps --only-binary=:all: -d "$out" \
            --index-url https://download.pytorch.org/whl/cpu "torch==$torch_version+cpu"
        torch=$(ls "$out"/torch-"$torch_version"+cpu-*.whl | head -1)
    fi
else
    torch=${TORCH_WHEEL:-$(cuda_torch)}
    if [ -z "$torch" ]; then
        # "===" is the exact version string: "==2.13.0" also matches the CPU wheel
        # 2.13.0+cpu that this host's find-links hold (and pip prefers it, a local label sorts
        # higher). Only the wheel: its nvidia-*/cuda-* dependencies come with medai's below.
        log "downloading torch $torch_version (the CUDA build) from the package index"
        "$py" -m pip download --no-deps --only-binary=:all: -d "$out" \
            --python-version "$image_python" --platform manylinux_2_28_x86_64 \
            "torch===$torch_version" >&2
        torch=$(cuda_torch)
    fi
fi
[ -f "$torch" ] || die "torch wheel ${torch:-torch-$torch_version} not found"
case "$variant:$(basename "$torch")" in
    cpu:*+cpu-*) ;;
    cpu:*) die "$torch is not a CPU build" ;;
    gpu:torch-"$torch_version"-*) ;;
    gpu:*) die "$torch is not torch $torch_version's CUDA build (no local version label)" ;;
esac
log "torch ($variant): $torch"

start=$(date +%s)
rm -f "$out"/medai-*.whl  # this checkout's wheel, never an older one
[ -f "$out/$(basename "$torch")" ] || cp "$torch" "$out"/
# the dependencies are resolved again only when what decides them changed; otherwise only
# medai's own wheel is rebuilt (a code change: seconds, not a minute of index lookups)
stamp=$( (sed -n '/^\[project\]/,/^\[project.scripts\]/p' "$root/pyproject.toml"
          echo "$extras $full $(basename "$torch")") | sha256sum | cut -c1-16)
if [ -f "$out/.resolved" ] && [ "$(cat "$out/.resolved")" = "$stamp" ]; then
    log "dependencies unchanged: rebuilding the medai wheel only"
    "$py" -m pip wheel --quiet --no-deps --wheel-dir "$out" "$root" >&2
else
    log "resolving and fetching the dependencies"
    # downloads wheels, builds the few sdists and medai itself; wheels already here are reused
    "$py" -m pip wheel --quiet --wheel-dir "$out" --find-links "$out" --prefer-binary \
        "$out/$(basename "$torch")" "$root${extras:+[$extras]}" >&2
fi
# the resolver must have used the variant's torch: a CUDA torch brings nvidia-* and triton
# wheels, which the CPU wheelhouse must not hold and the GPU one must
cuda=$(cd "$out" && ls | grep -Ei '^(nvidia[-_]|triton-|torch-[0-9.]+-)' || true)
if [ "$variant" = cpu ]; then
    [ -z "$cuda" ] || die "CUDA wheels in the wheelhouse (remove them): $cuda"
else
    cpu_torch=$(cd "$out" && ls | grep -E '^torch-.*\+cpu-' || true)
    [ -z "$cpu_torch" ] || die "a CPU torch in the GPU wheelhouse (remove it): $cpu_torch"
    grep -qEi '^nvidia[-_]' <<< "$cuda" || die "no nvidia-* runtime wheels in $out"
fi

# the whole set must install with no index on the image's Python (what the image and an
# air-gapped host do); wheels it would not pick (older releases, leftovers) are removed
check=$(mktemp -d)
trap 'rm -rf "$check"' EXIT
platforms=()  # what pip accepts on bookworm (glibc 2.36), x86_64
for v in $(seq 36 -1 5); do platforms+=(--platform "manylinux_2_${v}_x86_64"); done
for p in manylinux2014 manylinux2010 manylinux1 linux; do platforms+=(--platform "${p}_x86_64"); done
# no pip configuration of this host (its find-links, constraints, in a file or in PIP_*
# variables: this host's PIP_FIND_LINKS holds a CPU torch, which the check would otherwise
# pick over the wheelhouse's): only the wheelhouse
env -u PIP_FIND_LINKS -u PIP_CONSTRAINT -u PIP_REQUIREMENT PIP_CONFIG_FILE=/dev/null \
    "$py" -m pip install --dry-run --ignore-installed --no-index \
    --find-links "$out" --only-binary=:all: --python-version "$image_python" "${platforms[@]}" \
    --target "$check/t" --report "$check/report.json" --quiet "medai${extras:+[$extras]}" >&2 \
    || die "the wheelhouse does not install offline on Python $image_python"
"$py" - "$check/report.json" "$out" >&2 <<'PY' || die "the offline check did not use the wheelhouse alone"
import json, pathlib, sys
from urllib.parse import unquote, urlsplit

out = pathlib.Path(sys.argv[2]).resolve()
paths = {pathlib.Path(unquote(urlsplit(i["download_info"]["url"]).path))
         for i in json.load(open(sys.argv[1]))["install"]}
outside = sorted(str(p) for p in paths if p.resolve().parent != out)
if outside:  # never prune the wheelhouse by an install that did not come from it
    sys.exit(f"wheelhouse: error: the offline check installed from outside {out}: {outside}")
used = {p.name for p in paths}
for whl in sorted(out.glob("*.whl")):
    if whl.name not in used:
        print(f"wheelhouse: removing {whl.name} (not what Python 3.11.2 installs)")
        whl.unlink()
PY
echo "$stamp" > "$out/.resolved"
(cd "$out" && sha256sum ./*.whl | sed 's| \./| |' | LC_ALL=C sort -k2 > SHA256SUMS)
log "$(ls "$out"/*.whl | wc -l) wheels, $(du -sh "$out" | cut -f1), $(( $(date +%s) - start )) s: $out"
