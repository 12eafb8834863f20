#!/usr/bin/env python3
"""jmx_exporter.py: a fake Prometheus JMX exporter of one Kafka Connect worker.

It serves GET /metrics in the Prometheus text exposition format (0.0.4) the
way the JMX exporter java agent does with the metric names of the shipped
packaging/jmx-exporter/kafka-connect.yml that rules.d/connect-jmx.yaml
assumes (counters end in _total). Unlike the real 1.x agent (which the
stack tests in tests/stack run) every series is untyped and label sets carry
the 0.x agent's trailing comma ({connector="x",task="0",}): Prometheus
stores both alike. A HELP line names the MBean attribute, numbers are Java-style
("0.0", "1234567.0", "1.0E-4"), followed by the agent's own
jmx_scrape_duration_seconds and jmx_scrape_error.

Tests own the values and change them while Prometheus scrapes:

    exp = JmxExporter().start()
    exp.add_worker_defaults()                       # a healthy idle worker
    exp.add_task("orders-sink", 0, "sink")          # a healthy running task
    exp.set("kafka_connect_task_error_metrics_total_record_errors_total",
            {"connector": "orders-sink", "task": "0"}, 1234567)
    exp.remove("kafka_connect_connect_worker_rebalance_metrics_rebalancing")
    exp.wait_scrapes(2)                             # scraped twice since now
    exp.stop()

set() creates or replaces one series (metric name + exact label set);
remove() drops one series, or every series of a metric when labels is None.
Anything /metrics does not know answers 404. fail_scrapes(True) makes /metrics
answer 500 (a target that is down to Prometheus).

CLI (demo): python3 jmx_exporter.py --port 5556 --task orders-sink:0:sink
serves a healthy worker with those tasks until SIGINT/SIGTERM.
"""

import argparse
import math
import re
import signal
import socketserver
import sys
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

# The MBean type and attribute of each metric family the fake knows, for
# realistic HELP lines: (metric name prefix, MBean type).
_FAMILIES = (
    ("kafka_connect_connect_worker_rebalance_metrics_", "connect-worker-rebalance-metrics"),
    ("kafka_connect_connect_worker_metrics_", "connect-worker-metrics"),
    ("kafka_connect_connector_task_metrics_", "connector-task-metrics"),
    ("kafka_connect_source_task_metrics_", "source-task-metrics"),
    ("kafka_connect_sink_task_metrics_", "sink-task-metrics"),
    ("kafka_connect_task_error_metrics_", "task-error-metrics"),
)

# Attributes per MBean type with the value of a healthy, idle worker/task.
WORKER_METRICS = {
    "connector_count": 0.0, "task_count": 0.0,
    "connector_startup_attempts_total": 0.0, "connector_startup_failure_total": 0.0,
    "connector_startup_success_total": 0.0, "connector_startup_failure_percentage": 0.0,
    "connector_startup_success_percentage": 0.0,
    "task_startup_attempts_total": 0.0, "task_startup_failure_total": 0.0,
    "task_startup_success_total": 0.0, "task_startup_failure_percentage": 0.0,
    "task_startup_success_percentage": 0.0,
}
WORKER_CONNECTOR_METRICS = {
    "connector_total_task_count": 0.0, "connector_running_task_count": 0.0,
    "connector_paused_task_count": 0.0, "connector_failed_task_count": 0.0,
    "connector_unassigned_task_count": 0.0, "connector_destroyed_task_count": 0.0,
    "connector_restarting_task_count": 0.0,
}
REBALANCE_METRICS = {
    "completed_rebalances_total": 1.0, "epoch": 1.0, "rebalancing": 0.0,
    "rebalance_avg_time_ms": 40.0, "rebalance_max_time_ms": 40.0,
    "time_since_last_rebalance_ms": 60000.0,
}
CONNECTOR_TASK_METRICS = {
    "batch_size_avg": 0.0, "batch_size_max": 0.0, "offset_commit_avg_time_ms": 2.0,
    "offset_commit_max_time_ms": 5.0, "offset_commit_failure_percentage": 0.0,
    "offset_commit_success_percentage": 1.0, "pause_ratio": 0.0, "running_ratio": 1.0,
}
SOURCE_TASK_METRICS = {
    "poll_batch_avg_time_ms": 1.0, "poll_batch_max_time_ms": 3.0,
    "source_record_active_count": 0.0, "source_record_poll_rate": 0.0,
    "source_record_poll_total": 0.0, "source_record_write_rate": 0.0,
    "source_record_write_total": 0.0,
}
SINK_TASK_METRICS = {
    "offset_commit_completion_total": 0.0, "offset_commit_skip_total": 0.0,
    "partition_count": 1.0, "put_batch_avg_time_ms": 1.0, "put_batch_max_time_ms": 3.0,
    "sink_record_active_count": 0.0, "sink_record_lag_max": 0.0,
    "sink_record_read_rate": 0.0, "sink_record_read_total": 0.0,
    "sink_record_send_rate": 0.0, "sink_record_send_total": 0.0,
}
TASK_ERROR_METRICS = {
    "deadletterqueue_produce_failures_total": 0.0, "deadletterqueue_produce_requests_total": 0.0,
    "last_error_timestamp": 0.0, "total_errors_logged_total": 0.0, "total_record_errors_total": 0.0,
    "total_record_failures_total": 0.0, "total_records_skipped_total": 0.0, "total_retries_total": 0.0,
}


