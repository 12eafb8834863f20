#!/usr/bin/env python3
"""remediation.inhibit holds restarts, not notifications.

While the source alert (here BrokersUnavailable, standing for a PromQL alert
on broker availability) fires for cluster c1, no failed task of c1 is
restarted: the alerts are notified, labelled remediation="held", with a note
saying why. When the source resolves, the held tasks are restarted at
remediation.rate (60/min here: one a second), not all at once."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness, connect_rule  # noqa: E402

HELD = ["o%d" % i for i in range(6)]


def rules():
    return [connect_rule("ConnectTaskFailed", "task", "FAILED", restart=True),
            connect_rule("BrokersUnavailable", "connector", "FAILED", connector="probe",
                         labels={"severity": "critical"})]


def test_source_holds_restarts_then_paced_release():
    with Harness("remediation-inhibit", workers=1) as h:
        h.fake.add_connector("probe", tasks=1)
        for c in HELD:
            h.fake.add_connector(c, tasks=1)
        h.start_daemon({"remediation": {
            "rate": 60,
            "max_concurrent": 10,
            "inhibit": [{"source_matchers": ['alertname="BrokersUnavailable"'],
                         "target_matchers": ['alertname="ConnectTaskFailed"'],
                         "equal": ["cluster"]}]}}, rules=rules())
        h.fake.set_connector_state("probe", "FAILED", "java.net.ConnectException: refused")
        h.wait_alert("BrokersUnavailable", "firing", {"cluster": "c1"})
        for c in HELD:
            h.fake.fail_task(c, 0, harness.TASK_FAILED_TRACE)

        # Notified (inhibition of restarts is not of notifications), held.
        for c in HELD:
            _, a = h.wait_alert("ConnectTaskFailed", "firing", {"connector": c},
                                pred=lambda a: a["labels"].get("remediation") == "held")
            h.check("remediation.inhibit" in a["annotations"].get("remediation", ""),
                    "%s: the note says why: %r" % (c, a["annotations"]))
        h.wait_polls(15)
        h.check(not h.fake.restarts(), "restarted while the source fired: %r"
                % h.fake.restarts())

        h.fake.set_connector_state("probe", "RUNNING")
        released = time.monotonic()
        h.wait_for(lambda: all(h.fake.task_state(c, 0) == "RUNNING" for c in HELD),
                   timeout=30, what="the held tasks restarted after the source resolved")
        times = sorted(r.time for r in h.fake.restarts())
        h.check(len(times) == len(HELD), "one restart per held task: %r" % h.fake.restarts())
        gaps = [b - a for a, b in zip(times, times[1:])]
        h.check(all(g >= 0.8 for g in gaps),
                "restarts at 60/min are about a second apart, gaps %r" % gaps)
        print("released restarts at %r s after the source resolved"
              % [round(t - released, 1) for t in times])
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
