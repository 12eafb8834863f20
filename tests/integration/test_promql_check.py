#!/usr/bin/env python3
"""PromQL is checked by the real Prometheus' parser before it runs.

Against Debian's Prometheus (GET /api/v1/format_query):
  - `kcwatch check` reports each expression Prometheus rejects at FILE:LINE:COL
    of the rule file (plain and block scalars, the column of the token
    Prometheus names) and exits 1; the same rules fixed exit 0; with
    Prometheus stopped it exits 3 and says the PromQL was not verified;
  - the daemon shows Prometheus' normalised expression as `query` in
    /api/v1/rules, whose rule_name[], rule_group[] and file[] filters work;
    POST /-/reload bringing a rejected expression waits for Prometheus'
    verdict and answers 400 with each rejection at FILE:LINE:COL (also
    logged as "reload rejected"), the running rules stay and
    kcwatch_config_last_reload_successful is 0; the file fixed, the reload
    answers 200 and the new rule is served; admin.token_file still guards
    the route;
  - a reload superseded by a newer one while Prometheus is being asked
    answers 409; one applied while Prometheus cannot answer says 200 and
    that its PromQL is not verified yet; a client that hangs up while its
    reload waits is let go and the reload still applies; SIGTERM while a
    reload waits answers it 503 and the daemon exits 0;
  - a daemon started while Prometheus is down loads the rules and, once
    Prometheus answers, marks the rejected rule's health "err" with the
    positioned parse error."""

import os
import json
import re
import socket
import subprocess
import sys
import threading
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import prom_harness  # noqa: E402
from harness import Harness  # noqa: E402

GOOD = """\
groups:
  - name: promql
    interval: 1s
    rules:
      - alert: Spaced
        expr: up   ==   0
      - alert: Block
        expr: |
          sum by (job) (
            rate(up[5m])
          ) > 1
"""

# Broken: line 7 `sum(rate(x[5m])` (Prometheus: 1:16, one past the end:
# file column 15 + 15); BrokenBlock: the ")" on line 12, column 11.
BAD = """\
groups:
  - name: promql
    interval: 1s
    rules:
      - alert: Spaced
        expr: up   ==   0
      - alert: Broken
        expr: sum(rate(x[5m])
      - alert: BrokenBlock
        expr: |
          sum by (job) (
            rate(x[5m]) +
          )
"""
ADDED = """\
      - alert: Added
        expr: up   >   1
"""

BAD_POSITIONS = {("Broken", 8, 30, "unclosed left parenthesis"),
                 ("BrokenBlock", 13, 11, 'unexpected ")"')}


