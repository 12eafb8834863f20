#!/usr/bin/env python3
"""static_connect.py: a Kafka Connect REST stand-in for benchmarks at scale.

tests/fakes/fake_connect.py rebuilds every body from its model on each
request, which is right for the test suite and too slow to serve a 2.4 MB
status list every second. This server keeps each connector's status JSON
pre-serialised and joins the pieces only when something changed, so a poll
costs it a buffer write. It serves what a watchdog uses (connect-rest.md §2):

    GET  /                                  server info (version 3.8.0)
    GET  /connectors?expand=status[&expand=info]   the list (§3.5)
    GET  /connectors/{c}                    info with a 25-key config (§3.3)
    GET  /connectors/{c}/status             status (§3.2)
    POST /connectors/{c}/restart?includeTasks=true&onlyFailed=true   202 (§5)
    POST /connectors/{c}/tasks/{t}/restart  204

A failure driver fails one RUNNING task every `fail_every` seconds, with a
trace, and records when; a restart of that task records the time it came in
and puts the task back to RUNNING. Latencies are restart time minus failure
time, per failed task.
"""

import json
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

TRACE = ("org.apache.kafka.connect.errors.ConnectException: Exiting WorkerSinkTask due to "
         "unrecoverable exception.\n\tat org.apache.kafka.connect.runtime.WorkerSinkTask."
         "deliverMessages(WorkerSinkTask.java:614)\n\tat org.apache.kafka.connect.runtime."
         "WorkerSinkTask.poll(WorkerSinkTask.java:336)\nCaused by: java.io.IOException: "
         "connection reset by peer")


def config_of(name, i):
    """25 keys, as a realistic sink connector has (values are made up)."""
    cfg = {"name": name, "connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector",
           "tasks.max": "2", "topics": "orders-%d" % i,
           "connection.url": "jdbc:postgresql://db-%d.prod:5432/orders" % (i % 16),
           "connection.user": "kcw_%d" % i, "connection.password": "secret-%08x" % (i * 7919),
           "insert.mode": "upsert", "pk.mode": "record_key", "pk.fields": "id",
           "auto.create": "false", "auto.evolve": "false", "batch.size": "3000",
           "max.retries": "10", "retry.backoff.ms": "3000",
           "key.converter": "org.apache.kafka.connect.storage.StringConverter",
           "value.converter": "io.confluent.connect.avro.AvroConverter",
           "value.converter.schema.registry.url": "http://schema-registry:8081",
           "errors.tolerance": "none", "errors.log.enable": "true",
           "errors.log.include.messages": "true",
           "transforms": "route", "transforms.route.type":
           "org.apache.kafka.connect.transforms.RegexRouter",
           "transforms.route.regex": "(.*)", "transforms.route.replacement": "$1_sink"}
    assert len(cfg) == 25
    return cfg


