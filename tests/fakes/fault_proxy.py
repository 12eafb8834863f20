#!/usr/bin/env python3
"""fault_proxy.py: an HTTP proxy on loopback that injects faults.

It stands in front of one real peer (a fake Connect worker, a receiver's
fake, a real Prometheus, Alertmanager or etcd) and forwards every request
to it unchanged while no fault is set. A fault applies to the next `count` requests (None: until cleared), or
with probability=p to that share of requests until cleared,
so a test opens an episode, checks what kcwatch did, clears it and checks
that kcwatch recovered on its own. Faults (tests/FAULTS.md):

    refused    the listening socket is closed: connections are refused
    reset      headers and half the body, then a TCP reset
    slow       the answer comes after `delay` seconds (past kcwatch's timeout)
    status     the given HTTP status (500, 503, 409, 429 + Retry-After ...)
    malformed  200 with a body that is not what the peer speaks (not JSON)
    truncated  200 whose Content-Length promises more than is sent
    huge       200 with a 65 MiB body (past every body bound of kcwatch)
    endless    200, chunked, a chunk every 50 ms until the client gives up
    redirect   302 to the same path on another host (127.0.0.2)
    echo       500 whose body repeats the request line and headers (a peer
               that reflects credentials back into error messages)

An answer without a Content-Length (etcd's /v3/watch stream) is passed on
as it comes, chunked; setting a fault cuts every such stream, so the client
opens it again into the fault.

Everything is bounded: huge stops at 65 MiB, endless and slow stop after 30 s
or when the proxy stops. Each request is recorded (method, path, fault).
"""

import http.client
import random
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from httpbody import read_body  # noqa: E402

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-authorization", "proxy-authenticate", "content-length"}
HUGE_BYTES = 65 * 1024 * 1024  # past the largest bound, Prometheus' 64 MiB
MAX_STALL_S = 30.0


