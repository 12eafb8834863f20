#!/usr/bin/env python3
"""The routing tree, silences and inhibition with the real daemon.

Routing: matchers, `continue`, the parent taking what no child takes, group_by
inherited or overridden (`...`). Silences: from the config and through
POST/GET/DELETE /api/v2/silences; they mute notifications but the alert still
fires in /api/v1/alerts; API silences survive a restart. Inhibition: a failed
connector's task alerts are not sent while the connector alert fires."""

import json
import os
import signal
import sys
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness, connect_rule  # noqa: E402


def rules():
    return [connect_rule("ConnectTaskFailed", "task", "FAILED", labels={"severity": "critical"}),
            connect_rule("ConnectConnectorFailed", "connector", "FAILED",
                         labels={"severity": "critical"}),
            connect_rule("ConnectConnectorPaused", "connector", "PAUSED",
                         labels={"severity": "info"})]


def hooks(h, *names):
    return [{"name": n, "webhook": {"url": "%s/%s" % (h.sink.url, n)}} for n in names]


def api(h, method, path, body=None):
    url = "http://%s%s" % (h.config["global"]["listen"], path)
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def api_up(h, path):
    """(status, body) of a GET once the admin API answers, else None."""
    try:
        return api(h, "GET", path)
    except urllib.error.URLError:
        return None


def delivered_to(h, path, **labels):
    return [a for r, a in h.sink.alerts() if r.path == "/" + path
            and all(a["labels"].get(k) == v for k, v in labels.items())]


