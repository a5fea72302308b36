#!/usr/bin/env bash
# Wheels that `make gpu-check` needs on a GPU machine that has PyTorch, transformers, peft and
# accelerate but no route to a package index (docs/benchmarks/gpu.md). Downloaded here, for
# that machine's Python (3.12 by default) and x86-64 Linux, into .whl/ (git-ignored through
# .git/info/exclude); installed there with
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#   export PYTHONPATH=/tmp/site:src
# WITH_BNB=1 adds bitsandbytes (~60–120 MB: more than one 64 MiB transfer can carry together
# with the rest; send it in a call of its own or where the limit allows).
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
[ "${WITH_BNB:-0}" = 1 ] && BINARY+=(bitsandbytes)
pip=(python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY"
     --implementation cp "${PLATFORMS[@]}" -d "$DEST")
# a pure-Python package published only as a source archive (rouge-score) is built into a
# wheel here: the GPU machine has no index to fetch build requirements from
for p in "${PURE[@]}"; do "${pip[@]}" "$p" 2>/dev/null || python3 -m pip wheel -q --no-deps -w "$DEST" "$p"; done
# pydantic-core must match the pydantic chosen above
core=$(unzip -p "$DEST"/pydantic-2*.whl '*/METADATA' | sed -n 's/^Requires-Dist: pydantic-core==\([0-9.]*\).*/\1/p')
"${pip[@]}" "pydantic-core==$core"
for p in "${BINARY[@]}"; do [ "$p" = pydantic-core ] || "${pip[@]}" "$p"; done
ls -la "$DEST"
du -sh "$DEST"
