#!/usr/bin/env python3
"""kcwatch as a PromQL-only evaluator (`connect: []`), and generatorURL links.

With the real Prometheus from Debian:
  - `connect: []` passes `kcwatch check` (0 clusters), the daemon starts,
    evaluates the PromQL rule, is ready (/readyz and /-/ready) and notifies;
  - the alert's generatorURL is the one Prometheus itself sends for the same
    rule (captured from Prometheus' own notification to a stand-in
    Alertmanager), and it opens Prometheus' graph page;
  - external_labels reach the webhook, not the rule's own labels in the API;
  - a connect: rule's generatorURL opens its entry in kcwatch's own API."""

import json
import os
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import prom_harness  # noqa: E402
from harness import Harness  # noqa: E402

RULES = """\
groups:
  - name: promql-only
    interval: 1s
    rules:
      - alert: AlwaysOn
        expr: vector(1)   >   0
        labels: {severity: info}
"""


class AlertCapture:
    """Stands in for Alertmanager: keeps what Prometheus POSTs to /api/v2/alerts."""

    def __init__(self):
        self.alerts = []
        self.lock = threading.Lock()
        cap = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                if self.path.endswith("/api/v2/alerts"):
                    with cap.lock:
                        cap.alerts.extend(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = "127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def find(self, alertname):
        with self.lock:
            for a in self.alerts:
                if a.get("labels", {}).get("alertname") == alertname:
                    return a
        return None

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def test_promql_only_evaluator_and_generator_url():
    prom_harness.prometheus_bin()
    with Harness("promql-only") as h:
        cap = AlertCapture()
        prom = None
        try:
            rules = h.write("promql.yaml", RULES)
            prom = prom_harness.PrometheusServer(h.tmp, ["127.0.0.1:1"], rule_files=[rules],
                                                 alertmanagers=[cap.address],
                                                 # Its first send can precede the
                                                 # discovery of the Alertmanager: resend
                                                 # soon rather than after 1m.
                                                 extra_flags=["--rules.alert.resend-delay=1s"]
                                                 ).start()
            theirs = h.wait_for(lambda: cap.find("AlwaysOn"), timeout=30,
                                what="Prometheus' own notification for AlwaysOn")
            prom_gen = theirs["generatorURL"]
            base = prom_gen[:prom_gen.index("/graph?")]

            overrides = {"connect": [], "rule_files": [rules],
                         "prometheus": {"url": prom.url, "external_url": base},
                         "global": {"external_labels": {"site": "t1"}}}
            h.write_config(overrides)
            p = subprocess.run([harness.kcwatch_bin(), "check", "-c", h.config_path],
                               capture_output=True, text=True, timeout=60)
            h.check(p.returncode == 0 and "0 clusters" in p.stdout,
                    "check: %d %s%s" % (p.returncode, p.stdout, p.stderr))

            h.start_daemon(overrides, wait_polls=0)
            _, alert = h.wait_alert("AlwaysOn", "firing", timeout=30)
            h.check(alert["labels"].get("site") == "t1",
                    "external label missing in the webhook: %r" % alert["labels"])
            ours = alert["generatorURL"]
            h.check(ours == prom_gen, "generatorURL %r, Prometheus sends %r" % (ours, prom_gen))
            u = urllib.parse.urlsplit(ours)
            q = urllib.parse.parse_qs(u.query)
            h.check(u.path.endswith("/graph") and q.get("g0.expr") == ["vector(1) > 0"]
                    and q.get("g0.tab") == ["1"], "generatorURL parts: %r %r" % (u.path, q))
            status, _ = get(prom.url + "/graph?" + u.query)
            h.check(status == 200, "Prometheus' graph page answered %s" % status)

            admin = "http://%s" % h.config["global"]["listen"]
            for path in ("/readyz", "/-/ready"):
                status, body = get(admin + path)
                h.check(status == 200, "%s answered %s: %s" % (path, status, body))
            status, body = get(admin + "/api/v1/alerts")
            labels = json.loads(body)["data"]["alerts"][0]["labels"]
            h.check("site" not in labels, "external label in evaluation labels: %r" % labels)
            h.finish()
        finally:
            cap.stop()
            if prom is not None:
                prom.close()


def test_connect_rule_generator_url_opens_its_rule():
    with Harness("generator-connect") as h:
        h.fake.add_connector("orders", tasks=1)
        h.start_daemon()
        h.fake.fail_task("orders", 0, trace="org.apache.kafka.connect.errors.ConnectException: x")
        _, alert = h.wait_alert("ConnectTaskFailed", "firing", timeout=30)
        url = alert["generatorURL"]
        admin = "http://%s" % h.config["global"]["listen"]
        h.check(url.startswith(admin + "/api/v1/rules?"), "generatorURL %r" % url)
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        h.check(q.get("rule_name[]") == ["ConnectTaskFailed"] and
                q.get("rule_group[]") == ["connect-status"], "query of %r: %r" % (url, q))
        status, body = get(url)
        groups = json.loads(body)["data"]["groups"] if status == 200 else []
        names = [(g["name"], [r["name"] for r in g["rules"]]) for g in groups]
        h.check(names == [("connect-status", ["ConnectTaskFailed"])],
                "the link opened %s %r" % (status, names))
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
