# The firmware images (make firmware BOARD=NAME): each board's package is
# inspected (control fields, files and owners, conffiles, maintainer scripts,
# the program's architecture, the unit's serial ports, the man page, lintian),
# and the lab board's package is installed into a throwaway root with dpkg
# --root: the unit, the config as a conffile that an upgrade keeps, the
# cityhub user in dialout and its state directory, remove and purge.
#
# FIRMWARE_BOARDS: the boards whose package must be there (default x86_64;
# make check sets it to the lab board and CHECK_BOARDS, whose images it built).
set -eu
. tests/lib/fixtures.sh
fixtures_init
VERSION=$(cat VERSION)

board_info() { make -s --no-print-directory BOARD="$1" board-info; }

check_board() { # BOARD
    local b=$1 R deb info f m unit want have
    eval "$(board_info "$b" | sed 's/^\([A-Z_]*\)=\(.*\)$/\1='"'"'\2'"'"'/')"
    deb=$FIRMWARE_DEB
    [ -f "$deb" ] || fail "$b: $deb missing (make firmware BOARD=$b)"
    [ "$(basename "$deb")" = "cityhub_${VERSION}_${BOARD_DEB_ARCH}.deb" ] || fail "$b: name $deb"
    echo "== $b: $deb"

    # Control fields.
    info=$(dpkg-deb --info "$deb")
    field() { dpkg-deb --field "$deb" "$1"; }
    [ "$(field Package)" = cityhub ] || fail "$b: Package $(field Package)"
    [ "$(field Version)" = "$VERSION" ] || fail "$b: Version $(field Version)"
    [ "$(field Architecture)" = "$BOARD_DEB_ARCH" ] || fail "$b: Architecture $(field Architecture)"
    for d in adduser libc6 libmodbus5 libcurl4 libyaml-0-2 libmicrohttpd12 libpaho-mqtt1.3; do
        field Depends | tr ',' '\n' | grep -q "^ *$d\b" || fail "$b: Depends lacks $d: $(field Depends)"
    done
    [ "$(field Installed-Size)" -gt 100 ] || fail "$b: Installed-Size $(field Installed-Size)"
    echo "$info" | grep -q ' postinst ' && echo "$info" | grep -q ' prerm ' &&
        echo "$info" | grep -q ' postrm ' || fail "$b: maintainer scripts missing: $info"

    # Files, owners and modes.
    dpkg-deb --contents "$deb" >"$T/$b.contents"
    for f in ./usr/bin/cityhub ./etc/cityhub/cityhub.yaml ./lib/systemd/system/cityhub.service \
        ./usr/share/man/man8/cityhub.8.gz ./usr/share/cityhub/profiles/eastron-sdm630.yaml \
        ./usr/share/doc/cityhub/install.md ./usr/share/doc/cityhub/commissioning.md \
        ./usr/share/doc/cityhub/copyright ./usr/share/doc/cityhub/changelog.gz \
        ./usr/share/doc/cityhub/profiles/eastron-sdm630.md ./etc/cityhub/profiles/; do
        grep -q " $f\$" "$T/$b.contents" || fail "$b: $f not in the package"
    done
    awk '$2 != "root/root" { print; bad = 1 } END { exit bad }' "$T/$b.contents" ||
        fail "$b: files not owned by root/root"
    grep -q '^-rwxr-xr-x .* ./usr/bin/cityhub$' "$T/$b.contents" || fail "$b: cityhub not 0755"
    grep -q ' ./var/lib/cityhub' "$T/$b.contents" &&
        fail "$b: /var/lib/cityhub is the postinst's, not a file of the package"

    R=$T/root-$b
    mkdir -p "$R/ctl"
    dpkg-deb -x "$deb" "$R"
    dpkg-deb -e "$deb" "$R/ctl"
    [ "$(cat "$R/ctl/conffiles")" = /etc/cityhub/cityhub.yaml ] ||
        fail "$b: conffiles: $(cat "$R/ctl/conffiles")"
    for s in postinst prerm postrm; do
        [ -x "$R/ctl/$s" ] || fail "$b: $s not executable"
        sh -n "$R/ctl/$s" || fail "$b: $s: syntax"
        head -1 "$R/ctl/$s" | grep -qx '#!/bin/sh' || fail "$b: $s: not a /bin/sh script"
    done

    # The program: the board's architecture, stripped.
    m=$(readelf -h "$R/usr/bin/cityhub" | sed -n 's/^ *Machine: *//p')
    [ "$m" = "$BOARD_ELF_MACHINE" ] || fail "$b: cityhub is built for '$m', not '$BOARD_ELF_MACHINE'"
    readelf -S "$R/usr/bin/cityhub" | grep -q '\.symtab' && fail "$b: cityhub is not stripped"
    readelf -d "$R/usr/bin/cityhub" | grep -q 'NEEDED.*libmodbus' || fail "$b: not linked with libmodbus"
    echo "$b: cityhub $m, $(wc -c <"$R/usr/bin/cityhub") bytes stripped"

    # The default config is the board's, and it passes cityhub check.
    cmp "$R/etc/cityhub/cityhub.yaml" "$BOARD_DEFAULT_CONFIG" ||
        fail "$b: /etc/cityhub/cityhub.yaml is not $BOARD_DEFAULT_CONFIG"
    "$CITYHUB" check -c "$R/etc/cityhub/cityhub.yaml" || fail "$b: default config refused"
    # Its serial devices are among the ports the unit allows, in the board's
    # RS-485 mode; docs/install.md names every port.
    for d in $(sed -n 's/.*device: *\([^ ,}]*\).*/\1/p' "$BOARD_DEFAULT_CONFIG"); do
        case " $BOARD_SERIAL_PORTS " in *" $d "*) ;; *) fail "$b: the default config's $d is not in BOARD_SERIAL_PORTS" ;; esac
    done
    if grep -q 'type: rtu' "$BOARD_DEFAULT_CONFIG"; then
        grep -q "rs485: $BOARD_RS485" "$BOARD_DEFAULT_CONFIG" ||
            fail "$b: the default config's RS-485 line is not rs485: $BOARD_RS485 (BOARD_RS485)"
    fi
    for p in $BOARD_SERIAL_PORTS; do
        grep -q "\`$p\`" docs/install.md || fail "$b: docs/install.md does not name $p"
    done

    # The unit: the board's serial ports, nothing else; paths of the package.
    unit=$R/lib/systemd/system/cityhub.service
    want=$(for p in $BOARD_SERIAL_PORTS; do echo "DeviceAllow=$p rw"; done)
    have=$(grep '^DeviceAllow=' "$unit")
    [ "$have" = "$want" ] || fail "$b: DeviceAllow: $have (want $want)"
    for l in Type=notify NotifyAccess=main WatchdogSec=30s User=cityhub Group=cityhub \
        SupplementaryGroups=dialout StateDirectory=cityhub StateDirectoryMode=0700 \
        ConfigurationDirectory=cityhub ProtectSystem=strict ProtectHome=yes NoNewPrivileges=yes \
        PrivateTmp=yes DevicePolicy=closed CapabilityBoundingSet= Restart=on-failure RestartSec=5s \
        'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' 'ExecReload=/bin/kill -HUP $MAINPID' \
        'ExecStart=/usr/bin/cityhub run -c /etc/cityhub/cityhub.yaml' \
        'LoadCredential=cityhub:/etc/cityhub/credentials'; do
        grep -qxF "$l" "$unit" || fail "$b: the unit lacks '$l'"
    done
    grep -q '@[A-Z_]*@' "$unit" && fail "$b: unit has an unfilled @NAME@"
    # systemd-analyze verify needs the host's own units (targets) in the root
    # and the executables the unit names; it exits 0 on warnings, so any
    # output is a failure.
    if command -v systemd-analyze >/dev/null && [ -d /lib/systemd/system ]; then
        mkdir -p "$R/bin" "$R/sa/lib/systemd"
        cp -a /lib/systemd/system "$R/sa/lib/systemd/"
        cp "$unit" "$R/sa/lib/systemd/system/"
        mkdir -p "$R/sa/bin" "$R/sa/usr/bin"
        cp /bin/kill "$R/sa/bin/"
        cp "$R/usr/bin/cityhub" "$R/sa/usr/bin/"
        if ! systemd-analyze verify --man=no --root="$R/sa" /lib/systemd/system/cityhub.service \
            >"$T/$b.verify" 2>&1 || [ -s "$T/$b.verify" ]; then
            cat "$T/$b.verify"
            fail "$b: systemd-analyze verify"
        fi
        echo "$b: systemd-analyze verify: ok"
    else
        echo "$b: systemd-analyze not here: the unit's syntax is not verified"
    fi

    # The man page renders without a warning.
    if command -v man >/dev/null; then
        MANWIDTH=80 man --warnings -l "$R/usr/share/man/man8/cityhub.8.gz" 2>"$T/$b.man" >/dev/null
        [ -s "$T/$b.man" ] && { cat "$T/$b.man"; fail "$b: man page warnings"; }
    fi
    # lintian: no error or warning (the maintainer address of a build without
    # FIRMWARE_MAINTAINER is a placeholder, allowed here).
    if command -v lintian >/dev/null; then
        lintian --suppress-tags bogus-mail-host,bogus-mail-host-in-debian-changelog "$deb" \
            2>&1 | grep -v 'running with root privileges' >"$T/$b.lintian" || true
        grep -E '^[EW]:' "$T/$b.lintian" && fail "$b: lintian"
        echo "$b: lintian: ok"
    fi
    unset -f field
}

