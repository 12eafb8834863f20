#!/usr/bin/env python3
"""The command line: each command's own --help (and `kcwatch help CMD`), the
version with the git commit (text and --json), --log-level/--log-format
overriding the config (JSON lines with typed numbers and booleans), wrong
options refused with the command's usage; every option a --help lists is in
the man page and in the bash completion of that command."""

import json
import os
import re
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SOURCE_DIR, Harness  # noqa: E402

COMMANDS = ["run", "check", "status", "history", "test", "version"]


def cli(*args):
    p = subprocess.run([harness.kcwatch_bin()] + list(args), capture_output=True, text=True,
                       timeout=30)
    return p.returncode, p.stdout, p.stderr


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def options_of(help_text):
    return sorted(set(re.findall(r"(?m)^\s+(?:-\w, )?(--[a-z-]+)", help_text)))


def test_each_command_has_its_own_help():
    seen = {}
    for cmd in COMMANDS:
        rc, out, err = cli(cmd, "--help")
        check(rc == 0 and out.startswith("usage: kcwatch %s" % cmd), "%s --help: %d %r %r"
              % (cmd, rc, out, err))
        check(cli("help", cmd)[1] == out, "help %s differs from %s --help" % (cmd, cmd))
        check(cli(cmd, "-h")[1] == out, "%s -h" % cmd)
        seen[cmd] = out
    check(len(set(seen.values())) == len(COMMANDS), "some commands share their help")
    check("--log-level" in seen["run"] and "--strict" in seen["run"], seen["run"])
    check("--since" in seen["history"] and "--since" not in seen["status"], seen["history"])
    rc, out, _ = cli("--help")
    check(rc == 0 and all(("  %s " % c) in out for c in COMMANDS), out)
    rc, _, err = cli("status", "--strict")
    check(rc == 2 and "--strict is not an option" in err and "usage: kcwatch status" in err, err)
    rc, _, err = cli("run", "--log-level", "loud")
    check(rc == 2 and "--log-level loud" in err, err)
    rc, _, err = cli("nope")
    check(rc == 2 and "unknown command: nope" in err, err)
    rc, _, err = cli("test")
    check(rc == 2 and "missing arguments" in err, err)


def test_version_and_commit():
    rc, out, _ = cli("version")
    m = re.fullmatch(r"kcwatch (\d+\.\d+\.\d+) \(commit ([0-9a-f]{12}(?:-dirty)?|unknown)\)\n",
                     out)
    check(rc == 0 and m, "version: %r" % out)
    rc, out, _ = cli("version", "--json")
    doc = json.loads(out)
    check(rc == 0 and doc == {"version": m.group(1), "commit": m.group(2)}, doc)
    git = subprocess.run(["git", "-C", SOURCE_DIR, "rev-parse", "--short=12", "HEAD"],
                         capture_output=True, text=True)
    if git.returncode == 0:
        # Built from this checkout: the commit is HEAD's (or an older one
        # when the binary was not rebuilt since; it must still be a commit).
        c = doc["commit"].replace("-dirty", "")
        known = subprocess.run(["git", "-C", SOURCE_DIR, "cat-file", "-e", c + "^{commit}"])
        check(known.returncode == 0, "commit %s is not in the repository" % c)
    check(cli("--version")[1] == cli("version")[1], "--version")


def test_docs_list_every_option():
    with open(os.path.join(SOURCE_DIR, "packaging/man/kcwatch.8")) as f:
        man = f.read().replace("\\-", "-")
    with open(os.path.join(SOURCE_DIR, "packaging/completion/kcwatch.bash")) as f:
        completion = f.read()
    for cmd in COMMANDS:
        opts = options_of(cli(cmd, "--help")[1])
        check(opts, "no options parsed from %s --help" % cmd)
        line = re.search(r"(?m)^\s+%s\)(.*?)(?:;;)" % cmd, completion, re.S)
        check(line, "no completion for %s" % cmd)
        for o in opts:
            check(o in man, "man page lacks %s (%s)" % (o, cmd))
            check(o in line.group(1), "completion of %s lacks %s" % (cmd, o))
    # the completion itself, run by bash
    script = ("source %s; COMP_WORDS=(kcwatch check --l); COMP_CWORD=2; _kcwatch; "
              "echo ${COMPREPLY[@]}" % os.path.join(SOURCE_DIR,
                                                     "packaging/completion/kcwatch.bash"))
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True).stdout.split()
    check(out == ["--log-level", "--log-format"], out)


def test_log_flags_override_config():
    with Harness("cli-log", workers=1) as h:
        # the config says logfmt at info; the flags say JSON at debug
        h.start_daemon({"global": {"log": {"format": "logfmt", "level": "info"}}},
                       args=["--log-format", "json", "--log-level", "debug"])
        h.wait_for(lambda: any('"admin API listening"' in l for l in h.log_lines()),
                   what="the listening line")
        recs = [json.loads(l) for l in h.log_lines() if l.startswith("{")]
        check(recs and len(recs) == len(h.log_lines()), "not all lines are JSON:\n%s"
              % h.log_tail())
        started = [r for r in recs if r["msg"] == "kcwatch started"]
        check(started, "no start line: %s" % h.log_tail())
        s = started[0]
        check(s["clusters"] == 1 and isinstance(s["clusters"], int), s)
        check(isinstance(s["rules"], int) and s["dry_run"] is False, s)
        listening = [r for r in recs if r["msg"] == "admin API listening"]
        check(len(listening) == 1 and listening[0]["tls"] is False, listening)
        # debug is on (the config said info): the access log line shows, typed
        urllib.request.urlopen("http://%s/healthz" % h.config["global"]["listen"],
                               timeout=5).read()
        acc = h.wait_for(lambda: [json.loads(l) for l in h.log_lines()
                                  if '"admin request"' in l], what="the access log line")
        check(acc[0]["level"] == "debug" and acc[0]["status"] == 200 and isinstance(acc[0]["duration_ms"], (int, float)), acc)
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
