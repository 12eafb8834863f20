#!/usr/bin/env python3
"""One connector with thousands of FAILED tasks must not freeze the loop.

Every FAILED task is a firing ConnectTaskFailed alert whose rule restarts with
scope `failed`, so each evaluation asks the remediator about the same
connector thousands of times. The work per evaluation must stay linear in the
number of tasks: /healthz, answered on the same loop, keeps answering fast
over several evaluations and polls. (Before the fix each alert re-matched
every task's trace against the unrecoverable patterns: 2,000 tasks took
/healthz to 19 s.) Dry run keeps the tasks FAILED, and the traces match no
unrecoverable pattern, so every evaluation does the whole check."""

import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402

N_TASKS = int(os.environ.get("KCW_MANY_TASKS") or 3000)
# Linear work for 3,000 tasks is a few ms (tens under ASan); the quadratic
# check took seconds per evaluation.
MAX_HEALTHZ_S = 1.5


def healthz(url):
    t0 = time.monotonic()
    with urllib.request.urlopen(url, timeout=30) as r:
        r.read()
        status = r.status
    return status, time.monotonic() - t0


def test_thousands_of_failed_tasks_keep_healthz_fast():
    with Harness("many-failed", workers=1) as h:
        h.fake.add_connector("huge", tasks=N_TASKS)
        for t in range(N_TASKS):
            h.fake.fail_task("huge", t, harness.TASK_FAILED_TRACE + "\tat task%d\n" % t)
        h.start_daemon({"remediation": {"dry_run": True},
                        "global": {"log": {"level": "info"}},
                        "route": {"group_interval": "1h"}})
        url = "http://%s/healthz" % h.config["global"]["listen"]
        h.wait_for(lambda: h.log_records(msg="dry run: restart not sent"),
                   what="the first remediation decision (every task considered once)")
        worst = 0.0
        polls0 = h.fake.poll_count()
        t_end = time.monotonic() + 6  # six evaluations (evaluation_interval 1s)
        while time.monotonic() < t_end:
            status, took = healthz(url)
            h.check(status == 200, "/healthz answered %d" % status)
            worst = max(worst, took)
        h.check(h.fake.poll_count() > polls0 + 5, "the daemon stopped polling")
        h.check(worst < MAX_HEALTHZ_S,
                "/healthz took %.2fs with %d FAILED tasks (limit %.1fs)"
                % (worst, N_TASKS, MAX_HEALTHZ_S))
        print("  %d FAILED tasks: worst /healthz %.3fs" % (N_TASKS, worst))
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
