#!/usr/bin/env python3
"""Type=notify: the daemon tells systemd READY=1, STATUS=, RELOADING=1 (then
READY=1 again) around a reload, STOPPING=1 at SIGTERM, and pings WATCHDOG=1
at half of WatchdogSec. The test plays systemd: it owns the NOTIFY_SOCKET
datagram socket and sets WATCHDOG_USEC as systemd would."""

import os
import signal
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402


class NotifySocket:
    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []
        self.lock = threading.Lock()
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.messages.append(data.decode("utf-8", "replace"))

    def all(self):
        with self.lock:
            return list(self.messages)

    def count(self, prefix):
        return sum(1 for m in self.all() for line in m.split("\n") if line.startswith(prefix))

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


def test_notify_protocol():
    with Harness("sdnotify", workers=1) as h:
        ns = NotifySocket(os.path.join(h.tmp, "notify.sock"))
        saved = {k: os.environ.get(k) for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
        os.environ["NOTIFY_SOCKET"] = ns.path
        os.environ["WATCHDOG_USEC"] = "400000"  # WatchdogSec=400ms: a ping every 200 ms
        try:
            h.fake.add_connector("orders", tasks=1)
            h.start_daemon()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        try:
            h.wait_for(lambda: ns.count("READY=1") == 1, what="READY=1")
            h.wait_for(lambda: ns.count("WATCHDOG=1") >= 3, what="three WATCHDOG=1 pings")
            h.wait_for(lambda: any("STATUS=watching 1 cluster(s); 0 alert(s) firing" in m
                                   for m in ns.all()), what="a STATUS= line")
            h.fake.fail_task("orders", 0, harness.TASK_FAILED_TRACE)
            h.wait_for(lambda: any("1 alert(s) firing" in m for m in ns.all()),
                       what="STATUS= following a firing alert")
            os.kill(h.proc.pid, signal.SIGHUP)
            h.wait_for(lambda: ns.count("READY=1") == 2, what="READY=1 after the reload")
            reload_msgs = [m for m in ns.all() if m.startswith("RELOADING=1")]
            h.check(len(reload_msgs) == 1 and "MONOTONIC_USEC=" in reload_msgs[0],
                    "RELOADING=1 with MONOTONIC_USEC: %r" % reload_msgs)
            order = [m.split("\n")[0] for m in ns.all() if not m.startswith(("WATCHDOG", "STATUS"))]
            h.check(order == ["READY=1", "RELOADING=1", "READY=1"], "order %r" % order)
            h.finish()  # SIGTERM, exit 0
            h.check(ns.count("STOPPING=1") == 1, "STOPPING=1 at SIGTERM: %r" % ns.all())
        finally:
            ns.close()


if __name__ == "__main__":
    harness.run_tests(globals())
