#!/usr/bin/env python3
"""Broken GET /connectors answers (malformed JSON, a truncated body, a
connection cut mid-body): the daemon keeps running, logs an error, restarts
nothing, and works normally once the answers are good again (a task failing
afterwards is restarted)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402


def _broken_polls(kind, connector):
    with Harness("malformed-" + kind, workers=1) as h:
        h.fake.add_connector(connector, tasks=2)
        h.start_daemon()
        log_mark = len(h.log_lines())
        h.fake.inject_poll_faults(kind, 3)
        h.wait_for(lambda: h.fake.poll_faults_served >= 3,
                   what="the daemon to read 3 %s answers" % kind)
        h.check(h.alive(), "daemon died on %s JSON" % kind)
        errors = [r for r in h.log_records(start_line=log_mark)
                  if r.get("level") in ("error", "warn")]
        if not errors:
            errors = h.wait_for(lambda: [r for r in h.log_records(start_line=log_mark)
                                         if r.get("level") in ("error", "warn")],
                                what="an error logged for the %s answer" % kind)
        h.check(not h.fake.requests(method="POST"), "restart during broken polls")
        h.check(not h.sink.find_alerts("ConnectTaskFailed"), "alert from a broken answer")

        # Good answers again: the model recovers and remediation works.
        h.wait_polls(3)
        h.fake.fail_task(connector, 1)
        h.wait_for(lambda: h.fake.restarts(connector), what="a restart after recovery")
        h.wait_for(lambda: h.fake.task_state(connector, 1) == "RUNNING", what="recovered")
        h.finish()


def test_malformed_json():
    _broken_polls("malformed", "orders")


def test_truncated_json():
    _broken_polls("truncated", "orders")


def test_cut_connection():
    _broken_polls("cut", "orders")


if __name__ == "__main__":
    harness.run_tests(globals())
