#!/usr/bin/env python3
"""429 (rate limited, e.g. by a proxy in front of the workers) answers to a
restart are retried after their Retry-After and not counted against the
budget: with max_restarts=1, two 429s then a 202 still recover the task."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402


def test_429_retried_after_retry_after_not_counted():
    with Harness("ratelimit429", workers=1) as h:
        h.fake.add_connector("orders", tasks=1)
        h.start_daemon({"remediation": {"budget": {"max_restarts": 1, "window": "1h"}}})
        h.fake.inject_restart_faults(429, 2, retry_after=1)
        h.fake.fail_task("orders", 0)

        h.wait_for(lambda: h.fake.task_state("orders", 0) == "RUNNING",
                   what="orders/0 RUNNING after 429 retries")
        statuses = h.restart_statuses("orders")
        h.check(statuses == [429, 429, 202], "restart answers %r, expected 429, 429, 202"
                % statuses)
        times = [r.time for r in h.fake.restarts("orders")]
        gaps = [b - a for a, b in zip(times, times[1:])]
        h.check(all(g >= 0.95 for g in gaps),
                "a retry came before Retry-After (1 s): gaps %r" % gaps)
        h.wait_alert("ConnectTaskFailed", "resolved", {"connector": "orders", "task": "0"})
        h.wait_polls(5)
        h.check(h.restart_statuses("orders") == [429, 429, 202], "more restarts after recovery")
        h.check(not h.sink.find_alerts("KcwatchRestartBudgetExhausted"),
                "429s were counted against the budget")
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