def java_double(v):
    """Text of v as Java's Double.toString writes it (what the agent sends):
    plain decimals in [1e-3, 1e7), else d.dddE[-]n; always a fraction digit."""
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    if v == 0:
        return "-0.0" if math.copysign(1.0, v) < 0 else "0.0"
    if 1e-3 <= abs(v) < 1e7:
        return repr(v)  # Python writes this range in plain decimals too
    t = Decimal(repr(abs(v))).normalize().as_tuple()
    digits = "".join(str(d) for d in t.digits)
    exp10 = t.exponent + len(digits) - 1
    return "%s%s.%sE%d" % ("-" if v < 0 else "", digits[0], digits[1:] or "0", exp10)


def _escape(v):
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _help_for(name, labels):
    for prefix, mtype in _FAMILIES:
        if name.startswith(prefix):
            attr = name[len(prefix):].replace("_", "-")
            props = "type=%s" % mtype
            if "connector" in labels and labels["connector"] != "aggregate":
                props += ", connector=%s" % labels["connector"]
            if "task" in labels:
                props += ", task=%s" % labels["task"]
            return "%s (kafka.connect<%s><>%s)" % (attr, props, attr)
    return name


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self):
        # Skip HTTPServer's getfqdn(): slow without DNS, useless on loopback.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = host
        self.server_port = port

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "jmx_exporter-fake"
    sys_version = ""

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        exp = self.server.exporter
        path = self.path.split("?", 1)[0]
        if path != "/metrics":
            self._answer(404, b"Not Found\n", "text/plain")
            return
        status, body = exp._scrape(self.headers.get("User-Agent", ""))
        self._answer(status, body, CONTENT_TYPE if status == 200 else "text/plain")

    def _answer(self, status, body, ctype):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class JmxExporter:
    """One worker's /metrics; thread-safe setters for the tests."""

    def __init__(self, host="127.0.0.1", port=0):
        self._host = host
        self._port = port
        self._lock = threading.Condition()
        self._series = {}        # name -> {frozenset(labels.items()): value}
        self._order = []         # metric names in first-set order
        self._scrapes = 0
        self._fail = False
        self._server = None
        self._thread = None
        self.user_agents = []    # of the last scrapes (bounded)

    # -------------------------------------------------------- lifecycle

    def start(self):
        self._server = _Server((self._host, self._port), _Handler)
        self._server.exporter = self
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="jmx-exporter", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self):
        return self._port

    @property
    def address(self):
        """host:port, as a Prometheus static target."""
        return "%s:%d" % (self._host, self._port)

    @property
    def url(self):
        return "http://%s/metrics" % self.address

    # -------------------------------------------------------- values

    def set(self, metric, labels=None, value=0.0):
        """Creates or replaces the series metric{labels} with value."""
        if not _NAME.match(metric):
            raise ValueError("bad metric name %r" % (metric,))
        labels = dict(labels or {})
        for k, v in labels.items():
            if not _LABEL.match(k) or k.startswith("__"):
                raise ValueError("bad label name %r" % (k,))
            labels[k] = str(v)
        key = frozenset(labels.items())
        with self._lock:
            if metric not in self._series:
                self._series[metric] = {}
                self._order.append(metric)
            self._series[metric][key] = float(value)

    def add(self, metric, labels=None, delta=1.0):
        """Adds delta to a series (0 when absent); returns the new value."""
        with self._lock:
            cur = self.get(metric, labels)
            new = (cur or 0.0) + delta
            self.set(metric, labels, new)
            return new

    def get(self, metric, labels=None):
        key = frozenset((k, str(v)) for k, v in (labels or {}).items())
        with self._lock:
            return self._series.get(metric, {}).get(key)

    def remove(self, metric, labels=None):
        """Drops one series, or the whole metric when labels is None.
        Returns how many series went away."""
        with self._lock:
            fam = self._series.get(metric)
            if fam is None:
                return 0
            if labels is None:
                n = len(fam)
                del self._series[metric]
                self._order.remove(metric)
                return n
            key = frozenset((k, str(v)) for k, v in labels.items())
            if key not in fam:
                return 0
            del fam[key]
            if not fam:
                del self._series[metric]
                self._order.remove(metric)
            return 1

    def clear(self):
        with self._lock:
            self._series.clear()
            self._order.clear()

    def fail_scrapes(self, on=True):
        """While on, /metrics answers 500 (Prometheus marks the target down)."""
        with self._lock:
            self._fail = bool(on)

    # -------------------------------------------------------- presets

    def add_worker_defaults(self, connectors=0, tasks=0):
        """The worker-wide MBeans of a healthy worker (rebalance done)."""
        for attr, v in WORKER_METRICS.items():
            self.set("kafka_connect_connect_worker_metrics_" + attr, {"connector": "aggregate"},
                     v)
        self.set("kafka_connect_connect_worker_metrics_connector_count",
                 {"connector": "aggregate"}, connectors)
        self.set("kafka_connect_connect_worker_metrics_task_count",
                 {"connector": "aggregate"}, tasks)
        for attr, v in REBALANCE_METRICS.items():
            self.set("kafka_connect_connect_worker_rebalance_metrics_" + attr, None, v)

    def add_connector(self, connector, tasks=1, running=None):
        """The per-connector worker MBean: all of its tasks here RUNNING."""
        labels = {"connector": connector}
        for attr, v in WORKER_CONNECTOR_METRICS.items():
            self.set("kafka_connect_connect_worker_metrics_" + attr, labels, v)
        self.set("kafka_connect_connect_worker_metrics_connector_total_task_count", labels,
                 tasks)
        self.set("kafka_connect_connect_worker_metrics_connector_running_task_count", labels,
                 tasks if running is None else running)

    def add_task(self, connector, task, kind="sink"):
        """The task MBeans of a healthy RUNNING source or sink task."""
        labels = {"connector": connector, "task": str(task)}
        specific = SINK_TASK_METRICS if kind == "sink" else SOURCE_TASK_METRICS
        for attr, v in CONNECTOR_TASK_METRICS.items():
            self.set("kafka_connect_connector_task_metrics_" + attr, labels, v)
        for attr, v in specific.items():
            self.set("kafka_connect_%s_task_metrics_%s" % (kind, attr), labels, v)
        for attr, v in TASK_ERROR_METRICS.items():
            self.set("kafka_connect_task_error_metrics_" + attr, labels, v)

    # -------------------------------------------------------- scrapes

    def scrape_count(self):
        with self._lock:
            return self._scrapes

    def wait_scrapes(self, n, timeout=20.0):
        """Waits until n more scrapes were answered; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            target = self._scrapes + n
            while self._scrapes < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
            return True

    def render(self):
        """The exposition text /metrics answers right now."""
        with self._lock:
            return self._render_locked(0.0)

    def _render_locked(self, duration):
        out = []
        for name in self._order:
            fam = self._series[name]
            any_labels = dict(next(iter(fam))) if fam else {}
            out.append("# HELP %s %s\n" % (name, _help_for(name, any_labels)))
            out.append("# TYPE %s untyped\n" % name)
            for key in sorted(fam, key=lambda k: sorted(k)):
                labels = sorted(key)
                if labels:
                    text = "".join('%s="%s",' % (k, _escape(v)) for k, v in labels)
                    out.append("%s{%s} %s\n" % (name, text, java_double(fam[key])))
                else:
                    out.append("%s %s\n" % (name, java_double(fam[key])))
        out.append("# HELP jmx_scrape_duration_seconds Time this JMX scrape took, "
                   "in seconds.\n# TYPE jmx_scrape_duration_seconds gauge\n"
                   "jmx_scrape_duration_seconds %s\n" % java_double(duration))
        out.append("# HELP jmx_scrape_error Non-zero if this scrape failed.\n"
                   "# TYPE jmx_scrape_error gauge\njmx_scrape_error 0.0\n")
        return "".join(out)

    def _scrape(self, user_agent):
        t0 = time.monotonic()
        with self._lock:
            self._scrapes += 1
            self.user_agents = (self.user_agents + [user_agent])[-20:]
            self._lock.notify_all()
            if self._fail:
                return 500, b"scrape failed (fake)\n"
            return 200, self._render_locked(time.monotonic() - t0).encode()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5556)
    ap.add_argument("--task", action="append", default=[],
                    help="CONNECTOR:TASK:source|sink (repeatable)")
    args = ap.parse_args(argv)
    exp = JmxExporter(args.host, args.port)
    connectors = {}
    for spec in args.task:
        parts = spec.split(":")
        if len(parts) != 3 or parts[2] not in ("source", "sink"):
            ap.error("--task wants CONNECTOR:TASK:source|sink, got %r" % spec)
        connectors.setdefault(parts[0], []).append((parts[1], parts[2]))
    exp.add_worker_defaults(connectors=len(connectors),
                            tasks=sum(len(t) for t in connectors.values()))
    for c, tasks in connectors.items():
        exp.add_connector(c, tasks=len(tasks))
        for t, kind in tasks:
            exp.add_task(c, t, kind)
    exp.start()
    print(exp.url, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    exp.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
