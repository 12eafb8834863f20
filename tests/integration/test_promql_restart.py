#!/usr/bin/env python3
"""restart: works on PromQL alerts too.

A kcwatch rule file (Prometheus format plus kcwatch's restart:) alerts on a
JMX-exporter metric that the real Prometheus scrapes from a fixture exporter.
The alert's instances carry connector and task labels, so kcwatch restarts
the connector's failed tasks on the fake Connect cluster (the KIP-745 form),
once, with the status re-read first; a PromQL alert for a PAUSED connector
is not restarted."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import prom_harness  # noqa: E402
from harness import Harness  # noqa: E402
from jmx_exporter import JmxExporter  # noqa: E402

METRIC = "kafka_connect_connector_metrics_failed_task_count"

RULES = """\
groups:
  - name: connect-jmx-restart
    rules:
      - alert: KafkaConnectFailedTasks
        expr: %s > 0
        for: 0s
        restart: {scope: failed}
        labels: {severity: warning}
        annotations:
          summary: "{{ $labels.connector }} has {{ $value }} failed task(s)"
""" % METRIC


def test_promql_alert_restarts_failed_tasks():
    prom_harness.prometheus_bin()  # a failure, not a skip, when missing
    exporter = JmxExporter().start()
    with Harness("promql-restart", workers=1) as h:
        prom = None
        try:
            h.fake.add_connector("orders", tasks=2)
            h.fake.add_connector("paused-sink", tasks=1, paused=True)
            rules_path = h.write("promql-rules.yaml", RULES)
            prom = prom_harness.PrometheusServer(h.tmp, [exporter.address], []).start()
            h.start_daemon(overrides={"prometheus": {"url": prom.url, "timeout": "2s"},
                                      "rule_files": [rules_path]})
            h.wait_for(prom.targets_up, what="Prometheus to scrape the fixture exporter")

            # Connect says task 1 FAILED; the exporter says so too, as the
            # real worker's JMX metrics would.
            h.fake.fail_task("orders", 1)
            h.fake.fail_task("paused-sink", 0)
            exporter.set(METRIC, {"connector": "orders"}, 1)
            exporter.set(METRIC, {"connector": "paused-sink"}, 1)

            first = h.wait_for(lambda: h.fake.restarts("orders"),
                               what="a restart of orders from the PromQL alert")[0]
            h.check(first.path == "/connectors/orders/restart"
                    and first.query == {"includeTasks": ["true"], "onlyFailed": ["true"]},
                    "KIP-745 restart expected, got %s %r" % (first.path, first.query))
            h.wait_for(lambda: h.fake.task_state("orders", 1) == "RUNNING", what="recovery")
            # The metric drops as the worker's would once the task runs.
            exporter.set(METRIC, {"connector": "orders"}, 0)
            h.wait_alert("KafkaConnectFailedTasks", "firing", {"connector": "orders"})
            h.wait_alert("KafkaConnectFailedTasks", "resolved", {"connector": "orders"})
            h.wait_alert("KafkaConnectFailedTasks", "firing", {"connector": "paused-sink"},
                         what="the paused connector's alert")
            h.wait_polls(10)
            h.check(len(h.fake.restarts("orders")) == 1,
                    "exactly one restart expected: %r" % h.fake.restarts("orders"))
            h.check(not h.fake.restarts("paused-sink"), "a PAUSED connector was restarted")
            h.check(h.log_records(msg="restart sent", connector="orders"),
                    "no restart log line for orders")
            h.finish()
        finally:
            if prom is not None:
                prom.close()
            exporter.stop()


if __name__ == "__main__":
    harness.run_tests(globals())
