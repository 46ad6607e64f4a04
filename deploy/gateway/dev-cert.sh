#!/usr/bin/env bash
# Makes the gateway's self-signed development certificate when there is none yet:
#
#   deploy/gateway/dev-cert.sh DIR     -> DIR/cert.pem, DIR/key.pem (key mode 0600)
#
# ECDSA P-256, valid 825 days, for localhost, 127.0.0.1 and ::1. Clients trust it by pointing
# at DIR/cert.pem (curl --cacert). For development and tests only: production certificates
# come from outside (cert-manager, ACM) and are mounted where COFRE_GW_TLS_CERT points.
set -euo pipefail

dir=${1:?usage: dev-cert.sh DIR}
mkdir -p "$dir"
if [[ -s "$dir/cert.pem" && -s "$dir/key.pem" ]]; then
    exit 0
fi
command -v openssl >/dev/null || {
    echo "dev-cert.sh: openssl is not installed (scripts/deps.sh run installs it)" >&2
    exit 1
}
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
    -subj "/O=cofre development/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,digitalSignature,keyCertSign" \
    -addext "extendedKeyUsage=serverAuth" \
    -keyout "$dir/key.pem.tmp" -out "$dir/cert.pem.tmp" 2>/dev/null
chmod 0644 "$dir/cert.pem.tmp"
mv -f "$dir/key.pem.tmp" "$dir/key.pem"
mv -f "$dir/cert.pem.tmp" "$dir/cert.pem"
