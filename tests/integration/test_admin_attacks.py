#!/usr/bin/env python3
"""The admin server against hostile clients, on loopback only.

Slowloris: 80 connections from another loopback address (127.0.0.2), each
trickling one header line every second and never finishing, used to take
every one of the 64 connection slots for as long as they kept talking (each
byte reset the 30 s idle timeout), and /healthz timed out. Now one address
holds a share of the slots and every request has a total deadline, so
/healthz answers fast throughout.

DNS rebinding: a request naming a foreign Host is refused (421); loopback
literals and localhost are served."""

import os
import socket
import sys
import threading
import time
import http.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402

ATTACKERS = 80
ATTACK_SECONDS = 12
MAX_HEALTHZ_S = 1.0


def get(listen, path, host=None, timeout=10):
    hostname, port = listen.rsplit(":", 1)
    c = http.client.HTTPConnection(hostname, int(port), timeout=timeout)
    try:
        c.putrequest("GET", path, skip_host=host is not None)
        if host is not None:
            c.putheader("Host", host)
        c.endheaders()
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


class Slowloris:
    """ATTACKERS sockets from 127.0.0.2; each sends a request line, then one
    header line a second; reconnects when cut. Bounded in count and time."""

    def __init__(self, listen):
        self.host, self.port = listen.rsplit(":", 1)
        self.port = int(self.port)
        self.stop = threading.Event()
        self.socks = []
        self.cut = 0
        self.lock = threading.Lock()

    def _open(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(2)
        s.bind(("127.0.0.2", 0))
        try:
            s.connect((self.host, self.port))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        except OSError:
            s.close()
            return None
        return s

    def run(self):
        deadline = time.monotonic() + ATTACK_SECONDS
        self.socks = [self._open() for _ in range(ATTACKERS)]
        i = 0
        while not self.stop.is_set() and time.monotonic() < deadline:
            for k, s in enumerate(self.socks):
                if s is None:
                    self.socks[k] = self._open()
                    continue
                try:
                    s.sendall(b"X-a%d: b\r\n" % i)
                except OSError:
                    with self.lock:
                        self.cut += 1
                    s.close()
                    self.socks[k] = self._open()
            i += 1
            self.stop.wait(1.0)
        for s in self.socks:
            if s is not None:
                s.close()


def test_slowloris_keeps_healthz_fast():
    with Harness("slowloris", workers=1) as h:
        h.fake.add_connector("orders", tasks=1)
        h.start_daemon()
        listen = h.config["global"]["listen"]
        st, _ = get(listen, "/healthz")
        h.check(st == 200, "healthz before the attack: %d" % st)
        attack = Slowloris(listen)
        t = threading.Thread(target=attack.run, daemon=True)
        t.start()
        h.wait_for(lambda: sum(1 for s in attack.socks if s is not None) >= ATTACKERS // 2,
                   what="the attacking connections to open")
        worst, n = 0.0, 0
        end = time.monotonic() + ATTACK_SECONDS - 1
        while time.monotonic() < end:
            t0 = time.monotonic()
            try:
                st, _ = get(listen, "/healthz", timeout=10)
            except OSError as e:
                st = "error %s" % e
            took = time.monotonic() - t0
            h.check(st == 200, "/healthz during the attack answered %s after %.1fs" % (st, took))
            worst = max(worst, took)
            n += 1
            attack.stop.wait(0.05)  # pacing only: a few hundred probes, not tens of thousands
        attack.stop.set()
        t.join(10)
        print("  %d /healthz during the attack: worst %.3fs; attacker saw %d cuts"
              % (n, worst, attack.cut))
        h.check(worst < MAX_HEALTHZ_S, "/healthz took %.2fs under slowloris" % worst)
        h.check(attack.cut > 0, "no trickling connection was ever cut")
        h.finish()


def test_foreign_host_refused():
    with Harness("host-check", workers=1) as h:
        h.start_daemon()
        listen = h.config["global"]["listen"]
        port = listen.rsplit(":", 1)[1]
        st, body = get(listen, "/api/v1/alerts", host="evil.example.com")
        h.check(st == 421, "Host evil.example.com got %d %r" % (st, body[:200]))
        st, _ = get(listen, "/healthz", host="evil.example.com:%s" % port)
        h.check(st == 421, "Host evil.example.com:port on /healthz got %d" % st)
        for good in ("127.0.0.1:%s" % port, "localhost:%s" % port, "localhost"):
            st, _ = get(listen, "/healthz", host=good)
            h.check(st == 200, "Host %s got %d" % (good, st))
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
