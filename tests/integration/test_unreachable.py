#!/usr/bin/env python3
"""Worker failover and cluster reachability: one worker of two down -> the
daemon fails over and keeps polling without alerting; all down ->
ConnectClusterUnreachable fires and nothing is restarted; back -> resolved."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402


def test_failover_then_unreachable_then_resolved():
    with Harness("unreachable", workers=2) as h:
        h.fake.add_connector("orders", tasks=2)
        h.start_daemon()

        # One worker down: keep polling through the other one, no alert.
        h.fake.worker_down(0)
        t_down = time.monotonic()
        h.wait_for(lambda: h.fake.poll_count(since=t_down, worker=1) >= 5,
                   what="5 polls of worker 1 after worker 0 went down (failover)")
        h.check(not h.sink.find_alerts("ConnectClusterUnreachable"),
                "one live worker is not an unreachable cluster")

        # All down.
        h.fake.worker_down(1)
        t_all = time.monotonic()
        _, a = h.wait_alert("ConnectClusterUnreachable", "firing", {"cluster": "c1"})
        h.check(a["labels"].get("severity") == "critical", a["labels"])
        h.check(h.alive(), "daemon died with every worker down")

        # Back: polling resumes, the alert resolves.
        h.fake.worker_up(0)
        h.fake.worker_up(1)
        h.wait_alert("ConnectClusterUnreachable", "resolved", {"cluster": "c1"})
        h.wait_for(lambda: h.fake.poll_count(since=t_all) >= 3, what="polling resumed")
        h.check(not h.fake.requests(method="POST"), "restart sent: %r"
                % h.fake.requests(method="POST"))
        h.check(not h.sink.find_alerts("ConnectTaskFailed"),
                "an unreachable cluster must not look like failed tasks")
        h.finish()


def test_unreachable_from_the_start():
    with Harness("unreachable-start", workers=1) as h:
        h.fake.add_connector("orders", tasks=1)
        h.fake.worker_down(0)
        h.start_daemon(wait_polls=0)
        h.wait_alert("ConnectClusterUnreachable", "firing", {"cluster": "c1"})
        h.fake.worker_up(0)
        h.wait_alert("ConnectClusterUnreachable", "resolved", {"cluster": "c1"})
        h.check(not h.fake.requests(method="POST"), "restart sent")
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
