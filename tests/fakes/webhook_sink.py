#!/usr/bin/env python3
"""webhook_sink.py: an HTTP server that records Alertmanager webhook payloads.

Every POST is recorded (path, headers, body, time) and its JSON is checked
against the Alertmanager webhook payload version 4; problems are kept in
`violations` so a test can assert there were none. Failures can be scripted
(the next N requests answer 500, or 429 with Retry-After) to exercise the
sender's retries. Only requests answered 2xx count as deliveries.

    with WebhookSink() as sink:
        url = sink.url + "/hook"
        ...
        sink.find_alerts(alertname="ConnectTaskFailed", status="firing")
"""

import json
import re
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from socketserver import TCPServer, ThreadingMixIn

from httpbody import read_body  # noqa: E402

TOP_KEYS = ("version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
            "commonLabels", "commonAnnotations", "externalURL", "alerts")
ALERT_KEYS = ("status", "labels", "annotations", "startsAt", "endsAt", "generatorURL",
              "fingerprint")
RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
ZERO_TIME = "0001-01-01T00:00:00Z"


def parse_rfc3339(s):
    """datetime (aware) or None."""
    if not isinstance(s, str):
        return None
    m = RFC3339.match(s)
    if not m:
        return None
    frac = (m.group(7) or ".0")[1:7].ljust(6, "0")
    tz = "+00:00" if m.group(8) == "Z" else m.group(8)
    try:
        return datetime.fromisoformat("%s-%s-%sT%s:%s:%s.%s%s" % (
            m.group(1), m.group(2), m.group(3), m.group(4), m.group(5), m.group(6), frac, tz))
    except ValueError:
        return None


def _str_map(v):
    return isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, str)
                                       for k, x in v.items())


def validate_payload(p):
    """List of problems with an Alertmanager webhook v4 payload (empty: valid)."""
    errs = []
    if not isinstance(p, dict):
        return ["payload is not a JSON object"]
    for k in TOP_KEYS:
        if k not in p:
            errs.append("missing key %r" % k)
    for k in p:
        if k not in TOP_KEYS:
            errs.append("unexpected key %r" % k)
    if p.get("version") != "4":
        errs.append("version must be the string \"4\", got %r" % (p.get("version"),))
    for k in ("groupKey", "receiver", "externalURL"):
        if k in p and not isinstance(p[k], str):
            errs.append("%s must be a string" % k)
    if p.get("receiver") == "":
        errs.append("receiver is empty")
    ta = p.get("truncatedAlerts")
    if "truncatedAlerts" in p and (not isinstance(ta, int) or isinstance(ta, bool) or ta < 0):
        errs.append("truncatedAlerts must be a non-negative integer")
    if p.get("status") not in ("firing", "resolved"):
        errs.append("status must be firing or resolved, got %r" % (p.get("status"),))
    for k in ("groupLabels", "commonLabels", "commonAnnotations"):
        if k in p and not _str_map(p[k]):
            errs.append("%s must be an object of strings" % k)
    alerts = p.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        errs.append("alerts must be a non-empty array")
        return errs
    ok_alerts = []
    for i, a in enumerate(alerts):
        where = "alerts[%d]" % i
        if not isinstance(a, dict):
            errs.append(where + " is not an object")
            continue
        for k in ALERT_KEYS:
            if k not in a:
                errs.append("%s: missing key %r" % (where, k))
        for k in a:
            if k not in ALERT_KEYS:
                errs.append("%s: unexpected key %r" % (where, k))
        if a.get("status") not in ("firing", "resolved"):
            errs.append("%s: status must be firing or resolved" % where)
        if not _str_map(a.get("labels")):
            errs.append("%s: labels must be an object of strings" % where)
        elif not a["labels"].get("alertname"):
            errs.append("%s: labels has no alertname" % where)
        if not _str_map(a.get("annotations")):
            errs.append("%s: annotations must be an object of strings" % where)
        if not isinstance(a.get("generatorURL"), str):
            errs.append("%s: generatorURL must be a string" % where)
        fp = a.get("fingerprint")
        if not (isinstance(fp, str) and re.fullmatch(r"[0-9a-f]{16}", fp)):
            errs.append("%s: fingerprint must be 16 lower-case hex digits, got %r" % (where, fp))
        starts = parse_rfc3339(a.get("startsAt"))
        ends = parse_rfc3339(a.get("endsAt"))
        if starts is None:
            errs.append("%s: startsAt is not RFC 3339: %r" % (where, a.get("startsAt")))
        if ends is None:
            errs.append("%s: endsAt is not RFC 3339: %r" % (where, a.get("endsAt")))
        if a.get("status") == "resolved" and starts and ends and ends < starts:
            errs.append("%s: resolved alert ends before it starts" % where)
        if a.get("status") == "resolved" and a.get("endsAt") == ZERO_TIME:
            errs.append("%s: resolved alert has no endsAt" % where)
        if _str_map(a.get("labels")) and _str_map(a.get("annotations")):
            ok_alerts.append(a)
    if len(ok_alerts) == len(alerts):
        any_firing = any(a.get("status") == "firing" for a in alerts)
        if p.get("status") in ("firing", "resolved") and \
                (p["status"] == "firing") != any_firing:
            errs.append("status %r disagrees with the alerts (firing: %s)"
                        % (p["status"], any_firing))
        common = dict(alerts[0]["labels"])
        for a in alerts[1:]:
            common = {k: v for k, v in common.items() if a["labels"].get(k) == v}
        if _str_map(p.get("commonLabels")) and p["commonLabels"] != common:
            errs.append("commonLabels %r are not the labels common to every alert %r"
                        % (p["commonLabels"], common))
        common_ann = dict(alerts[0]["annotations"])
        for a in alerts[1:]:
            common_ann = {k: v for k, v in common_ann.items() if a["annotations"].get(k) == v}
        if _str_map(p.get("commonAnnotations")) and p["commonAnnotations"] != common_ann:
            errs.append("commonAnnotations are not the annotations common to every alert")
        if _str_map(p.get("groupLabels")):
            for k, v in p["groupLabels"].items():
                if common.get(k) != v:
                    errs.append("groupLabels %s=%r not shared by every alert" % (k, v))
    return errs


