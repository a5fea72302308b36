#!/usr/bin/env bash
# Wheels that `make gpu-check` needs on a GPU machine that has PyTorch, transformers, peft and
# accelerate but no route to a package index (docs/benchmarks/gpu.md). Downloaded here, for
# that machine's Python (3.12 by default) and x86-64 Linux, into .whl/ (git-ignored through
# .git/info/exclude); installed there with
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#   export PYTHONPATH=/tmp/site:src
# WITH_BNB=1 adds bitsandbytes, slimmed to the native libraries of one CUDA major
# (BNB_CUDA, default 13: the GPU image's torch is cu130) and the CPU one: the published wheel
# carries every CUDA and ROCm build (43 MB packed, 129 MB unpacked), the slim one ~4 MB.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${GPU_PYTHON_VERSION:-3.12}
DEST=${DEST:-.whl}
mkdir -p "$DEST"
mkdir -p .git/info; grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
           --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
           --platform manylinux1_x86_64)
# what medai imports on the captioning and imaging paths and the GPU image lacks
PURE=(pydantic==2.* pydantic-settings==2.* typing-inspection annotated-types python-dotenv
      monai==1.6.* nltk rouge-score==0.1.2 pydicom==3.*)
BINARY=(pydantic-core)
[ "${WITH_BNB:-0}" = 1 ] && BINARY+=("bitsandbytes==${BNB_VERSION:-0.50.*}")
pip=(python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY"
     --implementation cp "${PLATFORMS[@]}" --platform manylinux_2_24_x86_64 -d "$DEST")
# a pure-Python package published only as a source archive (rouge-score) is built into a
# wheel here: the GPU machine has no index to fetch build requirements from
for p in "${PURE[@]}"; do "${pip[@]}" "$p" 2>/dev/null || python3 -m pip wheel -q --no-deps -w "$DEST" "$p"; done
# pydantic-core must match the pydantic chosen above
core=$(unzip -p "$DEST"/pydantic-2*.whl '*/METADATA' | sed -n 's/^Requires-Dist: pydantic-core==\([0-9.]*\).*/\1/p')
"${pip[@]}" "pydantic-core==$core"
for p in "${BINARY[@]}"; do [ "$p" = pydantic-core ] || "${pip[@]}" "$p"; done
# bitsandbytes: keep only the CPU library and those of CUDA ${BNB_CUDA:-13}.x, RECORD rewritten
for w in "$DEST"/bitsandbytes-*.whl; do
  [ -f "$w" ] || continue
  python3 - "$w" "${BNB_CUDA:-13}" <<'PY'
import re, sys, zipfile
from pathlib import Path

wheel, major = Path(sys.argv[1]), sys.argv[2]
keep = re.compile(rf"libbitsandbytes_(cpu|cuda{major}\d)\.so$")
native = re.compile(r"libbitsandbytes_\w+\.(so|dll|dylib)$")
slim = wheel.with_suffix(".slim")
with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as dst:
    for item in src.infolist():
        if native.search(item.filename) and not keep.search(item.filename):
            continue
        data = src.read(item)
        if item.filename.endswith(".dist-info/RECORD"):
            lines = data.decode().splitlines()
            data = "\n".join(
                ln for ln in lines if not (native.search(ln.split(",")[0]) and not keep.search(ln.split(",")[0]))
            ).encode() + b"\n"
        dst.writestr(item, data)
slim.replace(wheel)
PY
done
ls -la "$DEST"
du -sh "$DEST"
