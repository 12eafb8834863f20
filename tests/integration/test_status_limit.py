#!/usr/bin/env python3
"""The status poll at scale: it asks for expand=status only and reads a
connector's config once, when it appears; a body over
connect[].max_body_bytes makes the cluster UNREADABLE (alert with the reason,
/readyz 503, no restart from the stale model) until it fits again."""

import os
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness, connect_rule, default_rules  # noqa: E402


def readyz(h):
    url = "http://%s/readyz" % h.config["global"]["listen"]
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def info_reads(h, name):
    return h.fake.requests(method="GET", path="/connectors/" + name)


def test_over_the_limit_is_unreadable_and_blind_is_not_ready():
    with Harness("status-limit", workers=1) as h:
        for i in range(3):
            h.fake.add_connector("orders-%d" % i, tasks=2)
        rules = default_rules() + [
            connect_rule("ConnectStatusUnreadable", "cluster", "UNREADABLE",
                         labels={"severity": "critical"},
                         annotations={"summary": "{{ $labels.cluster }} unreadable",
                                      "description": "{{ $trace }}"})]
        h.start_daemon(rules=rules,
                       overrides={"connect": [dict(h.base_config()["connect"][0],
                                                   max_body_bytes=4096)]})
        h.wait_for(lambda: readyz(h)[0] == 200, what="/readyz ready")

        # Only the status is polled; each config is read once, when it appears.
        polls = h.fake.requests(method="GET", path="/connectors")
        h.check(polls and all(r.query.get("expand") == ["status"] for r in polls),
                "poll queries: %r" % [r.query for r in polls[:3]])
        h.wait_for(lambda: all(len(info_reads(h, "orders-%d" % i)) == 1 for i in range(3)),
                   what="one GET /connectors/{c} per new connector")
        t0 = time.monotonic()
        h.wait_for(lambda: h.fake.poll_count(since=t0) >= 5, what="5 more polls")
        h.check(all(len(info_reads(h, "orders-%d" % i)) == 1 for i in range(3)),
                "configs read again without a change")

        # Over the limit: unreadable, with the reason, and not ready.
        for i in range(3, 40):
            h.fake.add_connector("orders-%d" % i, tasks=2)
        _, a = h.wait_alert("ConnectStatusUnreadable", "firing", {"cluster": "c1"})
        h.check("larger than 4096 bytes" in a["annotations"].get("description", ""),
                "reason in the alert: %r" % a["annotations"])
        code, text = readyz(h)
        h.check(code == 503 and "c1" in text and "larger than" in text, (code, text))

        # Blind: a task failing now is neither alerted nor restarted.
        h.fake.fail_task("orders-0", 1)
        t1 = time.monotonic()
        h.wait_for(lambda: h.fake.poll_count(since=t1) >= 5, what="5 polls while blind")
        h.check(not h.fake.restarts(), "restart sent on a stale model: %r" % h.fake.restarts())
        h.check(not h.sink.find_alerts("ConnectTaskFailed"), "alert from a stale model")

        # Fits again: ready, resolved, and the failed task is restarted.
        for i in range(3, 40):
            h.fake.remove_connector("orders-%d" % i)
        h.wait_alert("ConnectStatusUnreadable", "resolved", {"cluster": "c1"})
        h.wait_alert("ConnectTaskFailed", "firing", {"connector": "orders-0", "task": "1"})
        h.wait_for(lambda: h.fake.restarts("orders-0"), what="the failed task restarted")
        h.wait_for(lambda: readyz(h)[0] == 200, what="/readyz ready again")
        h.check(h.alive(), "daemon died")
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
