#!/usr/bin/env python3
"""Logs say what changed, once: a storm of 1,000 alerts is a few lines (10
one by one, one summary with the counts per alertname) while every alert is
in /api/v1/alerts; a worker that goes down is logged when it goes down and
when it is back, with the count of failed requests, not once per poll; a
cluster recovering says how many polls failed; the admin API's listening
line appears once, also across reloads."""

import json
import os
import signal
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness, connect_rule  # noqa: E402

N = 1000


def alerts(h):
    url = "http://%s/api/v1/alerts" % h.config["global"]["listen"]
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())["data"]["alerts"]


def test_alert_storm_is_summarised():
    with Harness("storm", workers=1) as h:
        h.fake.add_connector("huge", tasks=N)
        h.start_daemon({"remediation": {"enabled": False},
                        "global": {"log": {"level": "info"}},
                        "route": {"group_interval": "1h"}},
                       rules=[connect_rule("ConnectTaskFailed", "task", "FAILED")])
        for t in range(N):
            h.fake.fail_task("huge", t)
        h.wait_for(lambda: len([a for a in alerts(h) if a["state"] == "firing"]) == N,
                   what="all %d alerts firing in the API" % N)
        summary = h.wait_for(lambda: h.log_records(msg="alert storm: transitions summarised"),
                             what="the storm summary line")
        firing_lines = h.log_records(msg="alert firing")
        h.check(len(firing_lines) <= 10 * len(summary) + 10,
                "%d 'alert firing' lines for %d alerts" % (len(firing_lines), N))
        total = sum(int(s["summarised"]) for s in summary) + len(firing_lines)
        h.check(total == N, "lines + summarised = %d, want %d" % (total, N))
        h.check(all(s["level"] == "warn" and "ConnectTaskFailed: " in s["by_alertname"]
                    and s["examples"].startswith("c1/huge/") for s in summary), summary)
        h.check(len(h.log_lines()) < 200, "%d log lines for one storm" % len(h.log_lines()))
        h.finish()


def test_worker_down_logged_per_episode():
    with Harness("episodes", workers=2) as h:
        h.fake.add_connector("orders", tasks=1)
        h.start_daemon({"global": {"log": {"level": "debug"}}})
        h.fake.worker_down(0)
        h.fake.worker_down(1)
        h.wait_alert("ConnectClusterUnreachable", "firing", {"cluster": "c1"})
        # a dozen failed polls (DEBUG says each); above DEBUG nothing repeats
        h.wait_for(lambda: len(h.log_records(msg="connect worker still down")) >= 24,
                   what="a dozen failed polls of both workers")
        down = h.log_records(msg="connect worker down")
        h.check(len(down) == 2 and {d["url"] for d in down} == set(h.fake.urls),
                "one 'worker down' per worker: %r" % down)
        h.check(all(r["level"] == "debug" for r in
                    h.log_records(msg="connect worker failed, trying the next one")),
                "per-poll failover lines above debug")
        h.check(len(h.log_records(msg="connect cluster unreachable", level="warn")) == 1,
                "cluster unreachable logged more than once")
        h.fake.worker_up(0)
        h.fake.worker_up(1)
        back = h.wait_for(lambda: h.log_records(msg="connect worker back"),
                          what="the worker back line")
        h.check(int(back[0]["failed_requests"]) >= 12 and back[0]["down_for"], back)
        rec = h.wait_for(lambda: h.log_records(msg="connect poll recovered"), what="recovered")
        h.check(len(rec) == 1 and int(rec[0]["failed_polls"]) >= 12, rec)

        # the admin API's listening line: once, also after reloads
        for _ in range(2):
            before = len(h.log_lines())
            h.proc.send_signal(signal.SIGHUP)
            h.wait_for(lambda: h.log_records(before, msg="configuration reloaded"),
                       what="the reload")
        h.check(len(h.log_records(msg="admin API listening")) == 1,
                "listening lines: %r" % h.log_records(msg="admin API listening"))
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
