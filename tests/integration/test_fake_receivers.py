#!/usr/bin/env python3
"""The fake Slack and PagerDuty endpoints themselves: their payload checks and
scripted answers (no kcwatch needed)."""

import copy
import http.client
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from fake_pagerduty import FakePagerDuty  # noqa: E402
from fake_slack import FakeSlack  # noqa: E402

TRIGGER = {
    "routing_key": "R0UT1NGKEY", "event_action": "trigger", "dedup_key": "kcwatch-0123",
    "client": "kcwatch", "client_url": "http://127.0.0.1:9464/api/v1/alerts",
    "payload": {"summary": "ConnectTaskFailed: orders task 0 failed", "source": "w1:8083",
                "severity": "critical", "timestamp": "2024-10-25T10:00:00.123Z",
                "component": "orders task 0", "group": "c1", "class": "ConnectTaskFailed",
                "custom_details": {"labels": {"task": "0"}}},
}


def post(url, path, body):
    host, port = url.replace("http://", "").split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        c.request("POST", path, body=data, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, r.read(), dict(r.getheaders())
    finally:
        c.close()


def ok(cond, msg):
    if not cond:
        raise AssertionError(msg)


def test_slack_checks_messages():
    with FakeSlack() as s:
        st, body, _ = post(s.url, "/services/T/B/X",
                           {"text": "[FIRING:1] *x* &lt;init&gt; <https://a.example/b|link>",
                            "channel": "#connect", "icon_emoji": ":fire:"})
        ok((st, body) == (200, b"ok"), (st, body))
        ok(s.violations == [], s.violations)
        for bad, why in (({"text": ""}, "non-empty"), ({"text": "a < b"}, "unescaped <"),
                         ({"text": "a & b"}, "unescaped &"), ({"text": "x", "blocks": []},
                                                              "unexpected key"),
                         ({"text": "x", "icon_emoji": "fire"}, "icon_emoji"),
                         ({"text": "x" * 40001}, "cuts at")):
            st, body, _ = post(s.url, "/services/T/B/X", bad)
            ok((st, body) == (400, b"invalid_payload"), (bad, st, body))
            ok(any(why in v for v in s.violations[-3:]), (why, s.violations))
        ok(len(s.texts()) == 1, s.texts())


def test_slack_scripted():
    with FakeSlack() as s:
        s.fail_next(1, 429, retry_after=3)
        s.fail_next(1, 500)
        s.fail_next(1, 404)
        st, body, h = post(s.url, "/x", {"text": "hi"})
        ok((st, body, h.get("Retry-After")) == (429, b"rate_limited", "3"), (st, body, h))
        ok(post(s.url, "/x", {"text": "hi"})[:2] == (500, b"rollup_error"), "500")
        ok(post(s.url, "/x", {"text": "hi"})[:2] == (404, b"no_service"), "404")
        ok(post(s.url, "/x", {"text": "hi"})[:2] == (200, b"ok"), "then ok")
        ok(s.texts() == ["hi"], s.texts())


def test_pagerduty_checks_events():
    with FakePagerDuty() as p:
        st, body, _ = post(p.url, "/v2/enqueue", TRIGGER)
        ok(st == 202 and json.loads(body) == {"status": "success", "message": "Event processed",
                                              "dedup_key": "kcwatch-0123"}, (st, body))
        st, body, _ = post(p.url, "/v2/enqueue", {"routing_key": "R0UT1NGKEY",
                                                 "event_action": "resolve",
                                                 "dedup_key": "kcwatch-0123"})
        ok(st == 202, (st, body))
        ok(p.violations == [], p.violations)
        ok(p.incidents() == {"kcwatch-0123": "resolved"}, p.incidents())
        cases = []
        e = copy.deepcopy(TRIGGER)
        e["payload"]["summary"] = "s" * 1025
        cases.append((e, "1..1024"))
        e = copy.deepcopy(TRIGGER)
        e["payload"]["severity"] = "high"
        cases.append((e, "severity"))
        e = copy.deepcopy(TRIGGER)
        del e["payload"]["source"]
        cases.append((e, "source"))
        e = copy.deepcopy(TRIGGER)
        e["payload"]["timestamp"] = "yesterday"
        cases.append((e, "timestamp"))
        cases.append(({"routing_key": "k", "event_action": "resolve"}, "needs a dedup_key"))
        e = copy.deepcopy(TRIGGER)
        e["payload"]["custom_details"] = {"big": "x" * (512 * 1024)}
        cases.append((e, "512 KB"))
        for bad, why in cases:
            st, body, _ = post(p.url, "/v2/enqueue", bad)
            ok(st == 400, (why, st))
            j = json.loads(body)
            ok(j["status"] == "invalid event" and any(why in x for x in j["errors"]), (why, j))
        st, _, _ = post(p.url, "/v1/enqueue", TRIGGER)
        ok(st == 400 and any("/v2/enqueue" in v for v in p.violations), p.violations)


def test_pagerduty_scripted():
    with FakePagerDuty() as p:
        p.fail_next(1, 429, retry_after=1)
        p.fail_next(1, 500)
        p.fail_next(1, 400)
        st, body, h = post(p.url, "/v2/enqueue", TRIGGER)
        ok(st == 429 and h.get("Retry-After") == "1" and b"throttle" in body, (st, body, h))
        ok(post(p.url, "/v2/enqueue", TRIGGER)[0] == 500, "500")
        st, body, _ = post(p.url, "/v2/enqueue", TRIGGER)
        ok(st == 400 and json.loads(body)["message"] == "Event object is invalid", body)
        ok(post(p.url, "/v2/enqueue", TRIGGER)[0] == 202, "then accepted")
        ok(len(p.events("trigger")) == 1, p.events())


if __name__ == "__main__":
    harness.run_tests(globals(), needs_daemon=False)