def run_check(h, cfg):
    p = subprocess.run([harness.kcwatch_bin(), "check", "-c", cfg], cwd=h.tmp,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


def check_config(h, prom_url, rules):
    return h.write("check.yaml", "global:\n  state_dir: %s\nprometheus:\n  url: %s\n"
                   "rule_files: [%s]\n" % (os.path.join(h.tmp, "state"), prom_url, rules))


def assert_positions(h, out, rules):
    for alert, line, col, text in BAD_POSITIONS:
        pat = r"^%s:%d:%d: alert %s: PromQL rejected by Prometheus: parse error: .*%s" % (
            re.escape(rules), line, col, alert, re.escape(text))
        h.check(re.search(pat, out, re.M), "no %s:%d:%d error for %s; output:\n%s"
                % (rules, line, col, alert, out))


def test_check_verifies_with_prometheus():
    prom_harness.prometheus_bin()
    with Harness("promql-check", start_fakes=False) as h:
        prom = prom_harness.PrometheusServer(h.tmp, ["127.0.0.1:1"]).start()
        try:
            rules = h.write("rules.yaml", BAD)
            cfg = check_config(h, prom.url, rules)
            rc, out = run_check(h, cfg)
            h.check(rc == 1, "exit status %s for rejected PromQL; output:\n%s" % (rc, out))
            assert_positions(h, out, rules)
            h.check("Spaced" not in out, "a valid expression was reported:\n" + out)

            with open(rules, "w") as f:
                f.write(GOOD)
            rc, out = run_check(h, cfg)
            h.check(rc == 0, "exit status %s for valid PromQL; output:\n%s" % (rc, out))
            h.check("not verified" not in out, "verified PromQL said unverified:\n" + out)

            prom.stop()
            rc, out = run_check(h, cfg)
            h.check(rc == 3, "exit status %s with Prometheus down, expected 3; output:\n%s"
                    % (rc, out))
            h.check("PromQL not verified" in out and "OK:" in out,
                    "unverified check output:\n" + out)
        finally:
            prom.close()


def admin(h, path, method="GET"):
    url = "http://%s%s" % (h.config["global"]["listen"], path)
    return prom_harness.http_json(url, method=method)


def rules_by_name(h):
    st, body, _ = admin(h, "/api/v1/rules")
    if st != 200 or not body:
        return {}
    return {r["name"]: r for g in body["data"]["groups"] for r in g["rules"]}


TOKEN = "tok-promql-5c1d"


def post_reload(h, token=None):
    """(status, body text) of POST /-/reload."""
    url = "http://%s/-/reload" % h.config["global"]["listen"]
    headers = {"Authorization": "Bearer " + token} if token else {}
    req = urllib.request.Request(url, data=b"", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(h, name):
    url = "http://%s/metrics" % h.config["global"]["listen"]
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


def test_daemon_normalises_and_refuses_rejected_reload():
    prom_harness.prometheus_bin()
    with Harness("promql-reload") as h:
        prom = prom_harness.PrometheusServer(h.tmp, ["127.0.0.1:1"]).start()
        try:
            rules = h.write("promql.yaml", GOOD)
            h.write("admin.token", TOKEN + "\n")
            h.start_daemon(overrides={"prometheus": {"url": prom.url},
                                      "rule_files": [h.rules_path, rules],
                                      "admin": {"token_file": "admin.token"}})
            h.wait_for(lambda: rules_by_name(h).get("Spaced", {}).get("query") == "up == 0",
                       what="/api/v1/rules to show Prometheus' normalised query")
            block = rules_by_name(h)["Block"]["query"]
            h.check(block == "sum by (job) (rate(up[5m])) > 1",
                    "normalised block expression: %r" % block)

            # Prometheus' filters, repeated and URL-encoded as clients send them.
            st, body, _ = admin(h, "/api/v1/rules?rule_name%5B%5D=Block&file%5B%5D=" +
                                urllib.parse.quote(rules, safe=""))
            got = [(g["name"], [r["name"] for r in g["rules"]]) for g in body["data"]["groups"]]
            h.check(st == 200 and got == [("promql", ["Block"])], "filtered rules: %r" % got)
            st, body, _ = admin(h, "/api/v1/rules?rule_group[]=connect-status&type=alert")
            got = [g["name"] for g in body["data"]["groups"]]
            h.check(got == ["connect-status"], "rule_group[] filter: %r" % got)

            with open(rules, "w") as f:
                f.write(BAD)
            before = len(h.log_lines())
            status, _ = post_reload(h)
            h.check(status == 401, "POST /-/reload without the token answered %s" % status)
            h.check(not h.log_records(before, msg="reload requested over HTTP"),
                    "a reload without the token was attempted")

            status, text = post_reload(h, TOKEN)
            h.check(status == 400, "POST /-/reload answered %s, expected 400: %s" % (status, text))
            doc = json.loads(text)
            h.check(doc["status"] == "error" and doc["errorType"] == "bad_data" and
                    "Prometheus rejected PromQL" in doc["error"], "400 body: %r" % doc)
            # The refusal is logged before the answer goes out.
            h.check(h.log_records(before, msg="reload failed: Prometheus rejected PromQL; "
                                  "keeping the running configuration"), "refusal not logged")
            logged = [r.get("error", "") for r in h.log_records(before, msg="reload rejected")]
            answered = [e["text"] for e in doc["errors"]]
            for alert, line, col, text in BAD_POSITIONS:
                want = "%s:%d:%d: alert %s" % (rules, line, col, alert)
                h.check(any(e.startswith(want) for e in logged),
                        "no rejection at %s in the log %r" % (want, logged))
                h.check(any(e.startswith(want) and text in e for e in answered),
                        "no rejection at %s in the answer %r" % (want, answered))
                h.check(any(e.get("file") == rules and e.get("line") == line and
                            e.get("column") == col for e in doc["errors"]),
                        "no file/line/column %s:%d:%d in %r" % (rules, line, col, doc["errors"]))
            h.check(len(answered) == len(BAD_POSITIONS), "errors answered: %r" % answered)
            names = set(rules_by_name(h))
            h.check("Block" in names and "Broken" not in names,
                    "the running rules changed: %r" % sorted(names))
            h.check(metric(h, "kcwatch_config_last_reload_successful") == 0,
                    "kcwatch_config_last_reload_successful is not 0")

            # Fixed: the reload applies and says so.
            with open(rules, "w") as f:
                f.write(GOOD + ADDED)
            status, text = post_reload(h, TOKEN)
            h.check(status == 200 and text == "configuration reloaded\n",
                    "reload of the fixed rules: %s %r" % (status, text))
            h.check(rules_by_name(h).get("Added", {}).get("query") == "up > 1",
                    "the new rule is not served: %r" % sorted(rules_by_name(h)))
            h.check(metric(h, "kcwatch_config_last_reload_successful") == 1,
                    "kcwatch_config_last_reload_successful is not 1")
            h.finish()
        finally:
            prom.close()


class SilentServer:
    """A TCP listener that accepts connections and never answers: a
    Prometheus that hangs."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.conns = []
        self.stopped = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def close(self):
        self.stopped = True
        self.sock.close()
        for c in self.conns:
            c.close()


def start_then_edit(h, prom, timeout, new_rules):
    """Starts the daemon against prom with GOOD, then writes new_rules in
    its place: the log line count from there on."""
    rules = h.write("promql.yaml", GOOD)
    h.start_daemon(overrides={"prometheus": {"url": prom.url, "timeout": timeout},
                              "rule_files": [h.rules_path, rules]})
    with open(rules, "w") as f:
        f.write(new_rules)
    return len(h.log_lines())


def wait_checking(h, before):
    h.wait_for(lambda: h.log_records(before, msg="reload: Prometheus is checking the "
                                     "rules' PromQL"), what="the reload waiting")


def start_waiting_reload(h, prom, timeout, new_rules):
    """start_then_edit, then POST /-/reload in a thread until Prometheus is
    being asked: (thread, dict whose "r" will be post_reload's result)."""
    before = start_then_edit(h, prom, timeout, new_rules)
    got = {}
    t = threading.Thread(target=lambda: got.update(r=post_reload(h)))
    t.start()
    wait_checking(h, before)
    h.check(t.is_alive(), "the reload was answered before Prometheus was")
    return t, got


def test_reload_superseded_and_unverified():
    with Harness("promql-supersede") as h:
        prom = SilentServer()
        try:
            t, first = start_waiting_reload(h, prom, "3s", GOOD + ADDED)
            status, text = post_reload(h)  # the second waits out Prometheus' timeout
            t.join(30)
            st1, text1 = first["r"]
            h.check(st1 == 409 and "superseded by a newer reload" in text1,
                    "first reload: %s %r" % (st1, text1))
            h.check(status == 200 and text.startswith("configuration reloaded\n") and
                    "PromQL not verified" in text and
                    "verified when Prometheus answers" in text,
                    "second reload: %s %r" % (status, text))
            h.check("Added" in rules_by_name(h), "the second reload was not applied")
            h.finish()
        finally:
            prom.close()


def test_client_hangs_up_while_reload_waits():
    with Harness("promql-hangup") as h:
        prom = SilentServer()
        try:
            before = start_then_edit(h, prom, "3s", GOOD + ADDED)
            host, port = h.config["global"]["listen"].rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=10) as c:
                c.sendall(b"POST /-/reload HTTP/1.1\r\nHost: %s\r\n"
                          b"Content-Length: 0\r\n\r\n" % host.encode())
                wait_checking(h, before)
            h.wait_for(lambda: h.log_records(before, msg="admin: the client left before its "
                                             "deferred answer"), what="the hang-up noticed")
            # The reload goes on without its client: applied once Prometheus times out.
            h.wait_for(lambda: h.log_records(before, msg="configuration reloaded"),
                       timeout=20, what="the reload applied")
            h.check("Added" in rules_by_name(h), "the reload was not applied")
            h.finish()
        finally:
            prom.close()


def test_sigterm_during_check():
    with Harness("promql-sigterm") as h:
        prom = SilentServer()
        try:
            t, got = start_waiting_reload(h, prom, "20s", GOOD + ADDED)
            h.finish()  # SIGTERM: exits 0 within 5 s, no sanitizer report
            t.join(10)
            st, text = got["r"]
            h.check(st == 503 and "stopping" in text and "not applied" in text,
                    "reload answered during shutdown: %s %r" % (st, text))
        finally:
            prom.close()


def test_daemon_verifies_once_prometheus_answers():
    prom_harness.prometheus_bin()
    with Harness("promql-late") as h:
        prom = prom_harness.PrometheusServer(h.tmp, ["127.0.0.1:1"], port=harness.free_port())
        try:
            rules = h.write("promql.yaml", BAD)
            h.start_daemon(overrides={"prometheus": {"url": prom.url, "timeout": "2s"},
                                      "rule_files": [h.rules_path, rules]})
            h.wait_for(lambda: h.log_records(msg="PromQL not verified: Prometheus cannot be "
                                             "asked; retrying"),
                       what="the unverified rules logged")
            h.check("Broken" in rules_by_name(h), "rules were not loaded")
            prom.start()

            def rejected():
                r = rules_by_name(h).get("Broken", {})
                return r.get("health") == "err" and (
                    "%s:8:30: alert Broken: PromQL rejected" % rules) in r.get("lastError", "")
            h.wait_for(rejected, timeout=30, what="the Broken rule's health error")
            h.check(rules_by_name(h)["Spaced"].get("query") == "up == 0",
                    "the valid rule is not shown normalised")
            h.check(h.log_records(msg="rule expression rejected by Prometheus"),
                    "the rejection was not logged")
            h.finish()
        finally:
            prom.close()


if __name__ == "__main__":
    harness.run_tests(globals())
