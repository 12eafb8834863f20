#!/usr/bin/env python3
"""A sick worker is named: KcwatchWorkerSuspect{cluster, worker_id}.

Three workers; every task that sits on one of them fails (its disk, say), the
tasks on the other two keep running. kcwatch says so in one alert naming that
worker, whose text warns that restarts can bring the tasks back onto it.
Failures spread over the workers name nobody."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402


def test_failures_on_one_worker_name_it():
    with Harness("worker-suspect", workers=3) as h:
        for i in range(6):
            h.fake.add_connector("c%d" % i, tasks=3)
        # Every restart fails again meanwhile: the worker stays sick.
        h.start_daemon({"remediation": {"budget": {"max_restarts": 1}}})
        h.fake.fail_restarts_for(120)
        sick = h.fake.worker_id(1)
        on_sick = [(c, t) for c in ("c%d" % i for i in range(6)) for t in range(3)
                   if h.fake.task_worker_id(c, t) == sick]
        h.check(len(on_sick) >= 3, "the fake put %d tasks on %s" % (len(on_sick), sick))
        for c, t in on_sick:
            h.fake.fail_task(c, t, harness.TASK_FAILED_TRACE)
        _, alert = h.wait_alert("KcwatchWorkerSuspect", "firing", {"cluster": "c1"})
        h.check(alert["labels"].get("worker_id") == sick,
                "names the worker: %r, want %s" % (alert["labels"], sick))
        h.check("back onto the same worker" in alert["annotations"].get("description", ""),
                "says restarts can land there again: %r" % alert["annotations"])
        h.check(len(h.sink.find_alerts("KcwatchWorkerSuspect", "firing")) == 1,
                "one alert for one sick worker")
        h.finish()


def test_spread_failures_name_nobody():
    with Harness("worker-spread", workers=3) as h:
        for i in range(6):
            h.fake.add_connector("c%d" % i, tasks=3)
        h.start_daemon({"remediation": {"enabled": False}})
        by_worker = {}
        for c in ("c%d" % i for i in range(6)):
            for t in range(3):
                by_worker.setdefault(h.fake.task_worker_id(c, t), []).append((c, t))
        for tasks in by_worker.values():  # one failure per worker
            h.fake.fail_task(tasks[0][0], tasks[0][1], harness.TASK_FAILED_TRACE)
        h.wait_for(lambda: len(h.sink.find_alerts("ConnectTaskFailed", "firing")) >= 3,
                   what="the three task alerts")
        h.wait_polls(10)
        h.check(not h.sink.find_alerts("KcwatchWorkerSuspect"),
                "a worker was named for failures spread over all of them")
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
