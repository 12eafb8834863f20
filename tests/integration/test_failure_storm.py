#!/usr/bin/env python3
"""A failure storm is healed like an operator would: one canary, then a paced release.

20 of 40 tasks (task 0 of 20 connectors) fail together with one exception,
and every restart fails for 20 s (the cause, a broker, persists), then
succeeds. Measured:
  - at most 5 restart requests go out during those 20 s (task by task it is
    dozens);
  - all 20 tasks are RUNNING within 40 s after the cause clears;
  - the receiver (route grouped by cluster, group_wait 2s, group_interval 5s)
    gets at most 3 notifications for the whole episode: KcwatchFailureStorm
    with its count and common cause, then its resolution; the member task
    alerts stay visible in the API while their notifications are held.
The safety rules stay: a PAUSED connector among the failures is never
restarted."""

import html
import json
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402

N = 20
CAUSE_SECONDS = 20
TRACE = ("org.apache.kafka.connect.errors.ConnectException: Unrecoverable exception from "
         "producer send callback\n"
         "\tat org.apache.kafka.connect.runtime.WorkerSourceTask.maybeThrowProducerSendException"
         "(WorkerSourceTask.java:312)\n"
         "Caused by: org.apache.kafka.common.errors.TimeoutException: Expiring %d record(s) for "
         "orders-%d:120005 ms has passed since batch creation\n")
ROOT_CAUSE = ("org.apache.kafka.common.errors.TimeoutException: Expiring N record(s) for "
              "orders-N:N ms has passed since batch creation")


def name(i):
    return "conn-%02d" % i


def api_alerts(h):
    url = "http://%s/api/v1/alerts" % h.config["global"]["listen"]
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)["data"]["alerts"]


def status_page(h):
    url = "http://%s/" % h.config["global"]["listen"]
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode("utf-8")


def hold_until(h, deadline, what):
    h.wait_for(lambda: time.monotonic() >= deadline, timeout=deadline - time.monotonic() + 5,
               what=what)


def test_storm_canary_then_paced_release():
    with Harness("storm", workers=2) as h:
        for i in range(N):
            h.fake.add_connector(name(i), type="source", tasks=2)
        h.start_daemon({
            "remediation": {"backoff": {"initial": "2s", "max": "8s", "multiplier": 2,
                                        "jitter": 0},
                            "budget": {"max_restarts": 20, "window": "1h"},
                            "rate": 120},
            "route": {"receiver": "hook", "group_by": ["cluster"], "group_wait": "2s",
                      "group_interval": "5s", "repeat_interval": "1h"},
        })
        h.fake.fail_restarts_for(CAUSE_SECONDS)
        t0 = time.monotonic()
        for i in range(N):
            h.fake.fail_task(name(i), 0, TRACE % (i + 1, i))

        # The storm is told once, with its count and common cause.
        _, storm = h.wait_alert("KcwatchFailureStorm", "firing", {"cluster": "c1"},
                                what="the storm notification")
        h.check(storm["labels"].get("root_cause") == ROOT_CAUSE,
                "common root cause: %r" % storm["labels"])
        h.check(storm["annotations"].get("tasks") == str(N), "count: %r" % storm["annotations"])
        h.check("conn-00" in storm["annotations"].get("connectors", ""),
                "affected connectors: %r" % storm["annotations"])
        h.check("canary" in storm["annotations"].get("canary", ""),
                "canary state: %r" % storm["annotations"])
        # Their own alerts are in the API, muted for the receiver.
        firing = [a for a in api_alerts(h) if a["labels"].get("alertname") == "ConnectTaskFailed"
                  and a.get("state") == "firing"]
        h.check(len(firing) == N, "%d task alerts in the API, want %d" % (len(firing), N))
        h.check(not h.sink.find_alerts("ConnectTaskFailed"),
                "member task alerts were notified during the storm")
        # The status page lists the storm in progress (escaped root cause).
        page = status_page(h)
        storms = page[page.index('id="storms"'):]
        storms = storms[:storms.index("</section>")]
        h.check("(1)" in storms and "c1" in storms and html.escape(ROOT_CAUSE, quote=False) in storms
                and "<td class=\"num\">%d</td>" % N in storms,
                "the status page's storms section:\n%s" % storms)

        hold_until(h, t0 + CAUSE_SECONDS, "the cause to persist for %ds" % CAUSE_SECONDS)
        during = [r for r in h.fake.restarts() if r.time <= t0 + CAUSE_SECONDS]
        h.check(len(during) <= 5, "%d restart requests while the cause persisted (max 5): %r"
                % (len(during), [(round(r.time - t0, 1), r.raw_path) for r in during]))
        h.check(len(during) >= 2, "the canary was retried with back-off: %r" % during)
        canary = {r.path for r in during}
        h.check(len(canary) == 1, "one canary, got %r" % canary)
        print("restart requests while the cause persisted: %d %r"
              % (len(during), [round(r.time - t0, 1) for r in during]))

        cleared = t0 + CAUSE_SECONDS
        h.wait_for(lambda: all(h.fake.task_state(name(i), 0) == "RUNNING" for i in range(N)),
                   timeout=cleared + 40 - time.monotonic(),
                   what="all %d tasks RUNNING within 40 s after the cause cleared" % N)
        print("all %d RUNNING %.1f s after the cause cleared" % (N, time.monotonic() - cleared))
        # Paced: never all at once.
        after = sorted(r.time for r in h.fake.restarts() if r.time > cleared)
        h.check(len(after) >= N - 1, "every held task restarted: %d" % len(after))
        burst = max(sum(1 for t in after if s <= t < s + 1.0) for s in after)
        h.check(burst <= 3, "%d restarts within one second at 120/min" % burst)

        h.wait_alert("KcwatchFailureStorm", "resolved", {"cluster": "c1"},
                     what="the storm's resolution")
        h.wait_polls(40)  # more than a group_interval: nothing else comes
        sent = h.sink.deliveries()
        print("notifications for the episode: %d %r" % (len(sent), sent))
        h.check(len(sent) <= 3, "%d notifications for one storm (max 3): %r" % (len(sent), sent))
        h.check(not h.sink.find_alerts("ConnectTaskFailed", status="firing"),
                "a member task alert fired at the receiver")
        h.finish()


def test_paused_connector_in_a_storm_is_left_alone():
    with Harness("storm-paused", workers=1) as h:
        for i in range(12):
            h.fake.add_connector(name(i), type="sink", tasks=1)
        h.start_daemon({"remediation": {"rate": 600}})
        for i in range(12):
            h.fake.fail_task(name(i), 0, TRACE % (1, i))
        h.fake.pause(name(5))
        h.wait_alert("KcwatchFailureStorm", "firing", {"cluster": "c1"})
        h.wait_for(lambda: all(h.fake.task_state(name(i), 0) == "RUNNING"
                               for i in range(12) if i != 5),
                   what="the storm's other members healed")
        h.check(not h.fake.restarts(name(5)), "PAUSED connector restarted in a storm: %r"
                % h.fake.restarts(name(5)))
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
