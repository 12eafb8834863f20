#!/usr/bin/env python3
"""A failed task is restarted once (KIP-745 form), recovers, and the alert
fires then resolves on the webhook."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402

REMEDIATION_SENT = re.compile(r"restart(ed| sent)\b.*attempt 1\b", re.S)


def test_failed_task_restarted_once_and_resolves():
    with Harness("recovers", workers=2) as h:
        h.fake.add_connector("orders", type="sink", tasks=2)
        h.fake.add_connector("users", type="source", tasks=1)
        h.start_daemon()
        owner = h.fake.task_worker_id("orders", 1)
        h.fake.fail_task("orders", 1, harness.TASK_FAILED_TRACE)

        first = h.wait_for(lambda: h.fake.restarts(), what="a restart request")[0]
        h.check(first.method == "POST" and first.path == "/connectors/orders/restart",
                "restart must be the KIP-745 connector form, got %s %s"
                % (first.method, first.raw_path))
        h.check(first.query == {"includeTasks": ["true"], "onlyFailed": ["true"]},
                "restart query must be includeTasks=true&onlyFailed=true, got %r" % first.query)
        h.wait_for(lambda: first.status is not None, what="the fake to answer the restart")
        h.check(first.status == 202, "fake answered %s" % first.status)
        h.wait_for(lambda: h.fake.task_state("orders", 1) == "RUNNING",
                   what="task orders/1 RUNNING again")

        labels = {"cluster": "c1", "connector": "orders", "task": "1"}
        fired, alert = h.wait_alert("ConnectTaskFailed", "firing", labels)
        want = {"alertname": "ConnectTaskFailed", "cluster": "c1", "connector": "orders",
                "task": "1", "state": "FAILED", "worker_id": owner, "type": "sink",
                "severity": "warning"}
        for k, v in want.items():
            h.check(alert["labels"].get(k) == v, "label %s=%r expected, alert labels %r"
                    % (k, v, alert["labels"]))
        h.check(alert["annotations"].get("summary") == "Task orders/1 failed",
                "summary annotation rendered: %r" % alert["annotations"])
        h.check("ConnectException" in alert["annotations"].get("description", ""),
                "description carries the trace: %r" % alert["annotations"])
        resolved, ralert = h.wait_alert("ConnectTaskFailed", "resolved", labels,
                                        what="the resolved webhook for orders/1")
        h.check(resolved.time >= fired.time, "resolved arrived before firing")
        h.check(ralert["fingerprint"] == alert["fingerprint"],
                "resolved alert has another fingerprint")

        notes = [a["annotations"].get("remediation", "")
                 for _, a in h.sink.find_alerts("ConnectTaskFailed", labels=labels)]
        h.check(any(REMEDIATION_SENT.search(n) for n in notes),
                "no alert carried a remediation annotation like 'restart sent (attempt 1 "
                "of 3 in 1h)': %r" % notes)
        h.check(h.log_records(msg="restart sent"), "no msg=\"restart sent\" log line")

        # No further restarts after recovery, over several poll cycles and
        # beyond the stable period (2 s = 10 polls at 200 ms).
        h.wait_polls(15)
        h.check(len(h.fake.restarts()) == 1, "exactly one restart expected, got %r"
                % h.fake.restarts())
        h.check(not h.sink.find_alerts(labels={"connector": "users"}),
                "a healthy connector alerted")
        h.check(not h.sink.find_alerts("KcwatchRestartBudgetExhausted"), "budget alert")
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
