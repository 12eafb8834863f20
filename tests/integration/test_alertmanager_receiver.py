#!/usr/bin/env python3
"""kcwatch pushing to a real Alertmanager HA pair (Debian's prometheus-alertmanager).

Two Alertmanagers clustered on loopback, each with a webhook receiver of the
test's; kcwatch's `alertmanager` receiver lists both. A failed task must show
on both members with endsAt ahead of now, be re-sent before it expires (its
endsAt moves forward), reach the test's webhook through Alertmanager as
firing, and once the task runs again reach it as resolved, with endsAt set
on both members."""

import os
import sys
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from am_harness import start_pair  # noqa: E402
from harness import Harness, connect_rule  # noqa: E402
from webhook_sink import parse_rfc3339  # noqa: E402


def ends_at(alert):
    return parse_rfc3339(alert.get("endsAt"))


def test_ha_pair_fired_and_resolved():
    with Harness("am-receiver") as h:
        am1 = am2 = None
        try:
            am1, am2 = start_pair(h.tmp, h.sink.url + "/from-am")
            h.fake.add_connector("orders", tasks=2)
            rules = [connect_rule("ConnectTaskFailed", "task", "FAILED"),
                     connect_rule("ConnectClusterUnreachable", "cluster", "UNREACHABLE")]
            h.start_daemon({
                "receivers": [{"name": "am", "alertmanager": {
                    "urls": [am1.url, am2.url + "/"], "resend_interval": "1s"}}],
                "route": {"receiver": "am", "group_wait": "0s", "group_interval": "200ms",
                          "repeat_interval": "1h"},
            }, rules=rules)
            t_fail = datetime.now(timezone.utc)
            h.fake.fail_task("orders", 1)
            for am in (am1, am2):
                got = h.wait_for(lambda: am.alerts(alertname="ConnectTaskFailed",
                                                   connector="orders", task="1"),
                                 what="the alert on %s" % am.name)
                a = got[0]
                h.check(a["status"]["state"] == "active", a)
                h.check(ends_at(a) > t_fail, "endsAt %s is not ahead" % a["endsAt"])
                h.check(a["labels"]["cluster"] == "c1" and a["labels"]["severity"] == "warning", a)
                h.check(a["annotations"]["summary"] == "Task orders/1 failed", a)
                # a connect: rule links to its entry in kcwatch's rules API
                h.check(a["generatorURL"].endswith("/api/v1/rules?rule_group%5B%5D=connect-status"
                                                   "&rule_name%5B%5D=ConnectTaskFailed"),
                        a["generatorURL"])
            # Re-sent before it expires: Alertmanager sees a later endsAt.
            first_end = ends_at(am1.alerts(alertname="ConnectTaskFailed")[0])
            h.wait_for(lambda: ends_at(am1.alerts(alertname="ConnectTaskFailed")[0]) > first_end,
                       what="a re-send moving endsAt forward")
            # Alertmanager routes it to the test's webhook.
            fired = h.wait_alert("ConnectTaskFailed", "firing", {"task": "1"})
            h.check(fired[0].path == "/from-am", fired[0].path)

            h.fake.set_task_state("orders", 1, "RUNNING")
            t_ok = time.monotonic()
            resolved = h.wait_alert("ConnectTaskFailed", "resolved", {"task": "1"},
                                    what="the resolution through Alertmanager")
            h.check(resolved[0].time >= t_ok, "resolved before the task recovered")
            for am in (am1, am2):
                # A resolved alert leaves the active list once its endsAt passed.
                h.wait_for(lambda: not [a for a in am.alerts(alertname="ConnectTaskFailed")
                                        if a["status"]["state"] == "active"],
                           what="the alert resolved on %s" % am.name)
            h.finish()
        finally:
            for am in (am1, am2):
                if am:
                    am.close()


if __name__ == "__main__":
    harness.run_tests(globals())