class FaultProxy:
    def __init__(self, upstream, host="127.0.0.1", port=0):
        u = urlsplit(upstream)
        self.up_host, self.up_port = u.hostname, u.port or 80
        self.host = host
        self._lock = threading.Lock()
        self._fault = None
        self._count = None
        self._kw = {}
        self.records = []
        self._rng = random.Random(20)
        self._stop = threading.Event()
        self._srv = None
        self._port = port
        self._streams = set()  # upstream sockets of streams being passed on

    # ------------------------------------------------------------ control

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self._port)

    def start(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def do_GET(self):
                proxy._handle(self)

            do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address):
                pass  # clients that give up mid-answer are expected here

        self._srv = Server((self.host, self._port), Handler)
        self._port = self._srv.server_address[1]
        threading.Thread(target=self._srv.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self._stop.set()
        with self._lock:
            self._cut_streams()
        if self._srv is not None:
            self._srv.shutdown()
            self._srv.server_close()
            self._srv = None

    def set_fault(self, fault, count=None, **kw):
        """fault for the next count requests (None: until clear())."""
        with self._lock:
            if fault == "refused":
                if self._srv is not None:
                    self._srv.shutdown()
                    self._srv.server_close()
                    self._srv = None
            self._fault, self._count, self._kw = fault, count, kw
            self._cut_streams()

    def clear(self):
        with self._lock:
            was = self._fault
            self._fault, self._count, self._kw = None, None, {}
        if was == "refused":
            self.start()  # same port

    def faulted(self, fault=None):
        with self._lock:
            return [r for r in self.records if r[2] and (fault is None or r[2] == fault)]

    def forwarded(self, since=0.0):
        with self._lock:
            return [r for r in self.records if not r[2] and r[3] >= since]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------ serving

    def _take(self):
        with self._lock:
            f, kw = self._fault, dict(self._kw)
            # probability=p: each request is faulted with that chance (a
            # flaky peer); the fault stays set.
            if f is not None and "probability" in kw:
                return (f, kw) if self._rng.random() < kw["probability"] else (None, {})
            if f is not None and self._count is not None:
                self._count -= 1
                if self._count <= 0:
                    self._fault, self._count, self._kw = None, None, {}
            return f, kw

    def _handle(self, h):
        try:
            body = read_body(h)
        except ValueError:
            body = b""
        fault, kw = self._take()
        with self._lock:
            self.records.append((h.command, h.path, fault, time.monotonic()))
        if fault is None:
            return self._forward(h, body)
        getattr(self, "_f_" + fault)(h, kw)

    def _forward(self, h, body):
        c = http.client.HTTPConnection(self.up_host, self.up_port, timeout=60)
        try:
            headers = {k: v for k, v in h.headers.items() if k.lower() not in HOP}
            headers["Host"] = "%s:%d" % (self.up_host, self.up_port)
            c.request(h.command, h.path, body=body if body or h.command in ("POST", "PUT")
                      else None, headers=headers)
            r = c.getresponse()
            if r.getheader("Content-Length") is None and h.command != "HEAD":
                return self._stream(h, c, r)
            data = r.read()
            h.send_response(r.status)
            for k, v in r.getheaders():
                if k.lower() not in HOP:
                    h.send_header(k, v)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(data)
        except OSError:
            self._answer(h, 502, b"upstream unreachable")
        finally:
            c.close()

    def _stream(self, h, c, r):
        """An answer without a length (etcd's /v3/watch: one JSON line per
        event, for as long as the watch lasts) is passed on piece by piece
        as it comes, chunked, so the client sees each event when etcd sends
        it. It ends when either side closes, a fault is set (the stream is
        cut: a fault applies to what flows through the proxy), or the proxy
        stops."""
        h.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in HOP:
                h.send_header(k, v)
        h.send_header("Transfer-Encoding", "chunked")
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True
        with self._lock:
            self._streams.add(c.sock)
        try:
            while not self._stop.is_set():
                data = r.read1(65536)
                if not data:
                    break
                h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                h.wfile.flush()
            h.wfile.write(b"0\r\n\r\n")
        except (OSError, http.client.HTTPException):
            pass
        finally:
            with self._lock:
                self._streams.discard(c.sock)

    def _cut_streams(self):
        """Ends every stream being passed on (caller holds the lock)."""
        for sock in self._streams:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @staticmethod
    def _answer(h, status, body, ctype="text/plain", extra=None):
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            h.send_header(k, v)
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(body)
        h.close_connection = True

    def _f_status(self, h, kw):
        extra = {}
        if kw.get("retry_after") is not None:
            extra["Retry-After"] = str(kw["retry_after"])
        body = kw.get("body", b'{"error_code": %d, "message": "injected"}' % kw.get("status", 500))
        self._answer(h, kw.get("status", 500), body, "application/json", extra)

    def _f_malformed(self, h, kw):
        self._answer(h, 200, kw.get("body", b"<html>this is not JSON{"), "application/json")

    def _f_truncated(self, h, kw):
        body = kw.get("body", b'{"orders": {"status": {"name": "ord')
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body) + 4096))
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(body)
        h.wfile.flush()
        h.close_connection = True

    def _f_reset(self, h, kw):
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", "4096")
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(b'{"half": "a bo')
        h.wfile.flush()
        h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        h.close_connection = True
        h.connection.close()

    def _f_slow(self, h, kw):
        self._stop.wait(min(kw.get("delay", 10.0), MAX_STALL_S))
        try:
            self._answer(h, 200, b"{}", "application/json")
        except OSError:
            pass

    def _f_huge(self, h, kw):
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(HUGE_BYTES))
        h.send_header("Connection", "close")
        h.end_headers()
        chunk = b" " * 65536
        sent = 1
        try:
            h.wfile.write(b"[")
            while sent < HUGE_BYTES and not self._stop.is_set():
                part = chunk[:HUGE_BYTES - sent]
                h.wfile.write(part)
                sent += len(part)
        except OSError:
            pass
        h.close_connection = True

    def _f_endless(self, h, kw):
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.send_header("Connection", "close")
        h.end_headers()
        end = time.monotonic() + MAX_STALL_S
        try:
            h.wfile.write(b"1\r\n[\r\n")
            while time.monotonic() < end and not self._stop.is_set():
                h.wfile.write(b"2\r\n1,\r\n")
                h.wfile.flush()
                self._stop.wait(0.05)
        except OSError:
            pass
        h.close_connection = True

    def _f_redirect(self, h, kw):
        self._answer(h, 302, b"", extra={"Location": "http://127.0.0.2:%d%s" % (
            kw.get("port", self._port), h.path)})

    def _f_echo(self, h, kw):
        text = "%s %s\n%s" % (h.command, h.path, "".join(
            "%s: %s\n" % (k, v) for k, v in h.headers.items()))
        self._answer(h, 500, text.encode(), "text/plain")
