#!/usr/bin/env python3
"""Workers before 3.0: restarts use POST /connectors/{c}/tasks/{t}/restart per
FAILED task (and the plain connector restart only for a FAILED connector),
never the KIP-745 parameters. Before 2.3 (expand ignored, array reply) the
daemon polls per-connector /status."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402


def _no_kip745_params(h):
    bad = [r for r in h.fake.requests()
           if "includeTasks" in r.query or "onlyFailed" in r.query]
    h.check(not bad, "KIP-745 parameters sent to a pre-3.0 worker: %r" % bad)


def test_2_8_task_restart():
    with Harness("old-2.8", workers=2, version="2.8.1") as h:
        h.fake.add_connector("inventory", tasks=3)
        h.start_daemon()
        h.fake.fail_task("inventory", 2)
        h.wait_for(lambda: h.fake.restarts("inventory"), what="a restart")
        h.wait_for(lambda: h.fake.task_state("inventory", 2) == "RUNNING",
                   what="inventory/2 RUNNING")
        rs = h.fake.restarts("inventory")
        h.check([r.path for r in rs] == ["/connectors/inventory/tasks/2/restart"],
                "expected one per-task restart, got %r" % rs)
        h.check(rs[0].status == 204, "answered %s" % rs[0].status)
        h.check(rs[0].query == {}, "query on a task restart: %r" % rs[0].query)
        h.check(h.fake.states("inventory", None) == ["RUNNING"],
                "the healthy connector was bounced")
        h.wait_alert("ConnectTaskFailed", "resolved", {"connector": "inventory", "task": "2"})
        h.wait_polls(10)
        h.check(len(h.fake.restarts()) == 1, "extra restarts: %r" % h.fake.restarts())
        _no_kip745_params(h)
        h.finish()


def test_2_8_failed_connector_plain_restart():
    with Harness("old-2.8-conn", workers=1, version="2.8.1") as h:
        h.fake.add_connector("inventory", tasks=1)
        h.start_daemon()
        h.fake.fail_connector("inventory")
        h.wait_for(lambda: h.fake.connector_state("inventory") == "RUNNING"
                   and h.fake.restarts("inventory"), what="the connector restarted")
        rs = h.fake.restarts("inventory")
        h.check([(r.path, r.query, r.status) for r in rs]
                == [("/connectors/inventory/restart", {}, 204)],
                "expected one plain POST /connectors/inventory/restart, got %r" % rs)
        h.wait_polls(10)
        h.check(len(h.fake.restarts()) == 1, "extra restarts: %r" % h.fake.restarts())
        _no_kip745_params(h)
        h.finish()


def test_2_2_array_reply_per_connector_status():
    with Harness("old-2.2", workers=2, version="2.2.0") as h:
        h.fake.add_connector("inventory", tasks=2)
        h.fake.add_connector("billing", type="source", tasks=1)
        h.start_daemon()
        h.wait_for(lambda: h.fake.requests(method="GET", path="/connectors/inventory/status")
                   and h.fake.requests(method="GET", path="/connectors/billing/status"),
                   what="per-connector GET /connectors/{c}/status polls")
        owner = h.fake.task_worker_id("inventory", 1)
        h.fake.fail_task("inventory", 1)
        _, a = h.wait_alert("ConnectTaskFailed", "firing", {"connector": "inventory",
                                                            "task": "1"})
        for k, v in {"cluster": "c1", "state": "FAILED", "worker_id": owner,
                     "type": "sink"}.items():
            h.check(a["labels"].get(k) == v, "label %s=%r expected: %r" % (k, v, a["labels"]))
        h.wait_for(lambda: h.fake.task_state("inventory", 1) == "RUNNING", what="recovered")
        rs = h.fake.restarts("inventory")
        h.check([r.path for r in rs] == ["/connectors/inventory/tasks/1/restart"],
                "expected the per-task restart, got %r" % rs)
        h.wait_alert("ConnectTaskFailed", "resolved", {"connector": "inventory", "task": "1"})
        _no_kip745_params(h)
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
