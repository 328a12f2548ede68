# firmware/sign.sh and firmware/verify: SHA256SUMS over the images, a
# detached signature with a key pair made here, and verify's answers for a
# good image, a damaged one, a foreign key, an edited SHA256SUMS, a missing
# signature and an image not listed.
set -eu
. tests/lib/fixtures.sh
fixtures_init
deb=$(ls build/firmware/cityhub_*_amd64.deb 2>/dev/null | head -1)
[ -n "$deb" ] || fail "no build/firmware/cityhub_*_amd64.deb (make firmware)"

D=$T/release
mkdir -p "$D"
cp "$deb" "$D/"
img=$D/$(basename "$deb")
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/key.pem" 2>/dev/null
openssl pkey -in "$T/key.pem" -pubout -out "$T/pub.pem"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/other.pem" 2>/dev/null
openssl pkey -in "$T/other.pem" -pubout -out "$T/other.pub.pem"

expect() { # RC PATTERN command...
    local want=$1 pat=$2 out rc=0
    shift 2
    out=$("$@" 2>&1) || rc=$?
    echo "$out"
    [ "$rc" -eq "$want" ] || fail "exit $rc (want $want): $*"
    echo "$out" | grep -q -- "$pat" || fail "'$pat' not in the answer of: $*"
}

# Unsigned: the checksum alone.
firmware/sign.sh "$D"
[ ! -e "$D/SHA256SUMS.sig" ] || fail "a signature without a key"
(cd "$D" && sha256sum -c SHA256SUMS) || fail "SHA256SUMS does not check with sha256sum -c"
expect 0 'OK (sha256 matches)' firmware/verify "$img"
expect 0 'OK (sha256 matches)' firmware/verify "$D"
expect 1 'SHA256SUMS.sig: missing' firmware/verify --key "$T/pub.pem" "$img"

# Signed.
firmware/sign.sh "$D" "$T/key.pem"
[ -s "$D/SHA256SUMS.sig" ] || fail "no signature with a key"
openssl dgst -sha256 -verify "$T/pub.pem" -signature "$D/SHA256SUMS.sig" "$D/SHA256SUMS" |
    grep -q 'Verified OK' || fail "openssl does not verify the signature"
expect 0 'signature good' firmware/verify --key "$T/pub.pem" "$img"
expect 1 'BAD signature' firmware/verify --key "$T/other.pub.pem" "$img"

# A damaged image: one byte changed in the middle.
cp "$img" "$T/good.deb"
printf 'X' | dd of="$img" bs=1 seek=$(($(wc -c <"$img") / 2)) conv=notrunc 2>/dev/null
expect 1 'BAD checksum' firmware/verify --key "$T/pub.pem" "$img"
# SHA256SUMS edited to match the damaged image: the signature catches it.
sha256sum "$img" | sed "s#  .*#  $(basename "$img")#" >"$D/SHA256SUMS"
expect 0 'OK (sha256 matches)' firmware/verify "$img"
expect 1 'BAD signature' firmware/verify --key "$T/pub.pem" "$img"
cp "$T/good.deb" "$img"

# An image from elsewhere, and usage.
cp "$img" "$D/cityhub_9.9.9_amd64.deb"
firmware/sign.sh "$D" "$T/key.pem"
rm "$D/cityhub_9.9.9_amd64.deb"
touch "$D/cityhub_9.9.9_amd64.deb"
sed -i '/9\.9\.9/d' "$D/SHA256SUMS"
expect 1 'not listed' firmware/verify "$D/cityhub_9.9.9_amd64.deb"
expect 2 'usage' firmware/verify
echo "firmware verify ok"
