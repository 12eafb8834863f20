#!/usr/bin/env python3
"""Credentials written into URLs, and text from peers on the operator's screen.

- Userinfo in a Connect URL is sent as preemptive basic auth (the worker used
  to answer 401), and never printed: not in the log, not in `kcwatch status`
  (table or --json worker_url).
- A Connect URL with a query string keeps it and the API path is joined onto
  its path (the path used to land after the query: "unreadable connector
  list").
- `kcwatch status` escapes control bytes in connector names and traces (an
  ESC sequence used to reach the terminal raw).
- `--strict` refuses an admin API on a non-loopback address without a token.
"""

import base64
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402

USER, PASSWORD, TOKEN = "kcw", "p@ss w0rd:x", "tok-Zq81x"


def run_cli(h, *args):
    p = subprocess.run([harness.kcwatch_bin()] + list(args), capture_output=True, timeout=60,
                       cwd=h.tmp)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def test_userinfo_and_query_in_connect_url():
    with Harness("url-creds", workers=1, fake_kwargs={"basic_auth": (USER, PASSWORD)}) as h:
        h.fake.add_connector("orders", tasks=1)
        port = h.fake.ports[0]
        url = "http://%s:%s@127.0.0.1:%d/?access_token=%s" % (USER, "p%40ss%20w0rd%3Ax", port,
                                                             TOKEN)
        h.start_daemon({"connect": [{"name": "c1", "urls": [url], "poll_interval": "200ms",
                                     "timeout": "2s"}]})
        h.fake.fail_task("orders", 0)
        h.wait_for(lambda: h.fake.restarts("orders"), what="a restart through URL credentials")
        want = "Basic " + base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode()
        reqs = h.fake.requests()
        h.check(all(r.headers.get("authorization") == want for r in reqs),
                "a request went out without the URL's credentials")
        h.check(not [r for r in reqs if r.status == 401], "401 answers seen")
        polls = h.fake.requests(method="GET", path="/connectors")
        h.check(polls and all("access_token=%s" % TOKEN in r.raw_path for r in polls),
                "the URL's query was not kept: %r" % [r.raw_path for r in polls[:3]])
        rc, out, err = run_cli(h, "status", "--json", "-c", h.config_path)
        h.check(rc == 0, "status --json exited %d: %s" % (rc, err))
        doc = json.loads(out)
        wurl = doc["clusters"][0]["worker_url"]
        h.check(doc["clusters"][0]["state"] == "REACHABLE", "status: %r" % doc["clusters"][0])
        rc2, table, err2 = run_cli(h, "status", "-c", h.config_path)
        for secret in (PASSWORD, "p%40ss", "w0rd", TOKEN):
            for where, text in (("worker_url", wurl), ("status --json", out + err),
                                ("status", table + err2), ("log", h.log_text())):
                h.check(secret not in text, "%r appears in %s" % (secret, where))
        h.finish()


def test_status_escapes_control_bytes():
    with Harness("status-escape", workers=1) as h:
        evil = "evil\x1b[2J\x1b]0;owned\x07"
        h.fake.add_connector(evil, tasks=1)
        h.fake.fail_task(evil, 0, "boom\x1b[31m red\r\nline two")
        h.write_config()
        rc, out, err = run_cli(h, "status", "-c", h.config_path)
        h.check(rc == 0, "status exited %d: %s" % (rc, err))
        h.check("\x1b" not in out and "\x07" not in out and "\r" not in out,
                "control bytes reached the terminal: %r" % out)
        h.check("evil\\x1b[2J\\x1b]0;owned\\x07" in out, "escaped name missing: %r" % out)
        h.check("boom\\x1b[31m red" in out, "escaped trace missing: %r" % out)


def test_strict_refuses_exposed_admin_api():
    with Harness("strict", workers=1) as h:
        h.write_config({"global": {"listen": "0.0.0.0:%d" % harness.free_port()}})
        rc, out, err = run_cli(h, "check", "--strict", "-c", h.config_path)
        h.check(rc == 1 and "refused by --strict" in err, "check --strict: %d %r" % (rc, err))
        rc, out, err = run_cli(h, "check", "-c", h.config_path)
        h.check(rc == 0, "check without --strict: %d %r" % (rc, err))
        rc, out, err = run_cli(h, "run", "--strict", "-c", h.config_path)
        h.check(rc == 1 and "admin.listen" in err, "run --strict: %d %r" % (rc, err))


if __name__ == "__main__":
    harness.run_tests(globals())
