#!/usr/bin/env python3
"""GET /metrics: the self-metrics of docs/metrics.md, in a text that
`promtool check metrics` accepts, counting what really happened (a failed
task, its restart, its notifications); and the real Prometheus scrapes
kcwatch and gets a metric back."""

import os
import re
import shutil
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402
from prom_harness import PrometheusServer  # noqa: E402

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def scrape(h):
    url = "http://%s/metrics" % h.config["global"]["listen"]
    with urllib.request.urlopen(url, timeout=5) as r:
        ctype = r.headers.get("Content-Type", "")
        return ctype, r.read().decode("utf-8")


def value(text, name, **labels):
    """The sample of name whose labels include these, or None."""
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(3))
    return None


def test_metrics_count_what_happened():
    with Harness("metrics", workers=1) as h:
        h.fake.add_connector("orders", type="sink", tasks=2)
        h.start_daemon()
        h.fake.fail_task("orders", 1, harness.TASK_FAILED_TRACE)
        h.wait_for(lambda: h.fake.restarts(), what="a restart")
        h.wait_for(lambda: h.fake.task_state("orders", 1) == "RUNNING", what="recovery")
        h.wait_alert("ConnectTaskFailed", "resolved", {"connector": "orders"})

        def counted():
            text = scrape(h)[1]
            return (value(text, "kcwatch_restarts_total", cluster="c1", result="recovered")
                    and value(text, "kcwatch_notifications_total", receiver="hook",
                              result="success") or None) and text

        text = h.wait_for(counted, what="restart and notifications counted")
        ctype, _ = scrape(h)
        h.check(ctype.startswith("text/plain; version=0.0.4"), "content type %r" % ctype)
        for name in ("kcwatch_build_info", "kcwatch_rule_evaluations_total",
                     "kcwatch_rule_evaluation_failures_total",
                     "kcwatch_rule_evaluation_duration_seconds", "kcwatch_alerts",
                     "kcwatch_connect_up", "kcwatch_connect_poll_duration_seconds",
                     "kcwatch_restarts_total", "kcwatch_notifications_total",
                     "kcwatch_notification_queue_length",
                     "kcwatch_config_last_reload_successful", "process_cpu_seconds_total",
                     "process_resident_memory_bytes", "process_open_fds",
                     "process_start_time_seconds"):
            h.check("# TYPE %s " % name in text, "no %s family in:\n%s" % (name, text))
        h.check(value(text, "kcwatch_connect_up", cluster="c1") == 1, "connect_up")
        h.check(value(text, "kcwatch_restarts_total", cluster="c1", result="sent") == 1,
                "one restart sent")
        h.check(value(text, "kcwatch_rule_evaluations_total", group="connect-status") > 0,
                "evaluations counted")
        h.check(value(text, "kcwatch_connect_poll_duration_seconds_count", cluster="c1") > 0,
                "poll durations observed")
        h.check(value(text, "kcwatch_config_last_reload_successful") == 1, "reload ok")
        h.check(value(text, "process_open_fds") > 0, "open fds read from /proc")
        h.check(value(text, "kcwatch_build_info") == 1, "build info")
        # Prometheus' own health paths answer as /healthz and /readyz do.
        for path, want in (("/-/healthy", "healthy"), ("/-/ready", "ready")):
            with urllib.request.urlopen("http://%s%s" % (h.config["global"]["listen"], path),
                                        timeout=5) as r:
                body = r.read().decode()
                h.check(r.status == 200 and want in body, "%s: %s %r" % (path, r.status, body))

        # docs/metrics.md describes every family served.
        with open(os.path.join(harness.SOURCE_DIR, "docs", "metrics.md")) as f:
            doc = f.read()
        served = re.findall(r"^# TYPE (\S+) ", text, re.M)
        undocumented = [n for n in served if "`%s`" % n not in doc]
        h.check(not undocumented, "docs/metrics.md lacks %r" % undocumented)

        # Prometheus' own linter accepts the exposition.
        promtool = shutil.which("promtool") or "/usr/bin/promtool"
        out = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                             text=True, timeout=30)
        h.check(out.returncode == 0, "promtool check metrics: %s%s" % (out.stdout, out.stderr))

        # A failed reload is visible.
        with open(h.config_path, "a") as f:
            f.write("bogus_key: 1\n")
        os.kill(h.proc.pid, 1)
        h.wait_for(lambda: value(scrape(h)[1], "kcwatch_config_last_reload_successful") == 0,
                   what="kcwatch_config_last_reload_successful 0 after a bad reload")

        # The real Prometheus scrapes kcwatch and gets a metric back.
        prom = PrometheusServer(h.tmp, targets=[h.config["global"]["listen"]], job="kcwatch")
        try:
            prom.start()
            got = h.wait_for(lambda: prom.query('kcwatch_connect_up{cluster="c1"}'),
                             what="Prometheus to scrape kcwatch_connect_up")
            h.check(got[0][1] == 1.0 and got[0][0].get("job") == "kcwatch",
                    "kcwatch_connect_up from Prometheus: %r" % got)
            h.wait_for(lambda: prom.query('kcwatch_restarts_total{result="sent"}'),
                       what="Prometheus to scrape kcwatch_restarts_total")
        finally:
            prom.close()
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
