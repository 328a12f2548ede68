#!/bin/sh
# firmware/mkdeb.sh ROOT OUTDIR DEB_ARCH VERSION BOARD STRIP — package the
# staging root ROOT (`make install DESTDIR=ROOT PREFIX=/usr`) as
# OUTDIR/cityhub_VERSION_DEB_ARCH.deb: the program stripped with STRIP (the
# board's strip), control file (Depends from the program's shared
# libraries), conffiles, the maintainer scripts of firmware/deb/, the man
# page compressed, the copyright file; files owned by root:root whoever
# builds it. The state directory is the postinst's (owned by the cityhub
# user, kept on remove), not a file of the package.
set -eu
# Who answers for the image (control file, changelog): the city's packager.
maintainer=${FIRMWARE_MAINTAINER:-cityhub maintainers <cityhub@localhost>}
root=${1:?usage: firmware/mkdeb.sh ROOT OUTDIR DEB_ARCH VERSION BOARD}
out=${2:?}
arch=${3:?}
version=${4:?}
board=${5:?}
strip=${6:?}
top=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/usr/bin/cityhub"
[ -x "$bin" ] || { echo "mkdeb: $bin: no program (make install first)" >&2; exit 1; }
"$strip" --strip-unneeded --remove-section=.comment --remove-section=.note "$bin"
rmdir "$root/var/lib/cityhub" "$root/var/lib" "$root/var" "$root/etc/cityhub/credentials"

# The Debian package of each library the program links (Debian 12 names). A
# library missing here stops the build: add its package, do not guess.
pkg_of() {
    case "$1" in
    libc.so.6 | libm.so.6 | libpthread.so.0) echo "libc6 (>= 2.36)" ;;
    libmodbus.so.5) echo libmodbus5 ;;
    libcurl.so.4) echo "libcurl4 (>= 7.88)" ;;
    libz.so.1) echo zlib1g ;;
    libjansson.so.4) echo libjansson4 ;;
    libssl.so.3 | libcrypto.so.3) echo libssl3 ;;
    libpaho-mqtt3as.so.1) echo libpaho-mqtt1.3 ;;
    libyaml-0.so.2) echo libyaml-0-2 ;;
    libmicrohttpd.so.12) echo libmicrohttpd12 ;;
    libsystemd.so.0) echo libsystemd0 ;;
    *) return 1 ;;
    esac
}
depends="adduser"
for so in $(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    p=$(pkg_of "$so") || { echo "mkdeb: $bin needs $so: no package known for it (firmware/mkdeb.sh pkg_of)" >&2; exit 1; }
    case ", $depends, " in *", $p, "*) ;; *) depends="$depends, $p" ;; esac
done

# Documentation as Debian lays it out: man pages and the changelog
# compressed, the licence as the copyright file.
gzip -9nf "$root/usr/share/man/man8/cityhub.8"
doc="$root/usr/share/doc/cityhub"
{
    echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    echo "Upstream-Name: cityhub"
    echo
    echo "Files: *"
    echo "License: MIT"
    sed 's/^$/./; s/^/ /' "$top/LICENSE"
} >"$doc/copyright"
printf 'cityhub (%s) stable; urgency=medium\n\n  * Firmware image for board %s.\n\n -- %s  %s\n' \
    "$version" "$board" "$maintainer" "$(date -R -d @"${SOURCE_DATE_EPOCH:-$(git -C "$top" log -1 --format=%ct 2>/dev/null || date +%s)}")" |
    gzip -9n >"$doc/changelog.gz"
chmod 0644 "$doc/copyright" "$doc/changelog.gz"

mkdir -p "$root/DEBIAN"
for s in postinst prerm postrm; do
    install -m 0755 "$top/firmware/deb/$s" "$root/DEBIAN/$s"
done
# Every file under /etc is a conffile: dpkg keeps a technician's edits on upgrade.
(cd "$root" && find etc -type f | sed 's#^#/#' | sort) >"$root/DEBIAN/conffiles"
[ -s "$root/DEBIAN/conffiles" ] || rm -f "$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: cityhub
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $size
Depends: $depends
Section: net
Priority: optional
Homepage: https://github.com/cityhub/cityhub
Description: sensor hub for city gateway boards ($board)
 cityhub polls traffic, air-quality and energy sensors over Modbus (RTU on
 RS-485, and TCP) and MQTT, keeps every reading in a crash-safe journal on
 the board's flash and forwards them to the operations center's InfluxDB.
 .
 This image is built for the board "$board": its default configuration in
 /etc/cityhub/cityhub.yaml and its serial ports in the systemd unit.
CONTROL

mkdir -p "$out"
deb="$out/cityhub_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "firmware: $deb ($(du -k "$deb" | cut -f1) KiB, installed $size KiB)"
