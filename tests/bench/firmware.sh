#!/bin/bash
# tests/bench/firmware.sh — the firmware image of every board in boards/
# (make firmware BOARD=NAME, cross builds included): the stripped size of
# cityhub itself (goal 500 KB, shared libraries aside), the .deb's size and
# its installed size. BENCH_BOARDS limits the boards (default: all).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 2
boards=${BENCH_BOARDS:-$(for f in boards/*.mk; do basename "$f" .mk; done)}
echo "firmware images (make firmware BOARD=...): cityhub stripped (goal 500 KB), package, installed"
rc=0
for b in $boards; do
    if ! make -s --no-print-directory firmware BOARD="$b" >"build/bench-firmware-$b.log" 2>&1; then
        echo "  $b: make firmware failed (build/bench-firmware-$b.log)"
        rc=1
        continue
    fi
    eval "$(make -s --no-print-directory BOARD="$b" board-info | grep -E '^(FIRMWARE_DEB|BOARD_DEB_ARCH)=')"
    bin=build/$b-release/firmware-root/usr/bin/cityhub
    bytes=$(wc -c <"$bin")
    deb=$(wc -c <"$FIRMWARE_DEB")
    inst=$(dpkg-deb --field "$FIRMWARE_DEB" Installed-Size)
    awk -v b="$b" -v a="$BOARD_DEB_ARCH" -v s="$bytes" -v d="$deb" -v i="$inst" 'BEGIN {
        printf "  %-8s %-6s cityhub %4.0f KB (%s)   package %4.0f KB   installed %5d KiB\n",
            b, a, s / 1000, (s <= 500000 ? "goal 500 KB: ok" : "OVER the 500 KB goal"), d / 1000, i }'
done
exit $rc
