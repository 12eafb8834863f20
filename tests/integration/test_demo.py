#!/usr/bin/env python3
"""The README's demo (tests/demo/demo.py): it heals the failed task and
exits 0 even with 127.0.0.1:9464 taken (it picks free ports), and whatever
ends it, success or SIGTERM half way, no kcwatch process and no temporary
directory is left behind."""

import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SOURCE_DIR  # noqa: E402

DEMO = os.path.join(SOURCE_DIR, "tests", "demo", "demo.py")


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie of ours would still answer: the demo reaps its child
    with open("/proc/%d/stat" % pid) as f:
        return f.read().split(")")[-1].split()[0] == "Z"


def start(tmpdir):
    env = dict(os.environ, TMPDIR=tmpdir)
    return subprocess.Popen([sys.executable, DEMO, "--kcwatch", harness.kcwatch_bin(),
                             "--timeout", str(harness.DEFAULT_TIMEOUT * 2)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


def test_demo_runs_beside_a_busy_9464_and_cleans_up():
    with tempfile.TemporaryDirectory(prefix="kcw-it-demo-") as tmpdir:
        blocker = socket.socket()
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            blocker.bind(("127.0.0.1", 9464))
            blocker.listen(1)
        except OSError:
            pass  # already taken by something else: just as good
        try:
            p = start(tmpdir)
            out, _ = p.communicate(timeout=harness.DEFAULT_TIMEOUT * 4)
        finally:
            blocker.close()
        out = out.decode("utf-8", "replace")
        check(p.returncode == 0 and "Healed" in out, "demo failed (%s):\n%s" % (p.returncode, out))
        pid = int(re.search(r"kcwatch \(pid (\d+)\)", out).group(1))
        port = int(re.search(r"admin API on http://127.0.0.1:(\d+)", out).group(1))
        check(port != 9464, "the demo used 9464")
        check(gone(pid), "kcwatch %d still running" % pid)
        check(os.listdir(tmpdir) == [], "left behind: %r" % os.listdir(tmpdir))


def test_demo_sigterm_cleans_up():
    with tempfile.TemporaryDirectory(prefix="kcw-it-demo-") as tmpdir:
        p = start(tmpdir)
        out = b""
        deadline = time.monotonic() + harness.DEFAULT_TIMEOUT
        try:
            while b"serves its admin API" not in out:
                check(time.monotonic() < deadline and p.poll() is None,
                      "the demo did not start kcwatch:\n%s" % out.decode())
                r, _, _ = select.select([p.stdout], [], [], 0.5)
                if r:
                    out += os.read(p.stdout.fileno(), 65536)
            p.send_signal(signal.SIGTERM)
            rest, _ = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        out = (out + rest).decode("utf-8", "replace")
        check(p.returncode == 1 and "demo stopped by SIGTERM" in out, "%s:\n%s"
              % (p.returncode, out))
        pid = int(re.search(r"kcwatch \(pid (\d+)\)", out).group(1))
        check(gone(pid), "kcwatch %d still running after the demo's SIGTERM" % pid)
        check(os.listdir(tmpdir) == [], "left behind: %r" % os.listdir(tmpdir))


if __name__ == "__main__":
    harness.run_tests(globals())
