#!/usr/bin/env python3
"""A restart does not bypass group_wait. A task fails and the first restart
fixes it: the restart's news must not send the group's first notification
before group_wait (2s here), so the blip produces no FIRING+RESOLVED pair
inside group_wait. News that needs a human (an unrecoverable failure) still
goes out at once: see test_unrecoverable.py."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402

GROUP_WAIT_S = 2.0


def test_restart_news_waits_for_group_wait():
    with Harness("restart-group-wait", workers=1) as h:
        h.fake.add_connector("orders", tasks=1)
        h.start_daemon({"route": {"group_wait": "2s"}})
        t0 = time.monotonic()
        h.fake.fail_task("orders", 0, harness.TASK_FAILED_TRACE)
        h.wait_for(lambda: h.log_records(msg="alert firing", alertname="ConnectTaskFailed"),
                   what="the alert firing")
        fired_at = time.monotonic()
        h.wait_for(lambda: h.log_records(msg="restart sent", connector="orders"),
                   what="the restart")
        first, _ = h.wait_alert("ConnectTaskFailed", None, {"connector": "orders"},
                                what="the group's first notification")
        h.check(first.time - fired_at >= GROUP_WAIT_S - 0.3,
                "first notification %.2fs after firing, before group_wait (%.0fs)"
                % (first.time - fired_at, GROUP_WAIT_S))
        inside = [r for r in h.sink.received() if r.time - t0 < GROUP_WAIT_S - 0.3]
        h.check(not inside, "notifications inside group_wait: %r"
                % [(r.time - t0, r.path) for r in inside])
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
