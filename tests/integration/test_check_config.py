#!/usr/bin/env python3
"""`kcwatch check`: every error of a bad config (and of a bad rule file) is
printed as FILE:LINE:COL: message and the exit status is 1; a good config
(with the shipped rules.d) exits 0."""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402

BAD_CONFIG = """\
global:
  evaluation_interval: 1x
  bogus_key: 1
  state_dir: STATE
connect:
  - name: c1
    urls: ["http://127.0.0.1:1"]
    poll_interval: soon
remediation:
  exclude: {connector: "a(b"}
route: {receiver: hook}
receivers:
  - name: hook
    webhook: {url: "http://127.0.0.1:1/hook"}
"""
# line -> (what is wrong, the key on that line)
BAD_CONFIG_ERRORS = {2: ("bad duration", "evaluation_interval"),
                     3: ("unknown key", "bogus_key"),
                     8: ("bad duration", "poll_interval"),
                     10: ("bad regex", "connector")}

BAD_RULES = """\
groups:
- name: broken
  rules:
  - alert: A
    connect: {target: task, state: FAILED}
    for: 5x
  - alert: B
    connect: {target: task, state: EXPLODED}
  - alert: C
    connect: {target: task, state: FAILED}
    annotations:
      summary: "{{ $labels.connector | frobnicate }}"
"""
BAD_RULES_ERRORS = {6: "bad duration", 8: "unknown state", 12: "unknown template function"}


