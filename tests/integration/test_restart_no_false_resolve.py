#!/usr/bin/env python3
"""A restart does not fake a recovery. The task fails again after each of
its first two restarts, passing through RESTARTING each time: while kcwatch's
own restart is being verified the alert stays firing (no "resolved", no new
activeAt), and it resolves only once the task has been RUNNING for the
verify period: verify_timeout (3s in the harness) or the stable period (2s
in the harness), whichever ends first."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402

VERIFY_S = 2.0  # min(verify_timeout 3s, stable_period 2s)


def test_restart_does_not_resolve_while_verifying():
    # A RESTARTING window longer than a poll interval (200ms), so every
    # attempt is seen in transition.
    with Harness("no-false-resolve", workers=1,
                 fake_kwargs={"restarting_delay": 0.5}) as h:
        h.fake.add_connector("orders", tasks=1)
        h.fake.set_restart_outcome("orders", "fail_again", times=2)
        h.start_daemon()
        h.fake.fail_task("orders", 0, harness.TASK_FAILED_TRACE)
        labels = {"connector": "orders", "task": "0"}

        h.wait_for(lambda: len(h.fake.restarts("orders")) >= 3 and
                   h.fake.task_state("orders", 0) == "RUNNING",
                   what="orders/0 RUNNING after the third restart")
        running_at = time.monotonic()
        h.check(h.log_records(msg="alert resolved", alertname="ConnectTaskFailed",
                              connector="orders") == [],
                "the alert resolved while its restart was being verified")
        resolved, _ = h.wait_alert("ConnectTaskFailed", "resolved", labels,
                                   what="the resolution after the verify period")
        h.check(resolved.time - running_at >= VERIFY_S - 0.5,
                "resolved %.2fs after RUNNING, before the verify period (%.0fs)"
                % (resolved.time - running_at, VERIFY_S))
        sent = h.sink.find_alerts("ConnectTaskFailed", labels=labels)
        resolved_n = [a for _, a in sent if a.get("status") == "resolved"]
        starts = {a["startsAt"] for _, a in sent}
        h.check(len(starts) == 1, "the alert got a new activeAt per attempt: %r" % starts)
        h.check(all(r.time >= resolved.time for r, a in sent if a.get("status") == "resolved"),
                "a resolved went out before the final one")
        h.check(len({a["startsAt"] for a in resolved_n}) == 1,
                "more than one episode resolved: %r" % resolved_n)
        h.check(len(h.log_records(msg="alert resolved", alertname="ConnectTaskFailed",
                                  connector="orders")) == 1,
                "one resolution expected in the log")
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
