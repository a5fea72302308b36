#!/usr/bin/env bash
# A site certificate for a demo or a first start: a private CA (kept beside it, to give to the
# clients that must trust it) and a certificate for the site's name signed by it, in
# ${MEDAI_SECRETS_DIR:-deploy/compose/secrets}/tls/: site.crt (certificate + CA chain),
# site.key (0600), ca.crt. A hospital replaces site.crt/site.key with its own (a certificate
# from the hospital's CA for the name clients use) and restarts nginx; see
# docs/deploy/image-and-compose.md.
#   make-cert.sh [SITE_NAME]    (default: $MEDAI_SITE_NAME or localhost; always adds localhost
#                                and 127.0.0.1). Existing files are kept unless FORCE=1.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dir=${MEDAI_SECRETS_DIR:-$here/secrets}/tls
name=${1:-${MEDAI_SITE_NAME:-localhost}}
days=${MEDAI_CERT_DAYS:-397}

if [ -s "$dir/site.crt" ] && [ -s "$dir/site.key" ] && [ -z "${FORCE:-}" ]; then
    echo "make-cert: $dir/site.crt exists (FORCE=1 makes a new one)" >&2
    exit 0
fi
command -v openssl >/dev/null || { echo "make-cert: openssl is missing" >&2; exit 1; }
mkdir -p "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 077

san="DNS:$name,DNS:localhost,IP:127.0.0.1"
case "$name" in localhost) san="DNS:localhost,IP:127.0.0.1" ;; esac
if [[ "$name" =~ ^[0-9.]+$ ]]; then san="IP:$name,DNS:localhost,IP:127.0.0.1"; fi

openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
    -days 3650 -subj "/CN=medai demo CA ($name)" -keyout "$work/ca.key" -out "$work/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
    -subj "/CN=$name" -keyout "$work/site.key" -out "$work/site.csr" 2>/dev/null
printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" "subjectAltName=$san" > "$work/ext.cnf"
openssl x509 -req -in "$work/site.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
    -CAcreateserial -days "$days" -sha256 -extfile "$work/ext.cnf" -out "$work/leaf.crt" \
    2>/dev/null
cat "$work/leaf.crt" "$work/ca.crt" > "$dir/site.crt"
cp "$work/site.key" "$dir/site.key"
cp "$work/ca.crt" "$dir/ca.crt"
chmod 0644 "$dir/site.crt" "$dir/ca.crt"
chmod 0600 "$dir/site.key"
# the CA's key is not kept: this CA signs this one certificate and nothing else
echo "make-cert: $dir/site.crt for $san (valid $days days; clients trust $dir/ca.crt)" >&2
