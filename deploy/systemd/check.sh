#!/usr/bin/env bash
# Verifies the systemd units offline, in a throw-away root that looks like an installed host
# (/opt/medai/bin/medai, /etc/medai/medai.env, the units in /etc/systemd/system, the distro's
# own units copied from /usr/lib/systemd/system so that targets resolve):
#   1. `systemd-analyze verify --root=ROOT` for every unit and a worker instance; ANY output
#      is a failure (an unknown or misspelt key only warns, with exit status 0)
#   2. `systemd-analyze security --offline=yes --threshold=$THRESHOLD` per unit: the overall
#      exposure (0.0 = fully locked down, 10.0 = not at all; --threshold counts tenths, so
#      THRESHOLD=20 means 2.0) must not exceed it; each unit's number is printed
#      (docs/deploy/systemd.md records them)
# Needs systemd-analyze >= 250 (--offline, --threshold); skips (exit 77) without it.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
THRESHOLD="${THRESHOLD:-20}"  # tenths: exposure 2.0
UNITS=(medai-migrate.service medai-serve.service "medai-worker@cpu.service"
       "medai-worker@cpu\\x2ctraining.service" medai-dicom.service medai-first-admin.service)

if ! command -v systemd-analyze >/dev/null; then
    echo "SKIP: systemd-analyze not found (apt-get install systemd)" >&2
    exit 77
fi
version="$(systemd-analyze --version | awk 'NR==1 {print $2}')"
if (( ${version%%.*} < 250 )); then
    echo "SKIP: systemd $version has no offline security analysis (needs >= 250)" >&2
    exit 77
fi

ROOT="$(mktemp -d "${TMPDIR:-/tmp}/medai-units.XXXXXX")"
trap 'rm -rf "$ROOT"' EXIT
mkdir -p "$ROOT/etc/systemd/system" "$ROOT/etc/medai/credentials" "$ROOT/opt/medai/bin" \
         "$ROOT/opt/medai/libexec" "$ROOT/usr/lib/systemd" "$ROOT/var/lib/medai"
cp -a /usr/lib/systemd/system "$ROOT/usr/lib/systemd/"
cp "$HERE"/*.service "$ROOT/etc/systemd/system/"
cp "$HERE/medai.env" "$ROOT/etc/medai/medai.env"
install -m 0755 "$HERE/medai-first-admin.sh" "$ROOT/opt/medai/libexec/medai-first-admin"
printf '#!/bin/sh\nexit 0\n' > "$ROOT/opt/medai/bin/medai"
chmod 0755 "$ROOT/opt/medai/bin/medai"

echo "== systemd-analyze verify (systemd $version)"
out="$(cd "$ROOT/etc/systemd/system" && systemd-analyze verify --root="$ROOT" "${UNITS[@]}" 2>&1)" \
    || { echo "$out" >&2; echo "FAIL: verify exited non-zero" >&2; exit 1; }
if [[ -n "$out" ]]; then
    echo "$out" >&2
    echo "FAIL: systemd-analyze verify printed the above (every warning counts)" >&2
    exit 1
fi
echo "ok: ${UNITS[*]}"

echo "== systemd-analyze security --offline=yes --threshold=$THRESHOLD (exposure <= $((THRESHOLD / 10)).$((THRESHOLD % 10)))"
failed=0
for unit in "${UNITS[@]}"; do
    if out="$(cd "$ROOT/etc/systemd/system" && systemd-analyze security --offline=yes \
              --root="$ROOT" --threshold="$THRESHOLD" --no-pager "$unit" 2>&1)"; then
        status=ok
    else
        status=FAIL failed=1
    fi
    level="$(grep -o 'Overall exposure level for .*' <<<"$out" | sed 's/Overall exposure level for //' || true)"
    echo "$status: ${level:-$unit: no exposure level printed}"
    [[ $status == ok ]] || grep -v '✓' <<<"$out" >&2
done
(( failed == 0 )) || { echo "FAIL: an exposure above $((THRESHOLD / 10)).$((THRESHOLD % 10)), or no analysis" >&2; exit 1; }
echo "deploy/systemd/check.sh: all passed"
