#!/usr/bin/env bash
# Builds the Debian package from this source tree with prefix /usr, checks
# what it contains, installs it on this machine with dpkg, runs the installed
# `kcwatch check` on the installed config (every shipped rule pack must load),
# verifies the unit with systemd-analyze, and purges the package again.
#
#   tests/package/test_deb.sh SOURCE_DIR BUILT_KCWATCH
#
# BUILT_KCWATCH (the build tree's binary) counts the rules of each shipped
# pack, so the test knows what the installed config must load. Needs root
# (dpkg); exits 77 (ctest: skipped) otherwise.
set -euo pipefail
src=$(cd "$1" && pwd)
built=$2
if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: installing a package needs root"
    exit 77
fi
if dpkg-query -W -f='${Status}' kcwatch 2>/dev/null | grep -q "install ok installed"; then
    echo "FAIL: a kcwatch package is already installed on this machine; not touching it"
    exit 1
fi
work=$(mktemp -d /tmp/kcw-deb-XXXXXX)
installed=""
cleanup() {
    if [ -n "$installed" ]; then
        dpkg --purge kcwatch >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

echo "--- build with prefix /usr and cpack"
cmake -S "$src" -B "$work/build" -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DKCWATCH_TESTS=OFF >"$work/cmake.log" 2>&1 || { tail -30 "$work/cmake.log"; fail "cmake"; }
cmake --build "$work/build" -j "$(nproc)" >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; fail "build"; }
(cd "$work/build" && cpack -G DEB >"$work/cpack.log" 2>&1) || { tail -30 "$work/cpack.log"; fail "cpack"; }
deb=$(ls "$work"/build/kcwatch_*.deb)
echo "package: $(basename "$deb")"

echo "--- contents"
dpkg-deb -c "$deb" >"$work/contents"
for f in ./usr/bin/kcwatch ./etc/kcwatch/kcwatch.yaml ./usr/lib/systemd/system/kcwatch.service \
         ./usr/share/man/man8/kcwatch.8.gz ./usr/share/man/man5/kcwatch.yaml.5.gz \
         ./usr/share/bash-completion/completions/kcwatch \
         ./usr/share/kcwatch/rules.d/connect-status.yaml ./usr/share/kcwatch/rules.d/connect-jmx.yaml \
         ./usr/share/kcwatch/rules.d/kcwatch-self.yaml \
         ./usr/share/doc/kcwatch/kcwatch.example.yaml; do
    grep -q " $f\$" "$work/contents" || fail "package lacks $f"
done
if grep -q "rules.d/tests" "$work/contents"; then fail "rule tests must not be installed"; fi
dpkg-deb -I "$deb" conffiles | grep -qx /etc/kcwatch/kcwatch.yaml || fail "kcwatch.yaml is not a conffile"
dpkg-deb -I "$deb" postinst | grep -q "adduser --system" || fail "postinst does not create the user"
dpkg-deb -f "$deb" Depends | grep -q "libuv1" || fail "Depends lacks the shared libraries: $(dpkg-deb -f "$deb" Depends)"

echo "--- what the shipped packs hold"
printf 'rule_files: []\n' >"$work/empty.yaml"
groups=0 rules=0 packs=0
for pack in "$src"/rules.d/*.yaml; do
    # exit 3: valid, but no Prometheus answered to verify the PromQL (kcwatch(8))
    rc=0
    line=$("$built" check -c "$work/empty.yaml" "$pack") || rc=$?
    [ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || fail "check $pack: exit $rc: $line"
    g=$(echo "$line" | sed -n 's/.* \([0-9]*\) rule groups\{0,1\}, .*/\1/p')
    r=$(echo "$line" | sed -n 's/.* \([0-9]*\) rules\{0,1\}$/\1/p')
    [ -n "$g" ] && [ -n "$r" ] && [ "$r" -gt 0 ] || fail "cannot count $pack: $line"
    groups=$((groups + g)) rules=$((rules + r)) packs=$((packs + 1))
done
[ "$packs" -eq 3 ] || fail "expected 3 shipped rule packs, found $packs"

echo "--- install"
installed=yes
dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i"; }
getent passwd kcwatch >/dev/null || fail "postinst did not create the kcwatch user"
[ "$(stat -c %G /etc/kcwatch/kcwatch.yaml)" = kcwatch ] || fail "config not readable by group kcwatch"
rc=0
out=$(/usr/bin/kcwatch check -c /etc/kcwatch/kcwatch.yaml) || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || fail "installed check: exit $rc: $out"
echo "$out"
want="$groups rule group"
echo "$out" | grep -q "$want" || fail "installed config should load $groups groups from the packs"
echo "$out" | grep -q " $rules rules\$" || fail "installed config should load $rules rules from the packs"
grep -q "^  state_dir: /var/lib/kcwatch" /etc/kcwatch/kcwatch.yaml || fail "state_dir of the service"
man -w kcwatch >/dev/null 2>&1 || [ ! -x /usr/bin/man ] || fail "man kcwatch not found"

echo "--- unit"
if command -v systemd-analyze >/dev/null; then
    # verify also checks that ExecStart exists and the unit's settings parse.
    verify=$(systemd-analyze verify /usr/lib/systemd/system/kcwatch.service 2>&1) || {
        echo "$verify"; fail "systemd-analyze verify"; }
    if [ -n "$verify" ]; then echo "$verify"; fail "systemd-analyze verify printed warnings"; fi
    echo "systemd-analyze verify: clean"
else
    fail "systemd-analyze is missing (packaging/install-deps.sh installs systemd)"
fi

echo "--- purge"
dpkg --purge kcwatch >/dev/null 2>&1 || fail "dpkg --purge"
installed=""
[ ! -e /usr/bin/kcwatch ] || fail "/usr/bin/kcwatch left after purge"
[ ! -e /etc/kcwatch/kcwatch.yaml ] || fail "conffile left after purge"
if getent passwd kcwatch >/dev/null; then fail "user kcwatch left after purge"; fi
echo "package: 1 passed, 0 failed"
