#!/usr/bin/env python3
"""409 (rebalance) answers to a restart are retried and not counted against
the budget: with max_restarts=1, two 409s then a 202 still recover the task."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402


def test_409_retried_not_counted():
    with Harness("rebalance", workers=2) as h:
        h.fake.add_connector("orders", tasks=1)
        h.start_daemon({"remediation": {"budget": {"max_restarts": 1, "window": "1h"}}})
        h.fake.inject_restart_faults(409, 2)
        h.fake.fail_task("orders", 0)

        h.wait_for(lambda: h.fake.task_state("orders", 0) == "RUNNING",
                   what="orders/0 RUNNING after retries")
        statuses = h.restart_statuses("orders")
        h.check(statuses == [409, 409, 202], "restart answers %r, expected 409, 409, 202"
                % statuses)
        for r in h.fake.restarts("orders"):
            h.check(r.query == {"includeTasks": ["true"], "onlyFailed": ["true"]}, r.query)
        h.wait_alert("ConnectTaskFailed", "resolved", {"connector": "orders", "task": "0"})
        h.wait_polls(10)
        h.check(h.restart_statuses("orders") == [409, 409, 202], "more restarts after recovery")
        h.check(not h.sink.find_alerts("KcwatchRestartBudgetExhausted"),
                "409s were counted against the budget")
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
