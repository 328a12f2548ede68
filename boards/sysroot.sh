#!/bin/sh
# boards/sysroot.sh DEB_ARCH DIR — assemble a sysroot for cross builds in DIR
# from Debian's own packages for DEB_ARCH (arm64, armhf): the -dev packages
# cityhub builds against and, recursively, the libraries they depend on.
#
# Packages are fetched with `apt-get download` (into DIR.debs, kept) and
# unpacked with `dpkg -x`: nothing is installed on the host. apt needs the
# architecture's package index, so DEB_ARCH is added to dpkg's architectures
# (`dpkg --add-architecture`) when it is not there yet. Absolute symbolic links
# are rewritten relative to DIR, and the linker scripts that name absolute
# paths (libc.so, libm.so) are rewritten to name paths inside DIR, so that the
# cross linker never reaches into the host's /usr/lib.
#
# DIR/.stamp holds the package list; a second run with the same list does
# nothing (the Makefile calls this through the stamp).
set -eu
arch=${1:?usage: boards/sysroot.sh DEB_ARCH DIR}
dir=${2:?usage: boards/sysroot.sh DEB_ARCH DIR}

# What cityhub, its tests and its simulator link (Makefile: LIBS, LIBS_CMOCKA).
DEV="libc6-dev linux-libc-dev libmodbus-dev libcurl4-openssl-dev zlib1g-dev libssl-dev
libpaho-mqtt-dev libyaml-dev libjansson-dev libmicrohttpd-dev libsystemd-dev libcmocka-dev"

say() { echo "sysroot $arch: $*" >&2; }

if [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$DEV" ]; then
    exit 0
fi

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
if ! dpkg --print-foreign-architectures | grep -qx "$arch" &&
    [ "$arch" != "$(dpkg --print-architecture)" ]; then
    say "adding $arch to dpkg's architectures (package index only; nothing is installed)"
    $SUDO dpkg --add-architecture "$arch"
fi
# A missing index for the architecture: fetch it. apt-get update exits 100
# when one suite's index fails (a mirror without that architecture's security
# suite, say); what it did fetch is enough.
if ! apt-cache show "libc6:$arch" >/dev/null 2>&1; then
    say "apt-get update (the $arch package index)"
    $SUDO apt-get update -q >&2 || say "apt-get update reported errors; continuing"
fi
apt-cache show "libc6:$arch" >/dev/null 2>&1 ||
    { say "no package index for $arch (apt-get update failed?)"; exit 1; }

# The -dev packages and everything they need at link and run time, for this
# architecture only (Architecture: all packages such as debconf hold no
# libraries and are left out).
pkgs=""
for p in $DEV; do pkgs="$pkgs $p:$arch"; done
# shellcheck disable=SC2086
all=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances $pkgs |
    sed -n "s/^\([a-z0-9][a-z0-9.+-]*:$arch\)\$/\1/p" | sort -u)
[ -n "$all" ] || { say "apt-cache depends found nothing for:$pkgs"; exit 1; }
say "$(echo "$all" | wc -l) packages"

mkdir -p "$dir.debs"
# shellcheck disable=SC2086
(cd "$dir.debs" && apt-get download -q $all >&2) ||
    { say "apt-get download failed (network? package index out of date?)"; exit 1; }

rm -rf "$dir.tmp"
mkdir -p "$dir.tmp"
for p in $all; do
    name=${p%:"$arch"}
    deb=$(ls "$dir.debs/${name}_"*"_$arch.deb" 2>/dev/null | tail -1)
    [ -n "$deb" ] || { say "$name: no .deb downloaded"; exit 1; }
    dpkg -x "$deb" "$dir.tmp"
done

# Absolute links (libfoo.so -> /lib/TRIPLE/libfoo.so.1) point into the host:
# make each one relative to its own place inside the sysroot.
find "$dir.tmp" -type l | while read -r l; do
    t=$(readlink "$l")
    case "$t" in
    /*)
        rel=$(realpath -m --relative-to="$(dirname "$l")" "$dir.tmp$t")
        ln -sfn "$rel" "$l"
        ;;
    esac
done
# Linker scripts (text files named lib*.so) that name /lib/... or /usr/lib/...:
# with --sysroot the linker looks for those inside the sysroot already, but
# only for scripts it finds there; naming the paths relative to the sysroot
# through `=` keeps that true whatever the linker's configuration.
find "$dir.tmp" -name 'lib*.so' -type f -size -4k | while read -r f; do
    if grep -q 'GNU ld script' "$f" 2>/dev/null; then
        sed -i -e 's# /# =/#g' -e 's#(/#(=/#g' "$f"
    fi
done

rm -rf "$dir"
mv "$dir.tmp" "$dir"
echo "$DEV" >"$dir/.stamp"
say "ready in $dir ($(du -sh "$dir" | cut -f1))"
