"""prom_harness.py: runs the real Prometheus binary for integration tests.

PrometheusServer owns one Prometheus process: its own config file (scrape and
evaluation interval, static scrape targets, rule files) and TSDB directory in a
temp dir, listening on a free loopback port, started in its own process group
with its log captured to a file. It never touches a packaged Prometheus (the
system service on :9090, /etc/prometheus, /var/lib/prometheus): tests talk only
to the port they were given, and ready() checks that the server answering there
loaded this test's config.

    prom = PrometheusServer(tmpdir, targets=[exporter.address],
                            rule_files=[path]).start()
    prom.api("/api/v1/alerts")         # the "data" object
    prom.stop(); prom.start()          # same port, same data dir
    prom.close()                       # always: kills what is left by PID

Environment: PROMETHEUS_BIN (default /usr/bin/prometheus, installed by
packaging/install-deps.sh from Debian's `prometheus` package).
"""

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import harness

DEFAULT_BIN = "/usr/bin/prometheus"


class MissingPrometheus(Exception):
    pass


def prometheus_bin():
    """Path of the Prometheus binary, or raises MissingPrometheus with why."""
    try:
        return harness.peer_binary("PROMETHEUS_BIN", DEFAULT_BIN, "prometheus")
    except FileNotFoundError as e:
        raise MissingPrometheus(str(e))


def http_json(url, timeout=5.0, method="GET", body=None):
    """(status, decoded JSON or None, raw text) of a request (body: sent as
    JSON); status 0 when the connection failed (refused, reset, timed out)."""
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except (urllib.error.URLError, OSError):
        return 0, None, ""
    text = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(text), text
    except ValueError:
        return status, None, text


class PrometheusServer:
    def __init__(self, tmpdir, targets, rule_files=(), job="kcwatch-it-connect",
                 scrape_interval="1s", evaluation_interval="1s", port=None,
                 alertmanagers=(), extra_flags=()):
        self.binary = prometheus_bin()
        self.dir = os.path.join(tmpdir, "prometheus")
        self.data_dir = os.path.join(self.dir, "data")
        self.config_path = os.path.join(self.dir, "prometheus.yml")
        self.log_path = os.path.join(self.dir, "prometheus.log")
        os.makedirs(self.data_dir, exist_ok=True)
        self.targets = list(targets)
        self.rule_files = [os.path.abspath(p) for p in rule_files]
        self.job = job
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.port = port
        self.alertmanagers = list(alertmanagers)  # "host:port" Prometheus sends alerts to
        self.extra_flags = list(extra_flags)
        self.proc = None
        self.starts = 0
        self._logs = []
        self._write_config()

    # -------------------------------------------------------- files

    def _write_config(self):
        cfg = {
            "global": {"scrape_interval": self.scrape_interval,
                       "scrape_timeout": self.scrape_interval,
                       "evaluation_interval": self.evaluation_interval},
            "rule_files": self.rule_files,
            "scrape_configs": [{"job_name": self.job,
                                "static_configs": [{"targets": self.targets}]}],
        }
        if self.alertmanagers:
            cfg["alerting"] = {"alertmanagers": [{"static_configs": [
                {"targets": self.alertmanagers}]}]}
        with open(self.config_path, "w") as f:
            f.write(harness.to_yaml(cfg))

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    # -------------------------------------------------------- process

    def start(self, timeout=None):
        """Starts Prometheus and waits until it is ready. The first start picks
        a free port (another one if that was taken meanwhile); later starts
        reuse the port and the data dir."""
        timeout = harness.DEFAULT_TIMEOUT if timeout is None else timeout
        tries = 1 if self.port is not None else 3
        for attempt in range(tries):
            if self.port is None or attempt > 0:
                self.port = harness.free_port()
            self._spawn()
            err = self._wait_ready(timeout)
            if err is None:
                return self
            in_use = "address already in use" in self.log_tail(20)
            self._kill()
            if not (in_use and tries > 1):
                raise AssertionError("Prometheus did not get ready on %s: %s\n"
                                     "--- prometheus log tail ---\n%s"
                                     % (self.url, err, self.log_tail()))
        raise AssertionError("Prometheus found no free port\n%s" % self.log_tail())

    def _spawn(self):
        log = open(self.log_path, "ab")
        self._logs.append(log)
        self.starts += 1
        log.write(("=== start %d on 127.0.0.1:%d\n" % (self.starts, self.port)).encode())
        log.flush()
        self.proc = subprocess.Popen(
            [self.binary,
             "--config.file=" + self.config_path,
             "--storage.tsdb.path=" + self.data_dir,
             "--web.listen-address=127.0.0.1:%d" % self.port,
             "--log.level=info"] + self.extra_flags,
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.dir,
            start_new_session=True)

    def _wait_ready(self, timeout):
        """None once /-/ready answers 200 and the config there is ours, else
        why not (process exited, deadline)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                return "exited with %s" % self.proc.returncode
            status, _, _ = http_json(self.url + "/-/ready", timeout=1.0)
            if status == 200:
                # The port must be served by this process with this config,
                # not by a packaged Prometheus or another test's.
                st, body, _ = http_json(self.url + "/api/v1/status/config")
                conf = (body or {}).get("data", {}).get("yaml", "") if st == 200 else ""
                if self.config_path not in self._flags() or self.job not in conf:
                    return "the server on %s is not this test's Prometheus" % self.url
                return None
            if time.monotonic() >= deadline:
                return "not ready after %.1fs" % timeout
            time.sleep(0.05)

    def _flags(self):
        st, body, _ = http_json(self.url + "/api/v1/status/flags")
        if st != 200 or not body:
            return ""
        return (body.get("data") or {}).get("config.file", "")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=20.0):
        """SIGTERM and wait for a clean exit (the TSDB is closed, the port
        free); kills the process group if it does not exit in time."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def _kill(self):
        if self.proc is None:
            return
        harness.kill_group(self.proc)
        self.proc = None

    def close(self):
        """Always runs: kills the process (group) by PID, closes log files."""
        self._kill()
        for f in self._logs:
            f.close()
        self._logs = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -------------------------------------------------------- API

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(lines[-n:])

    def api(self, path, **params):
        """The `data` of a successful API answer; raises otherwise."""
        url = self.url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        status, body, text = http_json(url)
        if status != 200 or not isinstance(body, dict) or body.get("status") != "success":
            raise AssertionError("Prometheus %s answered %s: %s" % (path, status, text[:500]))
        return body["data"]

    def query(self, expr):
        """Instant vector result of expr: [(labels, float value)]."""
        data = self.api("/api/v1/query", query=expr)
        if data.get("resultType") != "vector":
            raise AssertionError("query %r: not a vector: %r" % (expr, data))
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def targets_up(self):
        """True when every configured target had a successful scrape."""
        try:
            data = self.api("/api/v1/targets", state="active")
        except AssertionError:
            return False
        active = [t for t in data.get("activeTargets", []) if t.get("scrapePool") == self.job]
        return len(active) == len(self.targets) and all(t.get("health") == "up"
                                                        for t in active)

    def rule_groups(self):
        return self.api("/api/v1/rules").get("groups", [])

    def group_evaluations(self):
        """{group name: lastEvaluation} (RFC3339 text) for progress checks."""
        return {g["name"]: g.get("lastEvaluation") for g in self.rule_groups()}