class Received:
    """One POST the sink got."""

    def __init__(self, index, path, headers, raw, t):
        self.index = index
        self.path = path
        self.headers = headers    # lower-case names
        self.raw = raw
        self.time = t             # time.monotonic()
        self.payload = None       # parsed JSON or None
        self.answered = None      # status the sink answered
        self.violations = []

    @property
    def delivered(self):
        return self.answered is not None and 200 <= self.answered < 300

    def __repr__(self):
        if isinstance(self.payload, dict):
            names = sorted({a.get("labels", {}).get("alertname", "?")
                            for a in self.payload.get("alerts", []) if isinstance(a, dict)})
            return "<webhook #%d %s %s %s -> %s>" % (self.index, self.path,
                                                   self.payload.get("status"), names,
                                                   self.answered)
        return "<webhook #%d %s (no JSON) -> %s>" % (self.index, self.path, self.answered)


class _Server(ThreadingMixIn, TCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class WebhookSink:
    def __init__(self, host="127.0.0.1", port=0, max_body=16 * 1024 * 1024):
        self.host = host
        self.port = port
        self.max_body = max_body
        self._lock = threading.Lock()
        self._received = []
        self._script = []   # [(status, retry_after)] for the next requests
        self._failing = []  # [(needle bytes, status)] until cleared
        self._server = None
        self._thread = None

    # ------------------------------------------------------------ lifecycle

    def start(self):
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def do_POST(self):
                sink._on_post(self)

            def do_GET(self):
                self._plain(405, b"POST only\n")

            do_PUT = do_DELETE = do_GET

            def _plain(self, status, body, extra=None):
                self.send_response(status)
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = _Server((self.host, self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True,
                                        name="webhook-sink-%d" % self.port)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    # ------------------------------------------------------------ scripting

    def fail_next(self, count=1, status=500, retry_after=None):
        """The next `count` POSTs are answered `status` (e.g. 500, or 429 with
        a Retry-After header in seconds) and are not deliveries."""
        with self._lock:
            self._script.extend([(status, retry_after)] * count)

    def fail_matching(self, needle, status=500):
        """Until clear_failures(): every POST whose body contains `needle`
        ("" matches every POST: the receiver is down) is answered `status`."""
        with self._lock:
            self._failing.append((needle.encode(), status))

    def clear_failures(self):
        with self._lock:
            self._failing = []

    # ------------------------------------------------------------ server side

    def _on_post(self, h):
        length = int(h.headers.get("Content-Length") or 0)
        if length > self.max_body:
            h.close_connection = True
            h._plain(413, b"too large\n")
            return
        try:
            raw = read_body(h, self.max_body)
        except ValueError:
            h.close_connection = True
            h._plain(413, b"too large\n")
            return
        headers = {k.lower(): v for k, v in h.headers.items()}
        with self._lock:
            rec = Received(len(self._received), h.path, headers, raw, time.monotonic())
            try:
                rec.payload = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as e:
                rec.violations.append("body is not JSON: %s" % e)
            else:
                rec.violations.extend(validate_payload(rec.payload))
            ctype = headers.get("content-type", "")
            if not ctype.split(";")[0].strip().lower() == "application/json":
                rec.violations.append("Content-Type is %r, not application/json" % ctype)
            status, retry_after = self._script.pop(0) if self._script else (200, None)
            for needle, failing in self._failing:
                if needle in raw:
                    status, retry_after = failing, None
                    break
            rec.answered = status
            self._received.append(rec)
        extra = {}
        if retry_after is not None:
            extra["Retry-After"] = str(retry_after)
        h._plain(status, b"ok\n" if status < 300 else b"scripted failure\n", extra)

    # ------------------------------------------------------------ inspection

    def received(self):
        """Every POST, deliveries and scripted failures alike."""
        with self._lock:
            return list(self._received)

    def deliveries(self, pred=None):
        """POSTs answered 2xx with a JSON object body, in arrival order."""
        return [r for r in self.received() if r.delivered and isinstance(r.payload, dict)
                and (pred is None or pred(r))]

    @property
    def violations(self):
        out = []
        for r in self.received():
            out.extend("#%d %s: %s" % (r.index, r.path, v) for v in r.violations)
        return out

    def alerts(self):
        """(delivery, alert) pairs over every delivered payload, in order."""
        out = []
        for r in self.deliveries():
            for a in r.payload.get("alerts") or []:
                if isinstance(a, dict):
                    out.append((r, a))
        return out

    def find_alerts(self, alertname=None, status=None, labels=None, pred=None, after=None):
        """Alerts (as (delivery, alert) pairs) whose labels include `labels`,
        with that alertname and alert status, delivered after time `after`."""
        want = dict(labels or {})
        if alertname is not None:
            want["alertname"] = alertname
        out = []
        for r, a in self.alerts():
            if after is not None and r.time < after:
                continue
            if status is not None and a.get("status") != status:
                continue
            al = a.get("labels") or {}
            if any(al.get(k) != v for k, v in want.items()):
                continue
            if pred is not None and not pred(a):
                continue
            out.append((r, a))
        return out

    def wait_for(self, pred, timeout=10.0, interval=0.02):
        """First delivery with pred(delivery) true, waiting up to timeout; None."""
        deadline = time.monotonic() + timeout
        while True:
            hits = self.deliveries(pred)
            if hits:
                return hits[0]
            if time.monotonic() >= deadline:
                return None
            time.sleep(interval)


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="Record Alertmanager webhook payloads")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    s = WebhookSink(port=args.port).start()
    print(json.dumps({"url": s.url}), flush=True)
    seen = 0
    try:
        while True:
            got = s.received()
            for r in got[seen:]:
                print(json.dumps({"path": r.path, "payload": r.payload,
                                  "violations": r.violations}), flush=True)
            seen = len(got)
            time.sleep(0.2)
    except KeyboardInterrupt:
        s.stop()
