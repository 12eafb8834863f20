#!/usr/bin/env python3
"""No secret leaves kcwatch: one run with every kind of secret the config
supports today, then a grep of everything kcwatch wrote and served.

Secrets: a Connect password_file; Connect URL userinfo (a second cluster) and
an access_token in a Connect URL query; a Prometheus bearer_token_file and a
token in its URL query; a webhook basic-auth password from ${ENV}, a token in
the webhook URL query, and a second webhook's bearer_token_file. The
Prometheus peer is hostile: it answers every query with a 500 whose body
echoes the request line and headers (Authorization included), so the token
comes back inside error text. A reload with a broken config that quotes the
URLs is attempted too.

Searched: the daemon's log, /healthz, /readyz, /api/v1/alerts,
/api/v1/rules, `kcwatch status` (table and --json), `kcwatch check` of the
good and of the broken config, and the webhook bodies kcwatch sent.
Not searched (nothing to search yet): the audit log (no store yet); crash
output (kcwatch installs no crash handler, so a crash prints no state)."""

import base64
import os
import signal
import subprocess
import sys
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "fakes"))
import harness  # noqa: E402
from harness import Harness  # noqa: E402
from fake_connect import FakeConnectCluster  # noqa: E402
from fault_proxy import FaultProxy  # noqa: E402

SECRETS = {
    "connect password_file": "S3cret-connect-pw-f1le",
    "connect URL userinfo": "S3cret-userinfo-pw",
    "connect URL query": "S3cret-connect-qtoken",
    "prometheus bearer_token_file": "S3cret-prom-bearer",
    "prometheus URL query": "S3cret-prom-qtoken",
    "webhook ${ENV} password": "S3cret-hook-env-pw",
    "webhook URL query": "S3cret-hook-qtoken",
    "webhook bearer_token_file": "S3cret-hook2-bearer",
}

RULES = """groups:
  - name: prom
    interval: 1s
    rules:
      - alert: PromRule
        expr: vector(1)
"""


def forms(secret):
    """The secret as written and in the encodings a leak would take."""
    return [secret, base64.b64encode(secret.encode()).decode()[:16]]


def run_cli(h, env, *args):
    p = subprocess.run([harness.kcwatch_bin()] + list(args), capture_output=True, timeout=60,
                       cwd=h.tmp, env=env)
    return p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")


def get(listen, path):
    try:
        with urllib.request.urlopen("http://%s%s" % (listen, path), timeout=10) as r:
            return r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.read().decode("utf-8", "replace")


def test_no_secret_in_any_output():
    s = SECRETS
    with Harness("secrets", workers=1,
                 fake_kwargs={"basic_auth": ("kcw", s["connect password_file"])}) as h:
        other = FakeConnectCluster(workers=1, basic_auth=("u2", s["connect URL userinfo"]))
        other.start()
        echo = FaultProxy("http://127.0.0.1:9").start()  # never forwards: echoes
        echo.set_fault("echo")
        try:
            h.fake.add_connector("orders", tasks=1)
            other.add_connector("billing", tasks=1)
            pw = h.write("connect.password", s["connect password_file"] + "\n")
            pt = h.write("prom.token", s["prometheus bearer_token_file"] + "\n")
            ht = h.write("hook2.token", s["webhook bearer_token_file"] + "\n")
            rules = h.write("prom-rules.yaml", RULES)
            env = dict(os.environ, KCW_HOOK_PW=s["webhook ${ENV} password"])
            os.environ["KCW_HOOK_PW"] = s["webhook ${ENV} password"]  # for the daemon
            port2 = other.ports[0]
            over = {
                "connect": [
                    {"name": "c1", "poll_interval": "200ms", "timeout": "2s",
                     "urls": [h.fake.urls[0] + "/?access_token=" + s["connect URL query"]],
                     "basic_auth": {"username": "kcw", "password_file": pw}},
                    {"name": "c2", "poll_interval": "200ms", "timeout": "2s",
                     "urls": ["http://u2:%s@127.0.0.1:%d" % (s["connect URL userinfo"], port2)]},
                ],
                "prometheus": {"url": echo.url + "/?token=" + s["prometheus URL query"],
                               "bearer_token_file": pt, "timeout": "2s"},
                "receivers": [
                    {"name": "hook", "webhook": {
                        "url": h.sink.url + "/hook?token=" + s["webhook URL query"],
                        "basic_auth": {"username": "hookuser", "password": "${KCW_HOOK_PW}"}}},
                    {"name": "hook2", "webhook": {"url": h.sink.url + "/hook2",
                                                  "bearer_token_file": ht}},
                ],
                "rule_files": [h.rules_path, rules],
            }
            h.start_daemon(over)
            h.fake.fail_task("orders", 0)
            other.fail_task("billing", 0)
            h.wait_for(lambda: h.fake.restarts("orders") and other.restarts("billing"),
                       what="restarts on both clusters (credentials worked)")
            h.wait_alert("ConnectTaskFailed", "firing", {"connector": "orders"})
            h.wait_for(lambda: len(echo.faulted()) >= 2, what="queries to the echoing peer")
            h.wait_for(lambda: h.log_records(msg="rule evaluation failed"),
                       what="the echoed error logged")
            listen = h.config["global"]["listen"]
            outputs = {p: get(listen, p) for p in
                       ("/healthz", "/readyz", "/api/v1/alerts", "/api/v1/rules")}
            h.check("lastError" in outputs["/api/v1/rules"], "no lastError to search")
            outputs["status"] = run_cli(h, env, "status", "-c", h.config_path)
            outputs["status --json"] = run_cli(h, env, "status", "--json", "-c", h.config_path)
            outputs["check"] = run_cli(h, env, "check", "-c", h.config_path)
            # A broken config quoting the URLs: check and a SIGHUP reload.
            good = open(h.config_path).read()
            bad = good.replace("poll_interval: 200ms", "poll_interval: soon", 1).replace(
                "127.0.0.1:%d" % port2, "bad host:%d" % port2)
            with open(h.config_path, "w") as f:
                f.write(bad)
            outputs["check (broken)"] = run_cli(h, env, "check", "-c", h.config_path)
            h.check("error" in outputs["check (broken)"], "the broken config passed check")
            before = len(h.log_lines())
            h.proc.send_signal(signal.SIGHUP)
            h.wait_for(lambda: h.log_records(before, msg="reload rejected"),
                       what="the broken reload rejected")
            with open(h.config_path, "w") as f:
                f.write(good)
            outputs["webhook bodies"] = "\n".join(
                r.raw.decode("utf-8", "replace") for r in h.sink.received())
            h.finish()  # SIGTERM: the shutdown lines are in the log too
            outputs["log"] = h.log_text()
            leaks = []
            for kind, secret in s.items():
                for form in forms(secret):
                    for where, text in outputs.items():
                        if form in text:
                            i = text.index(form)
                            leaks.append("%s (%s) in %s: ...%s..." % (
                                kind, "as written" if form == secret else "base64", where,
                                text[max(0, i - 80):i + len(form) + 20]))
            h.check(not leaks, "secrets leaked:\n  " + "\n  ".join(leaks))
            print("  %d secrets x %d outputs: nothing matched" % (len(s), len(outputs)))
        finally:
            echo.stop()
            other.stop()


if __name__ == "__main__":
    harness.run_tests(globals())