class Cluster:
    def __init__(self, n_connectors, tasks=2, n_workers=8, seed=1):
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.names = ["conn-%05d-orders-sink" % i for i in range(n_connectors)]
        self.workers = ["10.0.0.%d:8083" % (w + 1) for w in range(n_workers)]
        self.tasks = tasks
        # state[c][t] = "RUNNING" | "FAILED"
        self.state = [["RUNNING"] * tasks for _ in range(n_connectors)]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.status_json = [self._status(i) for i in range(n_connectors)]
        self.info_json = [None] * n_connectors
        self.body_status = None
        self.body_both = None
        self.failed_at = {}   # (c, t) -> time of failure (monotonic)
        self.ever_failed = set()
        self.latencies = []   # restart time - failure time, seconds
        self.unrestarted = 0  # failed tasks whose failure was replaced before a restart
        self.requests = {}    # kind -> count
        self.bytes_sent = 0

    def _status(self, i):
        name = self.names[i]
        tasks = []
        for t in range(self.tasks):
            st = self.state[i][t]
            task = {"id": t, "state": st, "worker_id": self.workers[(i + t) % len(self.workers)]}
            if st == "FAILED":
                task["trace"] = TRACE
            tasks.append(task)
        return json.dumps({"name": name, "connector": {"state": "RUNNING", "worker_id":
                                                         self.workers[i % len(self.workers)]},
                           "tasks": tasks, "type": "sink"}, separators=(",", ":"))

    def _info(self, i):
        if self.info_json[i] is None:
            name = self.names[i]
            self.info_json[i] = json.dumps(
                {"name": name, "config": config_of(name, i),
                 "tasks": [{"connector": name, "task": t} for t in range(self.tasks)],
                 "type": "sink"}, separators=(",", ":"))
        return self.info_json[i]

    def list_body(self, with_info):
        with self.lock:
            if with_info:
                if self.body_both is None:
                    parts = ['"%s":{"status":%s,"info":%s}' % (n, self.status_json[i],
                                                               self._info(i))
                             for i, n in enumerate(self.names)]
                    self.body_both = ("{" + ",".join(parts) + "}").encode()
                return self.body_both
            if self.body_status is None:
                parts = ['"%s":{"status":%s}' % (n, self.status_json[i])
                         for i, n in enumerate(self.names)]
                self.body_status = ("{" + ",".join(parts) + "}").encode()
            return self.body_status

    def _set(self, i, t, st):
        self.state[i][t] = st
        self.status_json[i] = self._status(i)
        self.body_status = self.body_both = None

    def fail_one(self):
        """Fails a task of a connector that has not failed before in this run:
        a second failure of the same connector is held back by kcwatch's
        restart back-off on purpose, which is not what this measures."""
        with self.lock:
            while True:
                i = self.rng.randrange(len(self.names))
                t = self.rng.randrange(self.tasks)
                if i not in self.ever_failed and self.state[i][t] == "RUNNING":
                    break
            self.ever_failed.add(i)
            self._set(i, t, "FAILED")
            self.failed_at[(i, t)] = time.monotonic()

    def restart(self, name, task=None):
        """KIP-745 onlyFailed (task None) or one task; returns the status JSON."""
        now = time.monotonic()
        with self.lock:
            i = self.index.get(name)
            if i is None:
                return None
            for t in range(self.tasks):
                if (task is None or t == task) and self.state[i][t] == "FAILED":
                    at = self.failed_at.pop((i, t), None)
                    if at is not None:
                        self.latencies.append(now - at)
                    self._set(i, t, "RUNNING")
            return self.status_json[i]

    def count(self, kind, n_bytes):
        with self.lock:
            self.requests[kind] = self.requests.get(kind, 0) + 1
            self.bytes_sent += n_bytes


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # Headers and body go out in two writes: without this, Nagle and the
        # client's delayed ACK hold every keep-alive answer for 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        pass

    def _send(self, code, body=b"", kind="other"):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)
        self.server.cluster.count(kind, len(body))

    def _drain(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(min(n, 1 << 20))

    def do_GET(self):
        cl = self.server.cluster
        u = urlsplit(self.path)
        q = parse_qs(u.query)
        parts = [unquote(p) for p in u.path.split("/") if p]
        if not parts:
            return self._send(200, '{"version":"3.8.0","commit":"bench","kafka_cluster_id":"b"}',
                              "version")
        if parts == ["connectors"]:
            exp = q.get("expand", [])
            if "status" in exp:
                return self._send(200, cl.list_body("info" in exp), "poll")
            return self._send(200, json.dumps(cl.names), "list")
        if len(parts) >= 2 and parts[0] == "connectors":
            i = cl.index.get(parts[1])
            if i is None:
                return self._send(404, '{"error_code":404,"message":"not found"}')
            if len(parts) == 2:
                with cl.lock:
                    body = cl._info(i)
                return self._send(200, body, "info")
            if parts[2:] == ["status"]:
                with cl.lock:
                    body = cl.status_json[i]
                return self._send(200, body, "status")
        return self._send(404, '{"error_code":404,"message":"not found"}')

    def do_POST(self):
        self._drain()
        cl = self.server.cluster
        u = urlsplit(self.path)
        parts = [unquote(p) for p in u.path.split("/") if p]
        if len(parts) == 3 and parts[0] == "connectors" and parts[2] == "restart":
            body = cl.restart(parts[1])
            if body is None:
                return self._send(404, '{"error_code":404,"message":"not found"}')
            return self._send(202, body, "restart")
        if len(parts) == 5 and parts[2] == "tasks" and parts[4] == "restart":
            body = cl.restart(parts[1], int(parts[3]))
            if body is None:
                return self._send(404, '{"error_code":404,"message":"not found"}')
            return self._send(204, b"", "restart")
        return self._send(404, '{"error_code":404,"message":"not found"}')


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # kcwatch stopped between runs while a poll was being written.
        pass


def start(cluster, port=0):
    srv = Server(("127.0.0.1", port), Handler)
    srv.cluster = cluster
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


class FailureDriver:
    """Fails one task every `every` seconds on average until stopped. Each gap
    is drawn uniformly from [0.5, 1.5] x every, so failures land at every
    phase of the poll cycle rather than at one fixed offset from it."""

    def __init__(self, cluster, every=1.0):
        self.cluster = cluster
        self.every = every
        self.stop_ev = threading.Event()
        self.fails = 0

    def start(self):
        def run():
            rng = random.Random(self.cluster.rng.random())
            nxt = time.monotonic()
            while not self.stop_ev.is_set():
                nxt += self.every * rng.uniform(0.5, 1.5)
                self.cluster.fail_one()
                self.fails += 1
                self.stop_ev.wait(max(0, nxt - time.monotonic()))
        threading.Thread(target=run, daemon=True).start()
        return self

    def stop(self):
        self.stop_ev.set()
