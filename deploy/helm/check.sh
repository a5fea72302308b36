#!/usr/bin/env bash
# Lints, renders, validates and packages the Helm chart offline (no cluster needed):
#   1. `helm lint --strict` with the default values and with test-values/everything.yaml
#   2. `helm template` of both -> deploy/dist/helm/rendered-{default,everything}.yaml, and
#      `helm install --dry-run=client` for NOTES.txt -> deploy/dist/helm/notes-*.txt
#   3. `kubernetes-validate --strict` of every rendered object against each of K8S_VERSIONS,
#      and the workers' images: the GPU pool runs gpuImage (localhost/medai-gpu, the CUDA
#      build), every other pod image (localhost/medai)
#   4. values.schema.json and the chart's own checks refuse each test-values/bad-*.yaml
#   5. `helm package` -> deploy/dist/helm/medai-<version>.tgz
# Tools come from deploy/tools/get-helm.sh (pinned; fetched once, then reused).
#   deploy/helm/check.sh                  K8S_VERSIONS="1.28.0 1.33.0" deploy/helm/check.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CHART="$ROOT/deploy/helm/medai"
VALUES="$ROOT/deploy/helm/test-values"
OUT="$ROOT/deploy/dist/helm"
K8S_VERSIONS="${K8S_VERSIONS:-1.28.0 1.30.0 1.33.0}"
HELM="$ROOT/deploy/dist/tools/bin/helm"
KV="$ROOT/deploy/dist/tools-venv/bin/kubernetes-validate"

"$ROOT/deploy/tools/get-helm.sh" >/dev/null
mkdir -p "$OUT"
step() { printf '== %s\n' "$*"; }

for variant in default everything; do
    args=()
    [[ $variant == everything ]] && args=(-f "$VALUES/everything.yaml")
    step "helm lint --strict ($variant values)"
    "$HELM" lint --strict "$CHART" "${args[@]}"
    step "helm template ($variant values)"
    "$HELM" template medai "$CHART" --namespace medai --kube-version 1.30.0 "${args[@]}" \
        > "$OUT/rendered-$variant.yaml"
    echo "$(grep -c '^kind:' "$OUT/rendered-$variant.yaml") objects -> $OUT/rendered-$variant.yaml"
    step "helm install --dry-run=client ($variant values: NOTES.txt renders)"
    "$HELM" install medai "$CHART" --namespace medai --dry-run=client "${args[@]}" \
        | sed -n '/^NOTES:/,$p' > "$OUT/notes-$variant.txt"
    [[ -s "$OUT/notes-$variant.txt" ]] || { echo "FAIL: no NOTES rendered" >&2; exit 1; }
    echo "ok: $(wc -l < "$OUT/notes-$variant.txt") lines -> $OUT/notes-$variant.txt"
done

for version in $K8S_VERSIONS; do
    step "kubernetes-validate --strict against Kubernetes $version"
    "$KV" --strict --quiet -k "$version" "$OUT/rendered-default.yaml" "$OUT/rendered-everything.yaml"
    echo "ok"
done

step "worker images: a pool with GPUs runs gpuImage (the CUDA build), the others image"
"$ROOT/deploy/dist/tools-venv/bin/python" - "$CHART" "$OUT/rendered-everything.yaml" <<'PY'
import sys, yaml

chart, rendered = sys.argv[1], sys.argv[2]
values = yaml.safe_load(open(f"{chart}/values.yaml"))
version = yaml.safe_load(open(f"{chart}/Chart.yaml"))["appVersion"]
images = {d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["image"]
          for d in yaml.safe_load_all(open(rendered)) if d and d["kind"] in ("Deployment", "Job")}
want = {name: f"{values['image']['repository']}:{version}" for name in images}
want["medai-worker-gpu"] = f"{values['gpuImage']['repository']}:{version}"
for name in sorted(images):
    print(f"{name}: {images[name]}")
if images != want:
    sys.exit(f"FAIL: images {images}, expected {want}")
PY

step "bad values are refused"
for bad in "$VALUES"/bad-*.yaml; do
    if log="$("$HELM" template medai "$CHART" -f "$bad" 2>&1)"; then
        echo "FAIL: $(basename "$bad") was accepted" >&2
        exit 1
    fi
    expect="$(sed -n '1s/^# expect: //p' "$bad")"
    if [[ -z "$expect" ]] || ! grep -qF -- "$expect" <<<"$log"; then
        echo "FAIL: $(basename "$bad") was refused, but not with \"$expect\":" >&2
        echo "$log" >&2
        exit 1
    fi
    echo "refused $(basename "$bad"): $expect"
done

step "helm package"
"$HELM" package "$CHART" --destination "$OUT" | sed "s|$ROOT/||"
echo "deploy/helm/check.sh: all passed"
