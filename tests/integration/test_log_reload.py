#!/usr/bin/env python3
"""global.log on reload: a reload that turns the level from info to debug
makes debug lines appear (SIGHUP and POST /-/reload alike), and a level or
format given on the command line still wins over the reloaded config, as it
does at start."""

import json
import os
import re
import signal
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Harness  # noqa: E402

INFO = {"global": {"log": {"format": "logfmt", "level": "info"}}}


def set_log(h, level=None, fmt=None):
    """Edits global.log in place (the rest, listen address included, stays)."""
    with open(h.config_path) as f:
        text = f.read()
    if level:
        text, n = re.subn(r"(?m)^(\s+level: )\w+$", r"\g<1>" + level, text)
        h.check(n == 1, "one global.log.level line in the config:\n" + text)
    if fmt:
        text, n = re.subn(r"(?m)^(\s+format: )\w+$", r"\g<1>" + fmt, text)
        h.check(n == 1, "one global.log.format line in the config:\n" + text)
    with open(h.config_path, "w") as f:
        f.write(text)


def sighup_reload(h, what):
    """SIGHUP, waits for the reload to be logged; returns the log line index
    from before it."""
    before = len(h.log_lines())
    h.proc.send_signal(signal.SIGHUP)
    h.wait_for(lambda: h.log_records(before, msg="configuration reloaded"), what=what)
    return before


def admin(h, method, path):
    url = "http://%s%s" % (h.config["global"]["listen"], path)
    req = urllib.request.Request(url, data=b"" if method == "POST" else None, method=method)
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status, r.read().decode()


def json_records(h, start=0):
    out = []
    for line in h.log_lines()[start:]:
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def test_sighup_turns_debug_on():
    with Harness("log-reload", workers=1) as h:
        h.fake.add_connector("orders", tasks=1)
        h.start_daemon(INFO)
        admin(h, "GET", "/-/healthy")
        h.wait_polls(2)
        h.check(not h.log_records(level="debug"), "debug lines at level info")
        set_log(h, level="debug")
        before = sighup_reload(h, "the reload")
        admin(h, "GET", "/-/healthy")
        h.wait_for(lambda: h.log_records(before, level="debug", msg="admin request",
                                         path="/-/healthy"),
                   what="a debug line (admin request) after reloading with level debug")
        # And back: a reload to info silences them again.
        set_log(h, level="info")
        sighup_reload(h, "the second reload")
        mark = len(h.log_lines())  # from here on the level is info
        admin(h, "GET", "/-/healthy")
        admin(h, "GET", "/-/ready")
        h.wait_polls(3)
        h.check(not h.log_records(mark, level="debug"), "debug lines after reloading to info")
        h.finish()


def test_command_line_wins_over_reloaded_config():
    with Harness("log-reload-pinned", workers=1) as h:
        h.fake.add_connector("orders", tasks=1)
        h.start_daemon(INFO, args=["--log-format", "json"])
        h.check(json_records(h), "JSON lines at start with --log-format json")
        set_log(h, level="debug", fmt="logfmt")
        before = len(h.log_lines())
        status, body = admin(h, "POST", "/-/reload")
        h.check(status == 200, "POST /-/reload: %d %s" % (status, body))
        admin(h, "GET", "/-/healthy")
        # The level comes from the new config, the format stays the flag's.
        h.wait_for(lambda: [r for r in json_records(h, before)
                            if r.get("level") == "debug" and r.get("msg") == "admin request"],
                   what="a JSON debug line after POST /-/reload with level debug")
        h.check(not [ln for ln in h.log_lines()[before:] if ln.startswith("ts=")],
                "logfmt lines despite --log-format json")
        h.finish()

    with Harness("log-reload-level", workers=1) as h:
        h.fake.add_connector("orders", tasks=1)
        h.start_daemon(INFO, args=["--log-level", "debug"])
        h.wait_for(lambda: h.log_records(level="debug"), what="debug lines with --log-level debug")
        set_log(h, level="error")
        before = sighup_reload(h, "the reload (logged: --log-level debug still wins over error)")
        admin(h, "GET", "/-/healthy")
        h.wait_for(lambda: h.log_records(before, level="debug", msg="admin request"),
                   what="debug lines after reloading a config with level error")
        h.finish()


if __name__ == "__main__":
    from harness import run_tests
    run_tests(globals())
