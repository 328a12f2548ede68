#!/bin/sh
# firmware/sign.sh DIR [KEY] — write DIR/SHA256SUMS over every image in DIR
# (cityhub_*.deb) and, given a private key (PEM, RSA or EC), the detached
# signature DIR/SHA256SUMS.sig (openssl dgst -sha256 -sign). firmware/verify
# checks both on the board or the technician's laptop.
set -eu
dir=${1:?usage: firmware/sign.sh DIR [KEY]}
key=${2:-}
cd "$dir"
ls cityhub_*.deb >/dev/null 2>&1 || { echo "sign: no cityhub_*.deb in $dir" >&2; exit 1; }
sha256sum cityhub_*.deb >SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS
rm -f SHA256SUMS.sig
if [ -n "$key" ]; then
    openssl dgst -sha256 -sign "$key" -out SHA256SUMS.sig SHA256SUMS ||
        { echo "sign: $key: could not sign $dir/SHA256SUMS" >&2; exit 1; }
    echo "firmware: $dir/SHA256SUMS, $dir/SHA256SUMS.sig (key $key)"
else
    echo "firmware: $dir/SHA256SUMS (unsigned: FIRMWARE_KEY=PRIVATE.pem signs it)"
fi
