"""am_harness.py: runs the real Alertmanager binary for integration tests.

AlertmanagerServer owns one `prometheus-alertmanager` process (Debian's
package): its own config (one route to a webhook receiver of the test's, short
group timings) and data dir in a temp dir, listening on free loopback ports,
in its own process group with its log captured. Several servers can form an
HA cluster (peers=[other.cluster_address]). It never touches a packaged
Alertmanager (the system service on :9093, /etc/prometheus): tests talk only
to the ports they were given, and start() checks that the server answering
there runs this test's config.

    am = AlertmanagerServer(tmpdir, webhook_url=sink.url + "/am").start()
    am.alerts()                        # GET /api/v2/alerts
    am.close()                         # always: kills what is left by PID

Environment: ALERTMANAGER_BIN (default /usr/bin/prometheus-alertmanager,
installed by packaging/install-deps.sh).
"""

import os
import subprocess
import time

import harness
from prom_harness import http_json

DEFAULT_BIN = "/usr/bin/prometheus-alertmanager"


def alertmanager_bin():
    return harness.peer_binary("ALERTMANAGER_BIN", DEFAULT_BIN, "prometheus-alertmanager")


class AlertmanagerServer:
    def __init__(self, tmpdir, webhook_url, name="am", peers=(), cluster=False):
        self.binary = alertmanager_bin()
        self.name = name
        self.dir = os.path.join(tmpdir, name)
        self.data_dir = os.path.join(self.dir, "data")
        self.config_path = os.path.join(self.dir, "alertmanager.yml")
        self.log_path = os.path.join(self.dir, "alertmanager.log")
        os.makedirs(self.data_dir, exist_ok=True)
        self.port = harness.free_port()
        self.cluster_port = harness.free_port() if cluster or peers else None
        self.peers = list(peers)
        self.proc = None
        self._log = None
        self.marker = "kcwatch-it-%s-%d" % (name, os.getpid())
        cfg = {
            "route": {"receiver": self.marker, "group_by": ["alertname", "cluster", "connector"],
                      "group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": self.marker,
                           "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}],
        }
        with open(self.config_path, "w") as f:
            f.write(harness.to_yaml(cfg))

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def cluster_address(self):
        return "127.0.0.1:%d" % self.cluster_port

    def start(self, timeout=None):
        timeout = harness.DEFAULT_TIMEOUT if timeout is None else timeout
        self._log = open(self.log_path, "ab")
        args = [self.binary, "--config.file=" + self.config_path,
                "--storage.path=" + self.data_dir,
                "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=debug"]
        if self.cluster_port:
            args += ["--cluster.listen-address=127.0.0.1:%d" % self.cluster_port,
                     "--cluster.advertise-address=127.0.0.1:%d" % self.cluster_port,
                     "--cluster.peer-timeout=1s", "--cluster.gossip-interval=50ms",
                     "--cluster.pushpull-interval=1s", "--cluster.settle-timeout=2s"]
            args += ["--cluster.peer=" + p for p in self.peers]
        else:
            args.append("--cluster.listen-address=")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, cwd=self.dir, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("Alertmanager exited with %s\n%s"
                                     % (self.proc.returncode, self.log_tail()))
            st, body, _ = http_json(self.url + "/api/v2/status", timeout=1.0)
            if st == 200 and isinstance(body, dict):
                # This test's server: its config names our receiver.
                if self.marker not in ((body.get("config") or {}).get("original") or ""):
                    raise AssertionError("the server on %s is not this test's Alertmanager"
                                         % self.url)
                return self
            if time.monotonic() >= deadline:
                raise AssertionError("Alertmanager not ready on %s\n%s"
                                     % (self.url, self.log_tail()))
            time.sleep(0.05)

    def alerts(self, **labels):
        """GET /api/v2/alerts (active, silenced, inhibited, unprocessed),
        filtered to those whose labels include `labels`."""
        st, body, text = http_json(self.url + "/api/v2/alerts")
        if st != 200 or not isinstance(body, list):
            raise AssertionError("GET /api/v2/alerts answered %s: %s" % (st, text[:300]))
        return [a for a in body
                if all((a.get("labels") or {}).get(k) == v for k, v in labels.items())]

    def log_tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""

    def close(self):
        if self.proc is not None:
            harness.kill_group(self.proc)
            self.proc = None
        if self._log:
            self._log.close()
            self._log = None


def start_pair(tmpdir, webhook_url):
    """Two Alertmanagers clustered on loopback (am1, am2), both routing to
    webhook_url; started, or neither left running."""
    am1 = AlertmanagerServer(tmpdir, webhook_url, name="am1", cluster=True)
    try:
        am1.start()
        am2 = AlertmanagerServer(tmpdir, webhook_url, name="am2", peers=[am1.cluster_address])
        am2.start()
    except BaseException:
        am1.close()
        raise
    return am1, am2