def run_check(h, *args):
    p = subprocess.run([harness.kcwatch_bin(), "check"] + list(args), cwd=h.tmp,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


def positioned(out, path):
    """{line: [(col, message)]} of FILE:LINE:COL: lines naming path."""
    got = {}
    names = {path, os.path.basename(path), os.path.relpath(path)}
    for line in out.splitlines():
        m = re.match(r"^(.+?):(\d+):(\d+): (.+)$", line)
        if m and m.group(1) in names:
            got.setdefault(int(m.group(2)), []).append((int(m.group(3)), m.group(4)))
    return got


def test_bad_config_reports_every_error():
    with Harness("check-bad", start_fakes=False) as h:
        text = BAD_CONFIG.replace("STATE", os.path.join(h.tmp, "state"))
        path = h.write("bad.yaml", text)
        rc, out = run_check(h, "-c", path)
        h.check(rc == 1, "exit status %s, expected 1; output:\n%s" % (rc, out))
        got = positioned(out, path)
        lines = text.splitlines()
        for ln, (what, key) in BAD_CONFIG_ERRORS.items():
            h.check(ln in got, "no FILE:%d:COL: error for the %s on line %d (%r); output:\n%s"
                    % (ln, what, ln, lines[ln - 1], out))
            key_col = lines[ln - 1].index(key) + 1
            for col, msg in got[ln]:
                h.check(key_col <= col <= len(lines[ln - 1]) + 1,
                        "line %d: column %d is outside %r" % (ln, col, lines[ln - 1]))
                h.check(msg.strip(), "empty message")
        extra = set(got) - set(BAD_CONFIG_ERRORS)
        h.check(not extra, "errors on lines without a problem: %r\n%s" % (sorted(extra), out))


def test_bad_rule_file_positions():
    with Harness("check-rules", start_fakes=False) as h:
        rules = h.write("bad_rules.yaml", BAD_RULES)
        cfg = h.write("good.yaml", "global:\n  state_dir: %s\nrule_files: [%s]\n"
                      % (os.path.join(h.tmp, "state"), rules))
        rc, out = run_check(h, "-c", cfg)
        h.check(rc == 1, "exit status %s, expected 1; output:\n%s" % (rc, out))
        got = positioned(out, rules)
        for ln, what in BAD_RULES_ERRORS.items():
            h.check(ln in got, "no %s:%d:COL: error for the %s; output:\n%s"
                    % (rules, ln, what, out))
        # The same file named on the command line instead of in the config.
        cfg2 = h.write("plain.yaml", "global:\n  state_dir: %s\n" % os.path.join(h.tmp, "state"))
        rc, out = run_check(h, "-c", cfg2, rules)
        h.check(rc == 1, "exit status %s with a bad RULE_FILE argument" % rc)
        h.check(set(BAD_RULES_ERRORS) <= set(positioned(out, rules)),
                "RULE_FILE argument errors missing:\n%s" % out)


def test_good_config_passes():
    with Harness("check-good", start_fakes=False) as h:
        pw = h.write("password", "s3cret\n")
        rules_glob = os.path.join(harness.SOURCE_DIR, "rules.d", "*.yaml")
        cfg = {
            "global": {"evaluation_interval": "1s", "state_dir": os.path.join(h.tmp, "state"),
                       "listen": "127.0.0.1:%d" % harness.free_port(),
                       "log": {"format": "logfmt", "level": "debug"}},
            "connect": [{"name": "c1", "urls": ["http://127.0.0.1:1", "http://127.0.0.1:2"],
                         "poll_interval": "200ms", "timeout": "2s",
                         "basic_auth": {"username": "u", "password_file": pw}}],
            "remediation": {"enabled": True, "dry_run": False, "max_concurrent": 2,
                            "backoff": {"initial": "300ms", "max": "5s", "multiplier": 2,
                                        "jitter": 0},
                            "budget": {"max_restarts": 3, "window": "1h"},
                            "stable_period": "2s", "verify_timeout": "3s",
                            "exclude": {"connector": "legacy-.*"}},
            "rule_files": [h.rules_path, rules_glob],
            # Nothing listens there: the shipped PromQL rules stay unverified
            # (test_promql_check.py checks them against a real Prometheus).
            "prometheus": {"url": "http://127.0.0.1:1"},
            "receivers": [{"name": "hook", "webhook": {"url": "http://127.0.0.1:1/hook"}}],
            "route": {"receiver": "hook", "group_by": ["alertname", "cluster", "connector"],
                      "group_wait": "0s", "group_interval": "500ms", "repeat_interval": "1h"},
        }
        with open(h.rules_path, "w") as f:
            f.write(harness.to_yaml({"groups": [{"name": "connect-status",
                                                 "rules": harness.default_rules()}]}))
        path = h.write("good.yaml", harness.to_yaml(cfg))
        rc, out = run_check(h, "-c", path)
        h.check(rc == 3, "exit status %s for a good config with Prometheus unreachable, "
                "expected 3; output:\n%s" % (rc, out))
        h.check("PromQL not verified" in out and "OK:" in out, "output:\n" + out)
        h.check(not re.search(r"^\S+:\d+:\d+: ", out, re.M), "errors printed:\n" + out)
        h.check("s3cret" not in out, "the password appeared in the output")


def test_no_rules_warns_and_strict_refuses():
    """A rule_files glob matching nothing and 0 rules loaded: warnings in
    check (exit 0), errors with --strict (exit 1), warnings in the log."""
    with Harness("check-norules") as h:
        glob = os.path.join(h.tmp, "missing", "*.yaml")
        cfg = h.write("norules.yaml", "global:\n  state_dir: %s\nconnect: [{name: a, urls: "
                      "[http://127.0.0.1:1]}]\nrule_files: [%s]\n"
                      % (os.path.join(h.tmp, "state"), glob))
        rc, out = run_check(h, "-c", cfg)
        h.check(rc == 0, "exit status %s; output:\n%s" % (rc, out))
        h.check('%s: warning: rule_files: "%s" matches no file' % (cfg, glob) in out,
                "no warning for the empty glob:\n" + out)
        h.check("%s: warning: no alerting rule loaded" % cfg in out,
                "no warning for 0 rules:\n" + out)
        rc, out = run_check(h, "--strict", "-c", cfg)
        h.check(rc == 1, "exit status %s with --strict; output:\n%s" % (rc, out))
        h.check(out.count("refused by --strict") == 2, "--strict output:\n" + out)
        h.start_daemon(overrides={"rule_files": [glob]})
        h.wait_for(lambda: h.log_records(msg="configuration warning"),
                   what="the warning in the log")
        warned = " ".join(r.get("warning", "")
                          for r in h.log_records(msg="configuration warning"))
        h.check("matches no file" in warned and "no alerting rule loaded" in warned,
                "log warnings: %r" % warned)
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
