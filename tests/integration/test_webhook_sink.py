#!/usr/bin/env python3
"""The webhook sink itself: v4 payload validation and scripted failures (no kcwatch needed)."""

import copy
import http.client
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import WebhookSink  # noqa: E402
from webhook_sink import validate_payload  # noqa: E402

GOOD = {
    "version": "4",
    "groupKey": "{}:{alertname=\"ConnectTaskFailed\", cluster=\"c1\", connector=\"orders\"}",
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "hook",
    "groupLabels": {"alertname": "ConnectTaskFailed", "cluster": "c1", "connector": "orders"},
    "commonLabels": {"alertname": "ConnectTaskFailed", "cluster": "c1", "connector": "orders",
                     "severity": "warning"},
    "commonAnnotations": {"summary": "s"},
    "externalURL": "http://127.0.0.1:9464",
    "alerts": [
        {"status": "firing",
         "labels": {"alertname": "ConnectTaskFailed", "cluster": "c1", "connector": "orders",
                    "task": "0", "severity": "warning"},
         "annotations": {"summary": "s", "remediation": "restart sent"},
         "startsAt": "2024-10-25T10:00:00.123Z", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "http://127.0.0.1:9464/", "fingerprint": "0123456789abcdef"},
        {"status": "resolved",
         "labels": {"alertname": "ConnectTaskFailed", "cluster": "c1", "connector": "orders",
                    "task": "1", "severity": "warning"},
         "annotations": {"summary": "s"},
         "startsAt": "2024-10-25T10:00:00Z", "endsAt": "2024-10-25T10:01:00+00:00",
         "generatorURL": "http://127.0.0.1:9464/", "fingerprint": "fedcba9876543210"},
    ],
}


def post(url, body, ctype="application/json"):
    host, port = url.replace("http://", "").split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        c.request("POST", "/hook", body=data, headers={"Content-Type": ctype})
        r = c.getresponse()
        r.read()
        return r.status, dict(r.getheaders())
    finally:
        c.close()


def ok(cond, msg):
    if not cond:
        raise AssertionError(msg)


def test_validator_accepts_good_payload():
    ok(validate_payload(GOOD) == [], validate_payload(GOOD))


def test_validator_rejects():
    cases = []
    for mutate, needle in (
        (lambda p: p.update(version=4), "version"),
        (lambda p: p.pop("groupKey"), "groupKey"),
        (lambda p: p.update(extra=1), "unexpected key"),
        (lambda p: p.update(truncatedAlerts=-1), "truncatedAlerts"),
        (lambda p: p.update(status="resolved"), "disagrees"),
        (lambda p: p["alerts"][0].pop("fingerprint"), "fingerprint"),
        (lambda p: p["alerts"][0].update(fingerprint="XYZ"), "fingerprint"),
        (lambda p: p["alerts"][0].update(startsAt="yesterday"), "startsAt"),
        (lambda p: p["alerts"][1].update(endsAt="2024-10-25T09:00:00Z"), "ends before"),
        (lambda p: p["alerts"][0]["labels"].update(task=0), "labels"),
        (lambda p: p["commonLabels"].update(task="0"), "commonLabels"),
        (lambda p: p["groupLabels"].update(connector="x"), "groupLabels"),
        (lambda p: p.update(alerts=[]), "non-empty"),
        (lambda p: p["alerts"][0]["labels"].pop("alertname"), "alertname"),
    ):
        p = copy.deepcopy(GOOD)
        mutate(p)
        errs = validate_payload(p)
        cases.append((needle, errs))
        ok(any(needle in e for e in errs), "expected a %r violation, got %r" % (needle, errs))


def test_records_and_scripted_failures():
    with WebhookSink() as s:
        s.fail_next(1, status=500)
        s.fail_next(1, status=429, retry_after=2)
        st, _ = post(s.url, GOOD)
        ok(st == 500, st)
        st, hd = post(s.url, GOOD)
        ok(st == 429 and hd.get("Retry-After") == "2", (st, hd))
        ok(s.deliveries() == [], "failed attempts are not deliveries")
        st, _ = post(s.url, GOOD)
        ok(st == 200, st)
        ok(len(s.received()) == 3 and len(s.deliveries()) == 1, s.received())
        ok(s.violations == [], s.violations)
        hits = s.find_alerts(alertname="ConnectTaskFailed", status="firing", labels={"task": "0"})
        ok(len(hits) == 1 and hits[0][1]["annotations"]["remediation"] == "restart sent", hits)
        ok(s.find_alerts(status="resolved", labels={"task": "0"}) == [], "no such alert")
        ok(s.wait_for(lambda r: r.payload["status"] == "firing", timeout=1) is not None, "wait_for")
        ok(s.wait_for(lambda r: r.payload["status"] == "nope", timeout=0.1) is None, "no match")


def test_violations_recorded():
    with WebhookSink() as s:
        post(s.url, b"{not json")
        post(s.url, GOOD, ctype="text/plain")
        bad = copy.deepcopy(GOOD)
        bad["version"] = "3"
        post(s.url, bad)
        v = s.violations
        ok(any("not JSON" in x for x in v), v)
        ok(any("Content-Type" in x for x in v), v)
        ok(any("version" in x for x in v), v)


if __name__ == "__main__":
    harness.run_tests(globals(), needs_daemon=False)
