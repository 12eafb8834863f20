#!/usr/bin/env python3
"""A slow Prometheus delays a group's evaluation; it does not pile up queries.

The real Prometheus sits behind a small delaying proxy (each query answered
2.5 s late) while kcwatch evaluates a two-rule group every second. The proxy
counts the queries in flight: never more than the group's two rules at once,
evaluation ticks that fall due meanwhile are skipped (and logged), and the
alert still fires from the delayed answers."""

import os
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import prom_harness  # noqa: E402
from harness import Harness  # noqa: E402
from jmx_exporter import JmxExporter  # noqa: E402

DELAY = 2.5
METRIC = "kafka_connect_connect_worker_rebalance_metrics_rebalancing"

RULES = """\
groups:
  - name: slow
    interval: 1s
    rules:
      - alert: RebalanceStuck
        expr: %s == 1
        for: 0s
        labels: {severity: critical}
      - alert: NoWorkers
        expr: absent(up)
        for: 0s
""" % METRIC


class DelayProxy:
    """Forwards GET/POST to upstream, answering /api/v1/query DELAY late."""

    def __init__(self, upstream):
        self.upstream = upstream.rstrip("/")
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.queries = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):
                pass

            def _forward(self, body=None):
                is_query = self.path.startswith("/api/v1/query")
                if is_query:
                    with proxy.lock:
                        proxy.in_flight += 1
                        proxy.queries += 1
                        proxy.max_in_flight = max(proxy.max_in_flight, proxy.in_flight)
                try:
                    if is_query:
                        time.sleep(DELAY)  # the fault this test injects, not synchronisation
                    req = urllib.request.Request(proxy.upstream + self.path, data=body,
                                                 method=self.command)
                    ct = self.headers.get("Content-Type")
                    if ct:
                        req.add_header("Content-Type", ct)
                    try:
                        with urllib.request.urlopen(req, timeout=10) as r:
                            status, data = r.status, r.read()
                    except urllib.error.HTTPError as e:
                        status, data = e.code, e.read()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    if is_query:
                        with proxy.lock:
                            proxy.in_flight -= 1

            def do_GET(self):
                self._forward()

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                self._forward(self.rfile.read(n))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_slow_prometheus_does_not_pile_up():
    prom_harness.prometheus_bin()
    exporter = JmxExporter().start()
    with Harness("slow-prom", workers=1) as h:
        prom = proxy = None
        try:
            exporter.set(METRIC, None, 1)
            rules_path = h.write("slow-rules.yaml", RULES)
            prom = prom_harness.PrometheusServer(h.tmp, [exporter.address], []).start()
            h.wait_for(prom.targets_up, what="Prometheus to scrape the fixture exporter")
            proxy = DelayProxy(prom.url)
            h.start_daemon(overrides={"prometheus": {"url": proxy.url, "timeout": "10s"},
                                      "rule_files": [rules_path]})
            h.wait_alert("RebalanceStuck", "firing", what="the alert from delayed answers")
            h.wait_for(lambda: h.log_records(
                msg="group evaluation skipped: the previous one is still running"),
                what="a skipped (missed) evaluation logged")
            # Several evaluation rounds under the slow Prometheus.
            h.wait_for(lambda: proxy.queries >= 6, timeout=30, what="three evaluation rounds")
            h.check(proxy.max_in_flight <= 2,
                    "queries piled up: %d in flight at once for a 2-rule group"
                    % proxy.max_in_flight)
            h.finish()
        finally:
            if proxy is not None:
                proxy.stop()
            if prom is not None:
                prom.close()
            exporter.stop()


if __name__ == "__main__":
    harness.run_tests(globals())
