#!/bin/sh
# Installs what kcwatch needs to build, test and run its demo on Debian 12,
# from Debian's packages only. Safe to run again: apt-get skips what is there.
set -eu
pkgs="build-essential cmake pkg-config python3
  libuv1-dev libcurl4-openssl-dev libjansson-dev libyaml-dev libpcre2-dev
  libsqlite3-dev libmicrohttpd-dev libsystemd-dev libcmocka-dev valgrind"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
