#!/usr/bin/env python3
"""A trace naming org.apache.kafka.common.config.ConfigException cannot be
fixed by a restart: none is sent, and the firing webhook goes out at once
(group_wait is 30 s here, so only the "tell someone now" flush can deliver it
in time) with a remediation annotation saying why."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402

CONFIG_TRACE = (
    "org.apache.kafka.common.config.ConfigException: Invalid value abc for configuration "
    "batch.size: Not a number of type INT\n"
    "\tat org.apache.kafka.common.config.ConfigDef.parseType(ConfigDef.java:744)\n"
    "\tat org.apache.kafka.common.config.AbstractConfig.<init>(AbstractConfig.java:112)\n")


def test_config_exception_not_restarted():
    with Harness("unrecoverable", workers=2) as h:
        h.fake.add_connector("orders", tasks=2)
        h.fake.add_connector("control", tasks=1)
        h.start_daemon({"route": {"group_wait": "30s"}})
        t0 = time.monotonic()
        h.fake.fail_task("orders", 1, CONFIG_TRACE)
        h.fake.fail_task("control", 0)

        def flushed():
            for r, a in h.sink.find_alerts("ConnectTaskFailed", "firing",
                                           {"connector": "orders", "task": "1"}):
                if "not restarted" in a["annotations"].get("remediation", ""):
                    return r, a
            return None
        r, a = h.wait_for(flushed, timeout=min(harness.DEFAULT_TIMEOUT, 15),
                          what="a firing webhook for orders/1 with 'not restarted' well "
                               "before group_wait (30s)")
        note = a["annotations"]["remediation"]
        h.check("ConfigException" in note or "unrecoverable" in note.lower(),
                "the reason should name the unrecoverable trace: %r" % note)
        h.check(r.time - t0 < 20, "webhook came after %.1fs" % (r.time - t0))
        h.wait_for(lambda: h.fake.restarts("control"), what="the control connector's restart")
        h.wait_polls(10)
        h.check(not h.fake.restarts("orders"), "unrecoverable task restarted: %r"
                % h.fake.restarts("orders"))
        h.check(h.fake.task_state("orders", 1) == "FAILED", "still FAILED")
        h.finish()


def test_unless_trace_rule_pattern():
    rules = [harness.connect_rule("ConnectTaskFailed", "task", "FAILED",
                                  restart={"scope": "failed",
                                           "unless_trace": "OutOfDiskQuota"})]
    with Harness("unless-trace", workers=1) as h:
        h.fake.add_connector("orders", tasks=1)
        h.fake.add_connector("control", tasks=1)
        h.start_daemon(rules=rules)
        h.fake.fail_task("orders", 0, "com.example.OutOfDiskQuota: full\n\tat x.y(Z.java:1)\n")
        h.fake.fail_task("control", 0)
        h.wait_for(lambda: h.fake.restarts("control"), what="the control connector's restart")
        h.wait_alert("ConnectTaskFailed", "firing", {"connector": "orders"})
        h.wait_polls(10)
        h.check(not h.fake.restarts("orders"), "restarted despite unless_trace")
        h.finish()


RETRIABLE_TRACE = (
    "org.apache.kafka.connect.errors.RetriableException: "
    "org.apache.kafka.common.errors.TimeoutException: Timeout expiring 3 record(s)\n"
    "\tat org.apache.kafka.connect.runtime.WorkerSinkTask.execAndRetry(WorkerSinkTask.java:337)\n")


def test_unrecoverable_task_does_not_hold_its_siblings():
    """Task 0 fails with a ConfigException, task 1 with a RetriableException:
    task 1 is restarted on its own (per-task restart), task 0 is left, and
    each alert's note is about its own task."""
    with Harness("unrecoverable-siblings", workers=1) as h:
        h.fake.add_connector("orders", tasks=2)
        h.start_daemon()
        h.fake.fail_task("orders", 0, CONFIG_TRACE)
        h.fake.fail_task("orders", 1, RETRIABLE_TRACE)

        first = h.wait_for(lambda: h.fake.restarts("orders"),
                           what="a restart of orders/1 beside unrecoverable orders/0")[0]
        h.check(first.path == "/connectors/orders/tasks/1/restart",
                "per-task restart of task 1 expected, got %s %r" % (first.path, first.query))
        h.wait_for(lambda: h.fake.task_state("orders", 1) == "RUNNING", what="orders/1 RUNNING")
        h.wait_alert("ConnectTaskFailed", "resolved", {"connector": "orders", "task": "1"})

        def note_of(task):
            found = h.sink.find_alerts("ConnectTaskFailed", "firing",
                                       {"connector": "orders", "task": task})
            notes = [a["annotations"].get("remediation", "") for _, a in found]
            return [n for n in notes if n]
        n0 = h.wait_for(lambda: note_of("0"), what="orders/0's note")
        h.check(all("ConfigException" in n or "unrecoverable" in n for n in n0),
                "orders/0's note should name its unrecoverable trace: %r" % n0)
        n1 = note_of("1")
        h.check(n1 and all("unrecoverable" not in n for n in n1),
                "orders/1's note speaks of another task's trace: %r" % n1)
        h.wait_for(lambda: h.log_records(msg="restart recovered", connector="orders"),
                   what="the restart of orders/1 judged recovered despite FAILED orders/0")
        h.wait_for(lambda: h.log_records(msg="restart skipped: unrecoverable failure",
                                         connector="orders", task="0"),
                   what="an unrecoverable event naming task 0")
        h.wait_polls(20)  # past verify_timeout (3s): no late "failed" verdict
        paths = [r.path for r in h.fake.restarts("orders")]
        h.check(paths == ["/connectors/orders/tasks/1/restart"],
                "exactly one restart, of task 1: %r" % paths)
        h.check(h.fake.task_state("orders", 0) == "FAILED", "orders/0 should stay FAILED")
        h.check(not h.log_records(msg="restart failed", connector="orders"),
                "the held task made the restart of task 1 read as failed")
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
