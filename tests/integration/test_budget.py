#!/usr/bin/env python3
"""A task that fails again after every restart: restarts back off with
growing gaps, stop at budget.max_restarts=3, and KcwatchRestartBudgetExhausted
is sent. No 4th restart."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402

# Back-off 1 s, 2 s, 4 s (jitter 0): well above the 200 ms evaluation and poll
# periods, so the growth is measurable and not hidden by scheduling granularity.
OVERRIDES = {
    "global": {"evaluation_interval": "200ms"},
    "remediation": {"backoff": {"initial": "1s", "max": "5s", "multiplier": 2, "jitter": 0},
                    "budget": {"max_restarts": 3, "window": "1h"},
                    "verify_timeout": "3s", "stable_period": "2s"},
}


def test_budget_exhausted_after_three_restarts():
    with Harness("budget", workers=2) as h:
        h.fake.add_connector("flaky", tasks=2)
        h.start_daemon(OVERRIDES)
        h.fake.set_restart_outcome("flaky", "fail_again", trace="new")
        h.fake.fail_task("flaky", 0, harness.TASK_FAILED_TRACE)

        h.wait_for(lambda: len(h.fake.restarts("flaky")) >= 3, timeout=30,
                   what="three restarts")
        # Each attempt must have been judged (FAILED again after RESTARTING).
        h.wait_for(lambda: h.fake.task_state("flaky", 0) == "FAILED"
                   and len([s for s in h.fake.states("flaky", 0) if s == "RESTARTING"]) == 3,
                   what="the third restart to fail again")
        rs = h.fake.restarts("flaky")[:3]
        for r in rs:
            h.check(r.status == 202, "restart answered %s" % r.status)
            h.check(r.query == {"includeTasks": ["true"], "onlyFailed": ["true"]}, r.query)
        gap1 = rs[1].time - rs[0].time
        gap2 = rs[2].time - rs[1].time
        h.check(gap1 >= 0.9, "second restart came %.2fs after the first; back-off is 1s" % gap1)
        h.check(gap2 >= 1.9, "third restart came %.2fs after the second; back-off is 2s" % gap2)
        h.check(gap2 > gap1, "gaps must grow: %.2f then %.2f" % (gap1, gap2))

        _, a = h.wait_alert("KcwatchRestartBudgetExhausted", "firing",
                            {"cluster": "c1", "connector": "flaky"})
        h.check(a["labels"].get("severity") == "critical", "severity=critical: %r" % a["labels"])

        # The next back-off would be 4 s: wait 30 polls (>= 6 s at 200 ms).
        h.wait_polls(30)
        h.check(len(h.fake.restarts()) == 3, "a 4th restart was sent: %r" % h.fake.restarts())
        notes = [x["annotations"].get("remediation", "")
                 for _, x in h.sink.find_alerts("ConnectTaskFailed",
                                                labels={"connector": "flaky", "task": "0"})]
        h.check(notes, "no ConnectTaskFailed webhook for flaky/0")
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
