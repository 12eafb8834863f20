#!/usr/bin/env python3
"""Operator intent is respected: a FAILED task under a PAUSED connector, and a
FAILED task of an excluded connector, alert but are never restarted. A normal
connector failing at the same time is restarted, so remediation is on."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402


def _not_restarted(h, connector):
    """Waits for a webhook alert about `connector` whose remediation
    annotation says it was not restarted; returns the annotation."""
    def find():
        for _, a in h.sink.find_alerts("ConnectTaskFailed", "firing",
                                       {"connector": connector}):
            note = a["annotations"].get("remediation", "")
            if "not restarted" in note:
                return note
        return None
    return h.wait_for(find, what="a firing webhook for %s with remediation "
                                 "'not restarted: ...'" % connector)


def _restarts_to(h, connector):
    return [r for r in h.fake.requests(method="POST")
            if r.path.startswith("/connectors/%s/" % connector)]


def test_paused_connector_not_restarted():
    with Harness("paused", workers=2) as h:
        h.fake.add_connector("quiet", tasks=2, paused=True)
        h.fake.add_connector("busy", tasks=1)
        h.start_daemon()
        h.fake.fail_task("quiet", 1)
        h.fake.fail_task("busy", 0)
        h.check(h.fake.connector_state("quiet") == "PAUSED", "fake: connector PAUSED")
        h.wait_for(lambda: h.fake.restarts("busy"), what="the control connector's restart")
        note = _not_restarted(h, "quiet")
        h.check("paused" in note.lower(), "reason should name PAUSED: %r" % note)
        _, a = h.wait_alert("ConnectTaskFailed", "firing", {"connector": "quiet", "task": "1"})
        h.check(a["labels"].get("state") == "FAILED", a["labels"])
        h.wait_polls(10)
        h.check(not _restarts_to(h, "quiet"), "restart sent to a PAUSED connector: %r"
                % _restarts_to(h, "quiet"))
        h.check(not h.fake.requests(method="PUT"), "the daemon must not pause/resume/stop")
        h.check(h.fake.task_state("quiet", 1) == "FAILED", "task still FAILED")
        h.finish()


def test_stopped_connector_not_restarted():
    with Harness("stopped", workers=1) as h:
        h.fake.add_connector("halted", tasks=1)
        h.fake.add_connector("busy", tasks=1)
        h.start_daemon(rules=[harness.connect_rule("ConnectConnectorFailed", "connector",
                                                   "FAILED", restart=True),
                              harness.connect_rule("ConnectTaskFailed", "task", "FAILED",
                                                   restart=True)])
        h.fake.stop_connector("halted")
        h.fake.fail_task("busy", 0)
        h.wait_for(lambda: h.fake.restarts("busy"), what="the control connector's restart")
        h.wait_polls(10)
        h.check(not _restarts_to(h, "halted"), "restart sent to a STOPPED connector")
        h.check(not h.sink.find_alerts(labels={"connector": "halted"}),
                "STOPPED is not a failure")
        h.finish()


def test_excluded_connector_not_restarted():
    with Harness("excluded", workers=2) as h:
        h.fake.add_connector("legacy-db", tasks=1)
        h.fake.add_connector("orders", tasks=1)
        h.start_daemon()
        h.fake.fail_task("legacy-db", 0)
        h.fake.fail_task("orders", 0)
        h.wait_for(lambda: h.fake.restarts("orders"), what="orders restarted")
        note = _not_restarted(h, "legacy-db")
        h.check("exclu" in note.lower(), "reason should say excluded: %r" % note)
        h.wait_polls(10)
        h.check(not _restarts_to(h, "legacy-db"), "restart sent to an excluded connector")
        h.check(h.fake.task_state("legacy-db", 0) == "FAILED", "still FAILED")
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
