#!/usr/bin/env python3
"""dry_run: true -> no POST at all; the log shows the exact request that would
have been sent (msg="dry run: restart not sent" request="POST http://...")."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402


def test_dry_run_logs_request_sends_nothing():
    with Harness("dry-run", workers=2) as h:
        h.fake.add_connector("ordersink", tasks=2)
        h.start_daemon({"remediation": {"dry_run": True}})
        h.fake.fail_task("ordersink", 0)
        recs = h.wait_for(lambda: h.log_records(msg="dry run: restart not sent"),
                          what='a msg="dry run: restart not sent" log line')
        expected = {"POST %s/connectors/ordersink/restart?includeTasks=true&onlyFailed=true" % u
                    for u in h.fake.urls}
        h.check(recs[0].get("request") in expected,
                "request=%r, expected one of %r" % (recs[0].get("request"), sorted(expected)))
        h.wait_alert("ConnectTaskFailed", "firing", {"connector": "ordersink", "task": "0"})
        h.wait_polls(15)
        h.check(not h.fake.requests(method="POST"), "POST sent in dry run: %r"
                % h.fake.requests(method="POST"))
        h.check(not h.fake.requests(method="PUT"), "PUT sent in dry run")
        h.check(not h.log_records(msg="restart sent"), 'msg="restart sent" in dry run')
        h.check(h.fake.task_state("ordersink", 0) == "FAILED", "task still FAILED")
        h.finish()


def test_dry_run_old_worker_task_form():
    with Harness("dry-run-old", workers=1, version="2.8.1") as h:
        h.fake.add_connector("ordersink", tasks=2)
        h.start_daemon({"remediation": {"dry_run": True}})
        h.fake.fail_task("ordersink", 1)
        recs = h.wait_for(lambda: h.log_records(msg="dry run: restart not sent"),
                          what="the dry-run log line")
        want = "POST %s/connectors/ordersink/tasks/1/restart" % h.fake.urls[0]
        h.check(recs[0].get("request") == want, "request=%r, expected %r"
                % (recs[0].get("request"), want))
        h.wait_polls(10)
        h.check(not h.fake.requests(method="POST"), "POST sent in dry run")
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
