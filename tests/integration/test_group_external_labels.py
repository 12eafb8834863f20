#!/usr/bin/env python3
"""A route grouping by an external label (global.external_labels) groups as
Alertmanager would, which sees the external labels on every alert: the
webhook's groupLabels and groupKey carry the label, and alerts of two
connectors share the one group."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Harness  # noqa: E402


def test_group_by_external_label():
    with Harness("group-external", workers=1) as h:
        h.fake.add_connector("orders", tasks=1)
        h.fake.add_connector("billing", tasks=1)
        h.start_daemon({"global": {"external_labels": {"site": "t1"}},
                        "remediation": {"enabled": False},
                        "route": {"group_by": ["alertname", "site"], "group_wait": "1s"}})
        h.fake.fail_task("orders", 0)
        h.fake.fail_task("billing", 0)
        d, _ = h.wait_alert("ConnectTaskFailed", "firing",
                            what="a firing ConnectTaskFailed notification")
        h.wait_for(lambda: len({a["labels"]["connector"]
                                for dv, a in h.sink.find_alerts("ConnectTaskFailed", "firing")
                                if dv.payload["groupLabels"].get("site") == "t1"}) == 2,
                   what="both connectors' alerts notified in the site=t1 group")
        groups = {dv.payload["groupKey"]
                  for dv, _ in h.sink.find_alerts("ConnectTaskFailed", "firing")}
        h.check(groups == {'{}:{alertname="ConnectTaskFailed", site="t1"}'},
                "one group keyed by alertname and the external site: %r" % groups)
        h.check(d.payload["groupLabels"] == {"alertname": "ConnectTaskFailed", "site": "t1"},
                "groupLabels: %r" % d.payload["groupLabels"])
        h.check(d.payload["commonLabels"].get("site") == "t1",
                "commonLabels: %r" % d.payload["commonLabels"])
        h.finish()


if __name__ == "__main__":
    from harness import run_tests
    run_tests(globals())
