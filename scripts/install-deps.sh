#!/bin/sh
# Install the Debian packages cityhub needs to build, test and run its demo.
# Only what is missing is installed; a failing index (e.g. a mirror's
# security suite for a foreign architecture) does not stop the install.
set -u
PKGS="build-essential pkg-config libmodbus-dev libpaho-mqtt-dev libcurl4-openssl-dev
zlib1g-dev libssl-dev libyaml-dev libjansson-dev libcmocka-dev influxdb influxdb-client mosquitto mosquitto-clients
victoria-metrics
socat jq openssl python3 clang clang-format libclang-rt-14-dev curl procps ca-certificates
libmicrohttpd-dev libsystemd-dev prometheus chromium"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "install-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q || echo "install-deps: apt-get update reported errors; continuing"
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
