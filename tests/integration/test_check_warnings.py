#!/usr/bin/env python3
"""`kcwatch check` prints warnings as FILE:LINE:COL: warning: message, like
its errors, and they do not fail the check unless --strict; unknown keys (in
the config and in rule files) get a "did you mean" suggestion."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402


def check(h, *args):
    p = subprocess.run([harness.kcwatch_bin(), "check", "-c", h.config_path] + list(args),
                       capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def test_warnings_positioned_and_strict():
    with Harness("check-warn", start_fakes=False) as h:
        # A connect: rule: no PromQL for check to verify (no Prometheus here).
        rules = h.write("rules.yaml", "groups:\n  - name: g\n    rules:\n"
                        "      - record: job:up:sum\n        expr: sum(up)\n"
                        "      - alert: Down\n        connect: {state: FAILED}\n")
        h.write("kcwatch.yaml", "admin:\n  listen: 0.0.0.0:9464\nrule_files: [%s]\n" % rules)
        rc, out, err = check(h)
        lines = err.strip().splitlines()
        h.check(rc == 0 and out.startswith("OK: ") and "2 warnings" in out, (rc, out, err))
        h.check(lines == [
            "%s:2:11: warning: admin.listen: listen 0.0.0.0:9464 serves the admin API beyond "
            "this host and no bearer token protects its write routes (reload); set "
            "admin.token_file or admin.basic_auth" % h.config_path,
            "%s:4:9: warning: recording rule skipped: kcwatch evaluates alerting rules only"
            % rules], lines)
        rc, out, err = check(h, "--strict")
        h.check(rc == 1 and err.count("(refused by --strict)") == 2 and "2 errors" in err,
                (rc, err))
        # a token silences the exposure warning
        h.write("admin.token", "t0k")
        h.write("kcwatch.yaml", "admin:\n  listen: 0.0.0.0:9464\n  token_file: admin.token\n"
                "rule_files: [%s]\n" % rules)
        rc, out, err = check(h)
        h.check(rc == 0 and "admin.listen" not in err and "1 warning\n" in out, (out, err))


def test_did_you_mean():
    with Harness("check-dym", start_fakes=False) as h:
        rules = h.write("rules.yaml", "groups:\n  - name: g\n    intervall: 1m\n    rules:\n"
                        "      - alert: Down\n        expr: up == 0\n        for_: 5m\n")
        h.write("kcwatch.yaml", "globl:\n  listen: 127.0.0.1:1\nremediation:\n"
                "  max_concurent: 3\n  budget: {max_restart: 1}\nrule_files: [%s]\n" % rules)
        rc, out, err = check(h)
        h.check(rc == 1, (rc, out, err))
        for want in ('%s:1:1: unknown key "globl" at top level; did you mean "global"?'
                     % h.config_path,
                     '%s:4:3: unknown key "max_concurent" in remediation; did you mean '
                     '"max_concurrent"?' % h.config_path,
                     '%s:5:12: unknown key "max_restart" in remediation.budget; did you mean '
                     '"max_restarts"?' % h.config_path):
            h.check(want in err.splitlines(), "%r not in:\n%s" % (want, err))
        # the rule files load only with a valid config: fix it, see theirs
        h.write("kcwatch.yaml", "rule_files: [%s]\n" % rules)
        rc, out, err = check(h)
        h.check(rc == 1 and 'unknown key "intervall"; did you mean "interval"?' in err
                and 'unknown key "for_"; did you mean "for"?' in err, err)
        h.check(all(l.startswith(rules + ":") for l in err.strip().splitlines()[:-1]), err)


if __name__ == "__main__":
    harness.run_tests(globals())
