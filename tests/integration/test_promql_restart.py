#!/usr/bin/env python3
"""restart: works on PromQL alerts too.

A kcwatch rule file (Prometheus format plus kcwatch's restart:) alerts on a
JMX-exporter metric that the real Prometheus scrapes from a fixture exporter.
The alert's instances carry connector and task labels, so kcwatch restarts
the connector's failed tasks on the fake Connect cluster (the KIP-745 form),
once, with the status re-read first; a PromQL alert for a PAUSED connector
is not restarted. Under scope task, a RUNNING task that the alert names is
restarted too: the alert is the evidence that it is stuck."""

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


ERRORS = "kafka_connect_task_error_metrics_total_record_errors"

RUNNING_RULES = """\
groups:
  - name: connect-jmx-stuck
    rules:
      - alert: KafkaConnectRecordErrors
        expr: %s > 0
        for: 0s
        restart: {scope: task}
        labels: {severity: warning}
""" % ERRORS


def test_promql_alert_restarts_running_task():
    """A RUNNING task that a PromQL alert (scope task) names is restarted,
    task by task, with a log line saying why; its healthy sibling is not,
    and neither is a PAUSED connector's task."""
    prom_harness.prometheus_bin()
    exporter = JmxExporter().start()
    with Harness("promql-running", workers=1) as h:
        prom = None
        try:
            h.fake.add_connector("orders", tasks=2)
            h.fake.add_connector("paused-sink", tasks=1, paused=True)
            rules_path = h.write("promql-rules.yaml", RUNNING_RULES)
            prom = prom_harness.PrometheusServer(h.tmp, [exporter.address], []).start()
            h.start_daemon(overrides={"prometheus": {"url": prom.url, "timeout": "2s"},
                                      "rule_files": [rules_path],
                                      "remediation": {"budget": {"max_restarts": 1,
                                                                 "window": "1h"}}})
            h.wait_for(prom.targets_up, what="Prometheus to scrape the fixture exporter")
            h.check(h.fake.task_state("orders", 0) == "RUNNING", "orders/0 not RUNNING")
            exporter.set(ERRORS, {"connector": "orders", "task": "0"}, 5)
            exporter.set(ERRORS, {"connector": "paused-sink", "task": "0"}, 5)

            first = h.wait_for(lambda: h.fake.restarts("orders"),
                               what="a restart of RUNNING orders/0 from the PromQL alert")[0]
            h.check(first.path == "/connectors/orders/tasks/0/restart",
                    "per-task restart expected, got %s %r" % (first.path, first.query))
            h.wait_for(lambda: h.log_records(msg="restart sent", connector="orders"),
                       what="a restart log line for orders")
            rec = h.log_records(msg="restart sent", connector="orders")[0]
            h.check("RUNNING" in rec.get("detail", ""),
                    "the log does not say the task was RUNNING: %r" % rec)
            h.wait_alert("KafkaConnectRecordErrors", "firing", {"connector": "paused-sink"},
                         what="the paused connector's alert")
            exporter.set(ERRORS, {"connector": "orders", "task": "0"}, 0)
            h.wait_alert("KafkaConnectRecordErrors", "resolved", {"connector": "orders"})
            h.wait_polls(5)
            paths = {r.path for r in h.fake.restarts("orders")}
            h.check(paths == {"/connectors/orders/tasks/0/restart"},
                    "only orders/0 may be restarted: %r" % paths)
            h.check(not h.fake.restarts("paused-sink"), "a PAUSED connector was restarted")
            h.finish()
        finally:
            if prom is not None:
                prom.close()
            exporter.stop()


if __name__ == "__main__":
    harness.run_tests(globals())
