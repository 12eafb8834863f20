#!/usr/bin/env python3
"""The fault matrix's PagerDuty row (tests/FAULTS.md): the fake Events API
v2 behind fault_proxy.py, each fault as an episode, checked as the webhook
row is (test_fault_matrix.receiver_faults). PagerDuty semantics: any 2xx is
a delivery (PagerDuty answers 202; a 200 with a body that is not its JSON
counts too); 429 (Retry-After) and 5xx are retried; 400 and every other 4xx
(409 here) are final, logged once as a configuration error with the body;
a 3xx is not followed and drops the event."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "fakes"))
import harness  # noqa: E402
from fake_pagerduty import FakePagerDuty  # noqa: E402
from test_fault_matrix import fake_receiver_row  # noqa: E402


def test_pagerduty_faults():
    fake_receiver_row("pagerduty", FakePagerDuty(), lambda url: {"name": "pd", "pagerduty": {
        "routing_key": "R0123456789abcdef0123456789abcde", "url": url + "/v2/enqueue",
        "timeout": "1s"}},
        lambda pd, conn: [e for e in pd.events("trigger")
                          if e["payload"]["custom_details"]["labels"].get("connector") == conn],
        config_error=lambda fault, kw: kw.get("status") == 409)


if __name__ == "__main__":
    harness.run_tests(globals())
