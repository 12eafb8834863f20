#!/bin/sh
# Installs what kcwatch needs to build, test and run its demo on Debian 12,
# from Debian's packages only. Safe to run again: apt-get skips what is there.
#
# systemd is here for systemd-analyze (the package test verifies the unit),
# dpkg-dev for cpack's dpkg-shlibdeps, man-db for man.
# maven and openjdk-17-jdk-headless run the real Kafka/Connect stack of
# tests/stack (the jars come from Maven Central through mvn); python3-yaml
# reads the shipped YAML in those tests.
#
# clang and its runtime build the libFuzzer targets (tests/fuzz).
# `prometheus` and `prometheus-alertmanager` are here for their binaries only
# (the integration tests start /usr/bin/prometheus and
# /usr/bin/prometheus-alertmanager on their own loopback ports, promtool
# checks rules.d). Their packages would start a system Prometheus on :9090 and
# an Alertmanager on :9093/:9094 from their postinst; we keep them from
# starting during the install (policy-rc.d), and stop and disable any that an
# earlier install left running, so nothing packaged is listening.
# `victoria-metrics` likewise, for /usr/bin/vmalert, which bench/rules runs
# beside kcwatch on the same rules. `libjsmn-dev` is the header-only JSON
# tokenizer daemon/status_index.c splits status bodies with.
# Its package would start a system Prometheus on :9090 from its postinst; we
# keep it from starting during the install (policy-rc.d), and stop and disable
# one that an earlier install left running, so nothing packaged is listening.
# `etcd-server` and `etcd-client` likewise: the HA tests start their own etcd
# members on loopback ports; the packaged etcd.service (client port 2379) is
# kept stopped and disabled the same way.
# `chromium` runs headless in tests/integration/test_status_page.py, which
# loads the status page, reads its DOM and takes a screenshot.
set -eu
pkgs="build-essential cmake pkg-config python3
  libuv1-dev libcurl4-openssl-dev libjansson-dev libyaml-dev libpcre2-dev
  libsqlite3-dev libmicrohttpd-dev libsystemd-dev libcmocka-dev valgrind
  clang libclang-rt-14-dev libjsmn-dev victoria-metrics
  prometheus prometheus-alertmanager systemd dpkg-dev man-db maven openjdk-17-jdk-headless
  python3-yaml etcd-server etcd-client chromium"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    # invoke-rc.d asks /usr/sbin/policy-rc.d whether a postinst may start a
    # service; exit 101 means no. Only add one (and remove it again) when
    # the machine has none of its own.
    policy=/usr/sbin/policy-rc.d
    own_policy=""
    if [ ! -e "$policy" ]; then
        own_policy=yes
        trap 'rm -f "$policy"' EXIT
        printf '#!/bin/sh\n# kcwatch install-deps.sh: no service starts now\nexit 101\n' >"$policy"
        chmod 755 "$policy"
    fi
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
    if [ -n "$own_policy" ]; then
        rm -f "$policy"
        trap - EXIT
    fi
fi
# The packaged service, if it runs anyway (an earlier install, a policy that
# allowed it), would answer on :9090, kcwatch's default Prometheus URL: stop it
# and keep it from starting at boot. The tests never rely on it.
# The same holds for Alertmanager on :9093, etcd on :2379 and
# victoria-metrics.
keep_stopped() {
    svc=$1
    pidfile=$2
    [ -x "/etc/init.d/$svc" ] || [ -e "/lib/systemd/system/$svc.service" ] || return 0
    if [ -d /run/systemd/system ]; then
        systemctl stop "$svc.service" >/dev/null 2>&1 || true
        systemctl disable "$svc.service" >/dev/null 2>&1 || true
    else
        if [ -e "$pidfile" ] && [ -x "/etc/init.d/$svc" ]; then
            "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
        fi
        deb-systemd-helper disable "$svc.service" >/dev/null 2>&1 || true
    fi
    update-rc.d "$svc" disable >/dev/null 2>&1 || true
}
keep_stopped prometheus /run/prometheus/prometheus.pid
keep_stopped prometheus-alertmanager /run/prometheus/prometheus-alertmanager.pid
keep_stopped etcd /run/etcd.pid
# Same for victoria-metrics: only its vmalert binary is used, by bench/.
keep_stopped victoria-metrics /run/victoria-metrics.pid