def rfc3339(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_routing_tree():
    with Harness("routing") as h:
        for c in ("db-orders", "web-clicks", "web-views"):
            h.fake.add_connector(c, tasks=2)
        h.start_daemon({
            "receivers": hooks(h, "default", "crit", "db"),
            "route": {"receiver": "default", "group_by": ["alertname", "cluster", "connector"],
                      "group_wait": "0s", "group_interval": "300ms", "repeat_interval": "1h",
                      "routes": [
                          {"matchers": ['severity="critical"'], "receiver": "crit",
                           "continue": True},
                          {"matchers": ['connector=~"db-.*"'], "receiver": "db",
                           "group_by": ["..."]}]}}, rules=rules())
        h.fake.fail_task("db-orders", 1)
        h.fake.fail_task("web-clicks", 0)
        h.fake.pause("web-views")
        h.wait_for(lambda: delivered_to(h, "db", connector="db-orders"), what="db route")
        h.wait_for(lambda: delivered_to(h, "crit", connector="db-orders"), what="crit + continue")
        h.wait_for(lambda: delivered_to(h, "crit", connector="web-clicks"), what="crit route")
        h.wait_for(lambda: delivered_to(h, "default", connector="web-views"), what="fallback")
        # The db route groups by every label: its group labels carry the task.
        db = [r for r in h.sink.deliveries() if r.path == "/db"][0]
        h.check(db.payload["groupLabels"].get("task") == "1", db.payload["groupLabels"])
        h.check(db.payload["groupKey"].startswith('{}/{connector=~"db-.*"}:'),
                db.payload["groupKey"])
        crit = [r for r in h.sink.deliveries() if r.path == "/crit"][0]
        h.check("task" not in crit.payload["groupLabels"], crit.payload["groupLabels"])
        h.wait_polls(5)
        # Nothing fell through to where it does not belong.
        h.check(not delivered_to(h, "default", alertname="ConnectTaskFailed"),
                "a routed alert also reached the root's receiver")
        h.check(not delivered_to(h, "db", connector="web-clicks"), "web alert on the db route")
        h.check(not delivered_to(h, "crit", connector="web-views"), "info alert on crit")
        h.finish()


def test_silences():
    with Harness("silences") as h:
        for c in ("loud", "quiet", "hushed", "later"):
            h.fake.add_connector(c, tasks=1)
        overrides = {
            "receivers": hooks(h, "hook"),
            "silences": [{"matchers": ['connector="quiet"'], "comment": "maintenance"}],
        }
        h.start_daemon(overrides, rules=rules())
        now = datetime.now(timezone.utc)
        st, body = api(h, "POST", "/api/v2/silences", {
            "matchers": [{"name": "connector", "value": "hush.*", "isRegex": True}],
            "startsAt": rfc3339(now), "endsAt": rfc3339(now + timedelta(hours=1)),
            "createdBy": "test", "comment": "deploy"})
        h.check(st == 200 and body.get("silenceID"), (st, body))
        hushed_id = body["silenceID"]
        st, body = api(h, "POST", "/api/v2/silences", {
            "matchers": [{"name": "connector", "value": "later", "isRegex": False}],
            "startsAt": rfc3339(now), "endsAt": rfc3339(now + timedelta(hours=1)),
            "createdBy": "test", "comment": "until DELETE"})
        later_id = body["silenceID"]
        st, bad = api(h, "POST", "/api/v2/silences", {
            "matchers": [{"name": "x", "value": ".*", "isRegex": True}],
            "startsAt": rfc3339(now), "endsAt": rfc3339(now + timedelta(hours=1)),
            "createdBy": "test", "comment": "matches everything"})
        h.check(st == 400 and "empty label set" in bad, (st, bad))

        st, listed = api(h, "GET", "/api/v2/silences")
        h.check(st == 200 and len(listed) == 3, listed)
        by_id = {s["id"]: s for s in listed}
        h.check(by_id[hushed_id]["status"]["state"] == "active", by_id[hushed_id])
        h.check(any(s.get("source") == "config" and s["comment"] == "maintenance"
                    for s in listed), listed)

        for c in ("loud", "quiet", "hushed", "later"):
            h.fake.fail_task(c, 0)
        h.wait_alert("ConnectTaskFailed", labels={"connector": "loud"})
        # Still evaluated: all four fire in the alerts API.
        h.wait_for(lambda: len([a for a in api(h, "GET", "/api/v1/alerts")[1]["data"]["alerts"]
                                if a["state"] == "firing"]) == 4, what="four firing alerts")
        h.wait_polls(5)
        for c in ("quiet", "hushed", "later"):
            h.check(not h.sink.find_alerts("ConnectTaskFailed", labels={"connector": c}),
                    "silenced %s was notified" % c)

        st, _ = api(h, "DELETE", "/api/v2/silences?id=" + later_id)
        h.check(st == 200, st)
        h.wait_alert("ConnectTaskFailed", labels={"connector": "later"},
                     what="the alert once its silence was expired")
        st, _ = api(h, "DELETE", "/api/v2/silences?id=" + later_id)
        h.check(st == 400, "expiring twice answered %s" % st)
        config_id = [s["id"] for s in listed if s.get("source") == "config"][0]
        h.check(api(h, "DELETE", "/api/v2/silences?id=" + config_id)[0] == 403, "config silence")
        h.check(api(h, "DELETE", "/api/v2/silences?id=nope")[0] == 404, "unknown id")

        # API silences survive a restart (the store).
        h.proc.send_signal(signal.SIGTERM)
        h.check(h.proc.wait(10) == 0, "clean exit")
        h.start_daemon(overrides, rules=rules(), wait_polls=0)
        h.wait_polls(2)
        st, listed = h.wait_for(lambda: api_up(h, "/api/v2/silences"), what="the admin API")
        by_id = {s["id"]: s for s in listed}
        h.check(by_id.get(hushed_id, {}).get("status", {}).get("state") == "active", listed)
        h.check(by_id.get(later_id, {}).get("status", {}).get("state") == "expired", listed)
        h.wait_polls(5)
        h.check(not h.sink.find_alerts("ConnectTaskFailed", labels={"connector": "hushed"}),
                "the restored silence did not hold")
        h.finish()


def test_inhibition():
    with Harness("inhibit") as h:
        h.fake.add_connector("orders", tasks=2)
        h.fake.add_connector("clicks", tasks=1)
        h.start_daemon({
            "receivers": hooks(h, "hook"),
            "inhibit_rules": [{"source_matchers": ['alertname="ConnectConnectorFailed"'],
                               "target_matchers": ['alertname="ConnectTaskFailed"'],
                               "equal": ["cluster", "connector"]}]}, rules=rules())
        h.fake.fail_connector("orders")
        h.fake.fail_task("orders", 0)
        h.fake.fail_task("clicks", 0)
        h.wait_alert("ConnectConnectorFailed", labels={"connector": "orders"})
        h.wait_alert("ConnectTaskFailed", labels={"connector": "clicks"},
                     what="the task alert of another connector")
        h.wait_polls(5)
        h.check(not h.sink.find_alerts("ConnectTaskFailed", labels={"connector": "orders"}),
                "a task alert went out while its connector alert fired")
        # Once the source resolves, the target is sent.
        h.fake.set_connector_state("orders", "RUNNING")
        h.wait_alert("ConnectTaskFailed", labels={"connector": "orders"},
                     what="the task alert after the connector recovered")
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
