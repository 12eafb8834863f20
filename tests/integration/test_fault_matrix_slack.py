#!/usr/bin/env python3
"""The fault matrix's Slack row (tests/FAULTS.md): the fake Slack incoming
webhook behind fault_proxy.py, each fault as an episode, checked as the
webhook row is (test_fault_matrix.receiver_faults). Slack semantics: 200 is
a delivery whatever the body; 429 (Retry-After) and 5xx are retried; any
other 4xx (409 here) is a configuration error, logged once and not retried;
a 3xx is not followed and drops the notification."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "fakes"))
import harness  # noqa: E402
from fake_slack import FakeSlack  # noqa: E402
from test_fault_matrix import fake_receiver_row  # noqa: E402


def test_slack_faults():
    fake_receiver_row("slack", FakeSlack(), lambda url: {"name": "slack", "slack": {
        "url": url + "/services/T0/B0/faults", "timeout": "1s"}},
        lambda slack, conn: [t for t in slack.texts() if "connector `%s`" % conn in t
                             and "resolved" not in t.split("\n")[0]],
        config_error=lambda fault, kw: kw.get("status") == 409)


if __name__ == "__main__":
    harness.run_tests(globals())