for b in ${FIRMWARE_BOARDS:-x86_64}; do
    check_board "$b"
done

# ---- the lab board's package installed with dpkg into a throwaway root --------
# Maintainer scripts run outside a chroot (--force-script-chrootless, with
# DPKG_ROOT set to the root); adduser, getent, chown and the systemd helpers
# are stubs that record their calls.
eval "$(board_info x86_64 | grep '^FIRMWARE_DEB=')"
R=$T/dpkg-root
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$T/stubs"
touch "$R/var/lib/dpkg/status"
for s in adduser chown deb-systemd-helper deb-systemd-invoke systemctl; do
    printf '#!/bin/sh\necho "%s $*" >>"%s"\n' "$s" "$T/calls" >"$T/stubs/$s"
done
# getent passwd cityhub: absent until adduser --system made it.
printf '#!/bin/sh\ngrep -q "^adduser --system" "%s" 2>/dev/null\n' "$T/calls" >"$T/stubs/getent"
chmod 755 "$T/stubs"/*
dpkg_r() { PATH="$T/stubs:$PATH" dpkg --root="$R" --log=/dev/null --force-script-chrootless \
    --force-depends --force-not-root "$@"; }

dpkg_r -i "$FIRMWARE_DEB" || fail "dpkg -i into the throwaway root"
cat "$T/calls"
grep -qx 'adduser --system --group --home /var/lib/cityhub --no-create-home --gecos cityhub sensor hub cityhub' \
    "$T/calls" || fail "postinst did not create the system user cityhub"
grep -qx 'adduser cityhub dialout' "$T/calls" || fail "postinst did not add cityhub to dialout"
grep -qx "chown cityhub:cityhub $R/var/lib/cityhub" "$T/calls" || fail "state directory not given to cityhub"
grep -qx 'deb-systemd-helper enable cityhub.service' "$T/calls" || fail "service not enabled on first install"
grep -q 'try-restart\|start cityhub' "$T/calls" && fail "a first install must not start the service"
[ "$(stat -c %a "$R/var/lib/cityhub")" = 700 ] || fail "/var/lib/cityhub mode $(stat -c %a "$R/var/lib/cityhub")"
[ "$(stat -c %a "$R/etc/cityhub/credentials")" = 700 ] || fail "/etc/cityhub/credentials not 0700"
[ -f "$R/lib/systemd/system/cityhub.service" ] || fail "unit not installed"
dpkg_r -s cityhub | grep -q '^Status: install ok installed' || fail "dpkg does not list cityhub as installed"
dpkg_r -s cityhub | grep -q '^ /etc/cityhub/cityhub.yaml [0-9a-f]\{32\}$' ||
    fail "dpkg did not register /etc/cityhub/cityhub.yaml as a conffile"

# An upgrade keeps the technician's config and the journal; the user exists.
echo "  name: gw-site-edit   # a technician's edit" >>"$R/etc/cityhub/cityhub.yaml"
mkdir -p "$R/var/lib/cityhub/journal"
echo data >"$R/var/lib/cityhub/journal/00000000000000000001.seg"
: >"$T/calls.before"
cp "$T/calls" "$T/calls.before"
dpkg_r --force-confold -i "$FIRMWARE_DEB" || fail "dpkg -i (upgrade) into the throwaway root"
grep -q 'gw-site-edit' "$R/etc/cityhub/cityhub.yaml" || fail "an upgrade overwrote the edited config"
[ "$(grep -c '^adduser --system' "$T/calls")" -eq 1 ] || fail "an upgrade made the user again"

# remove keeps the state directory (unsent readings); purge deletes it.
dpkg_r -r cityhub || fail "dpkg -r"
[ -f "$R/var/lib/cityhub/journal/00000000000000000001.seg" ] || fail "remove deleted the journal"
[ ! -e "$R/usr/bin/cityhub" ] || fail "remove left the program"
[ -f "$R/etc/cityhub/cityhub.yaml" ] || fail "remove deleted the conffile (only purge may)"
[ -d "$R/etc/cityhub/credentials" ] || fail "remove deleted the secrets (only purge may)"
dpkg_r --purge cityhub || fail "dpkg --purge"
[ ! -e "$R/var/lib/cityhub" ] || fail "purge left /var/lib/cityhub"
[ ! -e "$R/etc/cityhub/cityhub.yaml" ] || fail "purge left the conffile"
[ ! -e "$R/etc/cityhub" ] || fail "purge left /etc/cityhub: $(find "$R/etc/cityhub")"
# ---- make install: the same set, under another PREFIX --------------------------
I=$T/inst
make -s --no-print-directory install DESTDIR="$I" PREFIX=/usr/local >"$T/install.log" 2>&1 ||
    { cat "$T/install.log"; fail "make install DESTDIR=... PREFIX=/usr/local"; }
for f in usr/local/bin/cityhub usr/local/share/cityhub/profiles/eastron-sdm630.yaml \
    usr/local/share/doc/cityhub/install.md usr/local/share/doc/cityhub/profiles/eastron-sdm630.md \
    usr/local/share/man/man8/cityhub.8 usr/local/lib/systemd/system/cityhub.service \
    etc/cityhub/cityhub.yaml; do
    [ -f "$I/$f" ] || fail "make install: no /$f"
done
[ "$(stat -c %a "$I/var/lib/cityhub")" = 700 ] || fail "make install: /var/lib/cityhub not 0700"
[ "$(stat -c %a "$I/etc/cityhub/credentials")" = 700 ] || fail "make install: credentials not 0700"
grep -qxF 'ExecStart=/usr/local/bin/cityhub run -c /etc/cityhub/cityhub.yaml' \
    "$I/usr/local/lib/systemd/system/cityhub.service" || fail "make install: the unit's ExecStart"
"$I/usr/local/bin/cityhub" --help | grep -q 'docs: /usr/local/share/doc/cityhub ' ||
    fail "make install: --help does not name /usr/local/share/doc/cityhub"
# A second install keeps the site's config.
echo "# site edit" >>"$I/etc/cityhub/cityhub.yaml"
make -s --no-print-directory install DESTDIR="$I" PREFIX=/usr/local >/dev/null 2>&1
grep -q '# site edit' "$I/etc/cityhub/cityhub.yaml" || fail "make install overwrote the config"
echo "firmware packages ok"
