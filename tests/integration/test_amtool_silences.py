#!/usr/bin/env python3
"""Alertmanager's own CLI, amtool (Debian's prometheus-alertmanager), manages
kcwatch's silences: `silence add` (POST /api/v2/silences), `silence query`
(GET /api/v2/silences), `silence expire` (DELETE /api/v2/silence/{id}), and
the silence it adds mutes the alert's notifications while the alert still
fires in /api/v1/alerts. GET /api/v2/silence/{id} answers the one silence."""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Harness, connect_rule, peer_binary, run_tests  # noqa: E402


def amtool(h, *args):
    binary = peer_binary("AMTOOL_BIN", "/usr/bin/amtool", "prometheus-alertmanager")
    url = "--alertmanager.url=http://%s" % h.config["global"]["listen"]
    p = subprocess.run([binary, url] + list(args), capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, HOME=h.tmp))  # no ~/.config/amtool of the caller
    h.check(p.returncode == 0, "amtool %s: exit %d: %s%s" % (" ".join(args), p.returncode,
                                                             p.stdout, p.stderr))
    return p.stdout


def get(h, path):
    url = "http://%s%s" % (h.config["global"]["listen"], path)
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def test_amtool_add_query_expire():
    with Harness("amtool") as h:
        for c in ("loud", "quiet"):
            h.fake.add_connector(c, tasks=1)
        h.start_daemon(rules=[connect_rule("ConnectTaskFailed", "task", "FAILED")])

        sid = amtool(h, "silence", "add", "connector=quiet", "--comment=maintenance",
                     "--author=ops", "--duration=1h").strip()
        h.check(len(sid) == 36, "amtool printed no silence id: %r" % sid)

        listed = json.loads(amtool(h, "silence", "query", "-o", "json"))
        h.check([s["id"] for s in listed] == [sid], listed)
        h.check(listed[0]["comment"] == "maintenance" and listed[0]["createdBy"] == "ops",
                listed)
        h.check(amtool(h, "silence", "query", "-q", "connector=quiet").split() == [sid],
                "query by matcher")

        st, one = get(h, "/api/v2/silence/" + sid)
        h.check(st == 200 and one["id"] == sid and one["status"]["state"] == "active", one)
        st, missing = get(h, "/api/v2/silence/no-such-id")
        h.check(st == 404 and missing == "silence not found", (st, missing))

        # The silence holds: quiet fires but is not notified, loud is.
        for c in ("loud", "quiet"):
            h.fake.fail_task(c, 0)
        h.wait_alert("ConnectTaskFailed", labels={"connector": "loud"})
        h.wait_for(lambda: len([a for a in get(h, "/api/v1/alerts")[1]["data"]["alerts"]
                                if a["state"] == "firing"]) == 2, what="both alerts firing")
        h.wait_polls(5)
        h.check(not h.sink.find_alerts("ConnectTaskFailed", labels={"connector": "quiet"}),
                "the silenced alert was notified")

        amtool(h, "silence", "expire", sid)
        h.wait_alert("ConnectTaskFailed", labels={"connector": "quiet"},
                     what="the alert once amtool expired its silence")
        st, one = get(h, "/api/v2/silence/" + sid)
        h.check(st == 200 and one["status"]["state"] == "expired", one)
        h.check(amtool(h, "silence", "query", "-q").split() == [], "expired still active")
        h.check(amtool(h, "silence", "query", "-q", "--expired").split() == [sid],
                "expired silence not listed with --expired")
        h.finish()


if __name__ == "__main__":
    run_tests(globals())
