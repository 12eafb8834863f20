#!/usr/bin/env python3
"""A state_dir kcwatch cannot write: it logs an error and keeps watching and
healing, with its state in memory.

- full: the state_dir is a small tmpfs mounted here, filled up while the
  daemon runs; the next writes fail with ENOSPC;
- read-only: the state_dir of an earlier run, bind-mounted read-only; the
  daemon starts on the state it finds there (nothing paged again) and
  `kcwatch history` still reads its audit log.

Needs root (mount); every mount is undone whatever happens."""

import errno
import os
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402
from test_durable_state import delivered, history_json, start_again  # noqa: E402

MEMORY_ONLY = ("state store: cannot write the state database; keeping state in memory only "
               "(alerts, budgets and queued notifications will not survive a restart)")


def mount(*args):
    p = subprocess.run(["mount"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise AssertionError("mount %s failed (this test needs root): %s"
                             % (" ".join(args), p.stderr.decode().strip()))


def umount(path):
    if subprocess.run(["umount", path], stderr=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["umount", "-l", path], stderr=subprocess.DEVNULL)


def stop_daemon(h):
    if h.proc is not None and h.proc.poll() is None:
        h.proc.kill()
        h.proc.wait(5)


def fill(directory):
    """Writes a file until the filesystem is full."""
    chunk = b"\0" * 65536
    with open(os.path.join(directory, "filler"), "wb") as f:
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def durable_gauge(h):
    """kcwatch_state_store_durable from the daemon's /metrics."""
    url = "http://%s/metrics" % h.config["global"]["listen"]
    with urllib.request.urlopen(url, timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("kcwatch_state_store_durable "):
                return float(line.split()[1])
    return None


def test_full_filesystem_keeps_healing():
    with Harness("unwritable-full") as h:
        state = os.path.join(h.tmp, "state")
        os.makedirs(state)
        mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", state)
        try:
            h.fake.add_connector("orders", tasks=1)
            h.start_daemon()
            h.check(durable_gauge(h) == 1, "the store should start durable")
            left = fill(state)
            h.check(left == 0, "the tmpfs still has %d bytes free" % left)
            h.fake.fail_task("orders", 0, harness.TASK_FAILED_TRACE)
            h.wait_for(lambda: h.fake.restarts("orders"), what="the restart (healing)")
            h.wait_for(lambda: h.fake.task_state("orders", 0) == "RUNNING",
                       what="the task to recover")
            h.wait_for(lambda: delivered(h, "orders", "firing") and
                       delivered(h, "orders", "resolved"),
                       what="the notifications (watching)")
            h.check(h.log_records(msg=MEMORY_ONLY, level="error"),
                    "no error saying the state is kept in memory only")
            h.check(durable_gauge(h) == 0, "kcwatch_state_store_durable should say 0")
            h.finish()
        finally:
            stop_daemon(h)
            umount(state)


def test_read_only_filesystem_keeps_healing():
    with Harness("unwritable-ro") as h:
        state = os.path.join(h.tmp, "state")
        ro = os.path.join(h.tmp, "state-ro")
        os.makedirs(ro)
        for c in ("orders", "billing"):
            h.fake.add_connector(c, tasks=1)
        rules = [harness.connect_rule("ConnectTaskFailed", "task", "FAILED", restart=True,
                                      connector="billing"),
                 harness.connect_rule("OrdersTaskFailed", "task", "FAILED", connector="orders")]
        # An earlier run leaves state behind: orders firing and notified.
        h.start_daemon(rules=rules)
        h.fake.fail_task("orders", 0, harness.TASK_FAILED_TRACE)
        h.wait_for(lambda: delivered(h, "orders", "firing", "OrdersTaskFailed"),
                   what="the first run's notification")
        h.finish()
        mount("--bind", state, ro)
        try:
            mount("-o", "remount,bind,ro", ro)
            ro_over = {"global": {"state_dir": ro}}
            start_again(h, ro_over, rules)
            h.check(h.log_records(msg=MEMORY_ONLY, level="error"),
                    "no error saying the state is kept in memory only")
            # Healing goes on.
            h.fake.fail_task("billing", 0, harness.TASK_FAILED_TRACE)
            h.wait_for(lambda: h.fake.restarts("billing"), what="the restart (healing)")
            h.wait_for(lambda: delivered(h, "billing", "firing"), what="billing notified")
            # The state found there was used: orders is not paged again.
            h.wait_polls(10)
            n = len(delivered(h, "orders", "firing", "OrdersTaskFailed"))
            h.check(n == 1, "orders paged %d times: the read-only state was not restored" % n)
            rows = history_json(h, "--since", "1h")
            h.check(any(r["kind"] == "notification" and r["status"] == "sent" for r in rows),
                    "history cannot read the read-only audit log: %r" % rows)
            h.finish()
        finally:
            stop_daemon(h)
            umount(ro)


if __name__ == "__main__":
    harness.run_tests(globals())
