#!/usr/bin/env bash
# Check a built image: what it must carry (labels, non-root user, entrypoint, HEALTHCHECK,
# `medai version` = the tag, its variant's torch) and what it must not (a secret key, an .env,
# a private key, any file under /var/lib/medai, pip in the venv; in the CPU image a CUDA
# library).
#   deploy/image/check.sh [IMAGE]       the CPU image (default localhost/medai:VERSION): torch
#                                       2.13.0+cpu, no nvidia-*/triton packages
#   deploy/image/check.sh gpu [IMAGE]   the GPU image (default localhost/medai-gpu:VERSION): the
#                                       same checks, but torch 2.13.0's CUDA build
#                                       (torch.version.cuda set, cuDNN and NCCL load) with its
#                                       nvidia-* packages; no GPU needed (is_available() False
#                                       is accepted and said)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/deploy/image/containers.conf}
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$root/src/medai/__init__.py")
torch_version=2.13.0
variant=cpu
case "${1:-}" in cpu|gpu) variant=$1; shift ;; esac
case "$variant" in
    cpu) image=${1:-localhost/medai:$version} ;;
    gpu) image=${1:-localhost/medai-gpu:$version} ;;
esac
fails=0
ok() { printf '  ok    %s\n' "$*"; }
bad() { printf '  FAIL  %s\n' "$*"; fails=$((fails + 1)); }
check() {  # DESCRIPTION COMMAND...
    local what=$1; shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}
field() { podman image inspect "$image" --format "$1"; }
run() { podman run --rm --network none --entrypoint /bin/sh "$image" -c "$1" 2>/dev/null; }

echo "checking $image ($variant)"
for label in title version revision licenses created; do
    value=$(field "{{index .Config.Labels \"org.opencontainers.image.$label\"}}")
    check "label org.opencontainers.image.$label = ${value:-<none>}" test -n "$value"
done
check "label version = $version" \
    test "$(field '{{index .Config.Labels "org.opencontainers.image.version"}}')" = "$version"
check "user 10001:10001" test "$(field '{{.Config.User}}')" = 10001:10001
check "entrypoint tini → medai-entrypoint" \
    test "$(field '{{json .Config.Entrypoint}}')" = '["/usr/bin/tini","--","/usr/local/bin/medai-entrypoint"]'
check "HEALTHCHECK medai-healthcheck" \
    grep -q medai-healthcheck <<< "$(podman image inspect "$image" | grep -A3 '"Test"')"
check "medai version = $version" test "$(podman run --rm --network none "$image" version \
    2>/dev/null)" = "$version"
check "/var/lib/medai is empty and owned by medai" \
    test "$(run 'stat -c %u:%g /var/lib/medai; ls -A /var/lib/medai | wc -l')" = $'10001:10001\n0'
found=$(run 'find / -xdev \( -name secret.key -o -name .env -o -name "*.key" -o -name "id_rsa*" \
    -o -name "id_ed25519*" -o -path "/etc/ssl/private/*" -o -name "*.pem" -path "*private*" \) \
    -not -path "/proc/*" 2>/dev/null' || true)
check "no secret.key, .env or private key files${found:+ (found: $(echo $found))}" test -z "$found"
check "no pip in the venv (installed from the wheelhouse, nothing to install later)" \
    test -z "$(run 'ls /opt/medai/lib/python3.11/site-packages | grep -i "^pip" || true')"
cuda_packages=$(run 'ls /opt/medai/lib/python3.11/site-packages | grep -Ei "^(nvidia|triton)" \
    | grep -v -- "-info$" | paste -sd " " -' || true)
if [ "$variant" = cpu ]; then
    check "no CUDA libraries" test -z "$cuda_packages"
else
    check "the CUDA libraries torch needs (${cuda_packages:-none})" test -n "$cuda_packages"
fi
# torch_build.py runs in the image (stdin): the variant's build, its version and libraries
torch_build=$(podman run --rm -i --network none --entrypoint /opt/medai/bin/python "$image" \
    - "$variant" "$torch_version" < "$root/deploy/image/torch_build.py" 2>/dev/null) \
    && torch_ok=0 || torch_ok=$?
check "torch is the $([ "$variant" = cpu ] && echo CPU || echo CUDA) build: ${torch_build:-<no answer>}" \
    test "$torch_ok" = 0
check "pg_dump and pg_restore (medai backup / restore on PostgreSQL)" test -n \
    "$(run 'command -v pg_dump && command -v pg_restore' || true)"
size=$(field '{{.Size}}')
echo "  size  $((size / 1000000)) MB, id $(field '{{.Id}}' | cut -c1-12)"
[ "$fails" = 0 ] && echo "image checks passed" || { echo "$fails image checks FAILED"; exit 1; }
