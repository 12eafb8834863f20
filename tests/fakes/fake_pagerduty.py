#!/usr/bin/env python3
"""fake_pagerduty.py: PagerDuty's Events API v2 endpoint (POST /v2/enqueue).

Each event is checked against the documented format
(https://developer.pagerduty.com/docs/events-api-v2/trigger-events/ and
.../resolve-events/): routing_key, event_action trigger|acknowledge|resolve,
dedup_key (required to resolve, <= 255 characters); a trigger's payload with
summary (1..1024 characters), source, severity critical|error|warning|info,
optional RFC 3339 timestamp, component, group, class (strings) and
custom_details (object); optional client, client_url; the event under 512 KB.
A bad event gets PagerDuty's 400 {"status": "invalid event", "message": ...,
"errors": [...]} and lands in `violations`; a good one 202 {"status":
"success", "message": "Event processed", "dedup_key": ...}. Failures can be
scripted (`fail_next(1, 429, retry_after=1)`, 500, 400) with PagerDuty's
bodies. `incidents()` follows trigger/resolve per dedup_key.
"""

import json

from webhook_sink import WebhookSink, parse_rfc3339  # noqa: E402

TOP = ("routing_key", "event_action", "dedup_key", "payload", "client", "client_url",
       "images", "links")
PAYLOAD = ("summary", "source", "severity", "timestamp", "component", "group", "class",
           "custom_details")
SEVERITIES = ("critical", "error", "warning", "info")
EVENT_MAX = 512 * 1024


def validate_event(e, raw_len=0):
    """List of problems with an Events API v2 event (empty: valid)."""
    if not isinstance(e, dict):
        return ["event is not a JSON object"]
    errs = []
    if raw_len >= EVENT_MAX:
        errs.append("event is %d bytes, the limit is 512 KB" % raw_len)
    for k in e:
        if k not in TOP:
            errs.append("unexpected key %r" % k)
    if not isinstance(e.get("routing_key"), str) or not e["routing_key"]:
        errs.append("routing_key must be a non-empty string")
    action = e.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        errs.append("event_action must be trigger, acknowledge or resolve, got %r" % (action,))
    dk = e.get("dedup_key")
    if dk is not None and not (isinstance(dk, str) and 0 < len(dk) <= 255):
        errs.append("dedup_key must be a string of 1..255 characters")
    if action in ("acknowledge", "resolve") and dk is None:
        errs.append("%s needs a dedup_key" % action)
    for k in ("client", "client_url"):
        if k in e and not isinstance(e[k], str):
            errs.append("%s must be a string" % k)
    if action != "trigger":
        return errs
    p = e.get("payload")
    if not isinstance(p, dict):
        return errs + ["a trigger needs a payload object"]
    for k in p:
        if k not in PAYLOAD:
            errs.append("payload: unexpected key %r" % k)
    s = p.get("summary")
    if not isinstance(s, str) or not s or len(s) > 1024:
        errs.append("payload.summary must be a string of 1..1024 characters (got %s)"
                    % (len(s) if isinstance(s, str) else type(s).__name__))
    if not isinstance(p.get("source"), str) or not p["source"]:
        errs.append("payload.source must be a non-empty string")
    if p.get("severity") not in SEVERITIES:
        errs.append("payload.severity must be one of %s, got %r" % (SEVERITIES, p.get("severity")))
    if "timestamp" in p and parse_rfc3339(p["timestamp"]) is None:
        errs.append("payload.timestamp is not RFC 3339: %r" % (p["timestamp"],))
    for k in ("component", "group", "class"):
        if k in p and not isinstance(p[k], str):
            errs.append("payload.%s must be a string" % k)
    if "custom_details" in p and not isinstance(p["custom_details"], dict):
        errs.append("payload.custom_details must be an object")
    return errs


class FakePagerDuty(WebhookSink):
    def validate(self, payload):
        return validate_event(payload)

    def reply(self, rec, scripted):
        if rec.path.split("?")[0] != "/v2/enqueue":
            rec.violations.append("POST to %s, not /v2/enqueue" % rec.path)
        if len(rec.raw) >= EVENT_MAX:
            rec.violations.append("event is %d bytes, the limit is 512 KB" % len(rec.raw))
        if scripted == 429:
            return 429, json.dumps({"status": "throttle event", "message":
                                    "Requests for this service are arriving too quickly. "
                                    "Please retry later."}).encode(), "application/json"
        if scripted == 400 or (scripted is None and rec.violations):
            errors = rec.violations or ["'payload.summary' is missing or blank"]
            return 400, json.dumps({"status": "invalid event",
                                    "message": "Event object is invalid",
                                    "errors": errors}).encode(), "application/json"
        if scripted is not None:
            return scripted, b"Internal Server Error", "text/plain"
        dk = rec.payload.get("dedup_key") if isinstance(rec.payload, dict) else None
        return 202, json.dumps({"status": "success", "message": "Event processed",
                                "dedup_key": dk}).encode(), "application/json"

    def events(self, action=None):
        """Accepted events (parsed), in order; only `action` ones if given."""
        return [r.payload for r in self.deliveries()
                if action is None or r.payload.get("event_action") == action]

    def incidents(self):
        """dedup_key -> "triggered" | "resolved", from the accepted events."""
        out = {}
        for e in self.events():
            k = e.get("dedup_key")
            if e.get("event_action") == "trigger":
                out[k] = "triggered"
            elif e.get("event_action") == "resolve" and k in out:
                out[k] = "resolved"
        return out
