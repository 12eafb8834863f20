#!/usr/bin/env python3
"""fake_connect.py: a fake Kafka Connect cluster for kcwatch's tests.

It follows docs/connect-rest.md (referred to as "§N" below): the JSON shapes
(§3), the states (§4), restart semantics including the 202 body and how the
status moves afterwards (§5), pause/resume/stop (§6), error bodies and codes
(§7), basic auth (§8) and the version differences (§9).

A cluster has N workers. Each worker is its own HTTP server on its own
loopback port; all of them share one state. worker_id is "127.0.0.1:<port>"
of the worker that owns an instance (owners are dealt round robin).
Asynchronous transitions (restart processing, pause/resume) are driven by
threading.Timer with configurable delays.

Tests drive it through the Python API (FakeConnectCluster), the demo through
the CLI and its control port:

    python3 fake_connect.py --workers 2 --version 3.8.0 --control-port 8099

Control HTTP API (CLI only): POST /<method> with a JSON object of keyword
arguments calls that method of FakeConnectCluster (see CONTROL_METHODS) and
answers {"result": ...}; GET /requests and GET /state dump what happened.

Everything is guarded by one lock; request records and status history are
kept for assertions (requests(), restarts(), history()).
"""

import argparse
import base64
import binascii
import json
import re
import signal
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from httpbody import read_body  # noqa: E402

STATES = ("UNASSIGNED", "RUNNING", "PAUSED", "FAILED", "RESTARTING", "STOPPED")

DEFAULT_TRACE = (
    "org.apache.kafka.connect.errors.ConnectException: simulated failure\n"
    "\tat com.example.fake.FakeTask.put(FakeTask.java:42)\n"
    "\tat org.apache.kafka.connect.runtime.WorkerSinkTask.deliverMessages"
    "(WorkerSinkTask.java:601)\n")

# Impact ranking of pending KIP-745 requests (§5.2, RestartRequest.compareImpact):
# connector-only-failed < all-failed < connector-any < everything.
def _impact(include_tasks, only_failed):
    if only_failed and not include_tasks:
        return 0
    if only_failed and include_tasks:
        return 1
    if not include_tasks:
        return 2
    return 3


def parse_version(v):
    """(major, minor) of "3.8.0", "2.8.1-ccs" ..."""
    m = re.match(r"^(\d+)\.(\d+)", v or "")
    if not m:
        raise ValueError("bad version %r" % (v,))
    return int(m.group(1)), int(m.group(2))


class Request:
    """One request a worker received."""

    def __init__(self, worker, port, method, raw_path, path, query, headers, body, t):
        self.worker = worker          # worker index
        self.port = port
        self.method = method
        self.raw_path = raw_path      # as sent, with query
        self.path = path              # percent-decoded path, no query
        self.query = query            # {name: [values]}
        self.headers = headers        # {lower-case name: value}
        self.body = body              # bytes
        self.time = t                 # time.monotonic()
        self.status = None            # HTTP status answered (None: no answer)
        self.fault = None             # injected fault, if any

    def to_dict(self):
        return {"worker": self.worker, "port": self.port, "method": self.method,
                "raw_path": self.raw_path, "path": self.path, "query": self.query,
                "headers": self.headers, "time": self.time, "status": self.status,
                "fault": self.fault}

    def __repr__(self):
        return "<%s %s -> %s>" % (self.method, self.raw_path, self.status)


class _Instance:
    def __init__(self, owner, state, trace=None):
        self.owner = owner  # worker index
        self.state = state
        self.worker_id = None
        self.trace = trace


class _Connector:
    def __init__(self, name, ctype, config, target):
        self.name = name
        self.type = ctype
        self.config = config
        self.target = target          # STARTED | PAUSED | STOPPED
        self.connector = None         # _Instance
        self.tasks = {}               # id -> _Instance (status records)
        self.n_task_configs = 0
        self.status_hidden = False
        self.outcome = "recover"
        self.outcome_trace = None
        self.outcome_times = None     # None: every restart
        self.failures = 0             # fail_again counter (for "new" traces)
        self.pending = None           # (include_tasks, only_failed) not yet processed
        self.generation = 0           # bumped on delete/re-add


class HttpError(Exception):
    def __init__(self, status, message=None, generic=False, headers=None):
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})
        if message is None or generic:
            message = {404: "HTTP 404 Not Found", 405: "HTTP 405 Method Not Allowed"}.get(
                status, message or "error")
        self.message = message


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # Peers hanging up (worker_down, cut responses, clients timing out)
        # are normal here; anything else is a bug worth printing.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    def server_bind(self):
        # HTTPServer.server_bind resolves the host name (getfqdn), which can be
        # slow on a machine without DNS; loopback needs none of it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = host
        self.server_port = port


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Jetty(9.4.54.v20240208)"
    sys_version = ""

    def log_message(self, fmt, *args):  # quiet
        pass

    def setup(self):
        super().setup()
        self.server.fake_worker.track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.fake_worker.track(self.connection, False)

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def do_PATCH(self):
        self._dispatch()

    def _dispatch(self):
        worker = self.server.fake_worker
        cluster = worker.cluster
        body = read_body(self)
        rec = cluster._record(worker, self.command, self.path, self.headers, body)
        delay = cluster._delay_for(rec)
        if delay:
            cluster._stopping.wait(delay)
        if not worker.up:
            self._drop()
            return
        try:
            status, ctype, payload, extra = cluster._handle(rec, worker)
        except Exception as e:  # a bug in the fake: answer 500 and remember it
            cluster._internal_error("%s %s: %r" % (self.command, self.path, e))
            status, ctype, payload, extra = 500, "application/json", json.dumps(
                {"error_code": 500, "message": "fake internal error: %r" % (e,)}).encode(), {}
        if not worker.up:
            self._drop()
            return
        with cluster._lock:
            rec.status = status
        cut = extra.pop("cut", False)
        self.send_response(status)
        for k, v in extra.items():
            self.send_header(k, v)
        if status == 204 or status == 304:
            self.end_headers()
            return
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        if cut:
            # A transport-level truncation: announce the whole length, send half, hang up.
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload[: max(1, len(payload) // 2)])
            self.wfile.flush()
            self.close_connection = True
            self._drop()
            return
        self.end_headers()
        self.wfile.write(payload)

    def _drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _Worker:
    def __init__(self, cluster, index, host, port):
        self.cluster = cluster
        self.index = index
        self.host = host
        self.port = port
        self.up = False
        self.server = None
        self.thread = None
        self.conns = set()
        self.conns_lock = threading.Lock()

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    @property
    def worker_id(self):
        return "%s:%d" % (self.host, self.port)

    def track(self, conn, add):
        with self.conns_lock:
            if add:
                self.conns.add(conn)
            else:
                self.conns.discard(conn)

    def start(self):
        srv = _Server((self.host, self.port), _Handler)
        srv.fake_worker = self
        self.port = srv.server_address[1]
        self.server = srv
        self.up = True
        self.thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                                       name="fake-connect-%d" % self.port, daemon=True)
        self.thread.start()

    def stop(self):
        """Close the listening socket and every open connection: new
        connections are refused, keep-alive ones see EOF."""
        self.up = False
        srv, self.server = self.server, None
        if srv is not None:
            srv.shutdown()
            srv.server_close()
        if self.thread is not None:
            self.thread.join(5)
            self.thread = None
        with self.conns_lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class FakeConnectCluster:
    """A fake Kafka Connect cluster. Use start()/stop() or a with block."""

    def __init__(self, workers=1, version="3.8.0", commit="4a1d9c37e2b0f615",
                 kafka_cluster_id="q3L9xZt0QmGk2hV7cW1aPg", host="127.0.0.1", ports=None,
                 restart_process_delay=0.1, restarting_delay=0.1, legacy_restart_delay=0.05,
                 transition_delay=0.05, basic_auth=None):
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self.version = version
        parse_version(version)
        self.commit = commit
        self.kafka_cluster_id = kafka_cluster_id
        self.host = host
        ports = list(ports or [])
        self._workers = [_Worker(self, i, host, ports[i] if i < len(ports) else 0)
                         for i in range(workers)]
        self.restart_process_delay = restart_process_delay
        self.restarting_delay = restarting_delay
        self.legacy_restart_delay = legacy_restart_delay
        self.transition_delay = transition_delay
        self._auth = tuple(basic_auth) if basic_auth else None
        self._connectors = {}
        self._next_owner = 0
        self._requests = []
        self._history = []
        self._timers = set()
        self._restart_faults = []   # list of (status, message)
        self._fail_all_until = None  # monotonic deadline: every restart fails again before it
        self._poll_faults = []      # list of kinds
        self.poll_faults_served = 0
        self._delays = []           # [seconds, path regex or None, remaining or None]
        self.errors = []            # internal errors of the fake itself
        self._started = False

    # ------------------------------------------------------------ lifecycle

    def start(self):
        for w in self._workers:
            w.start()
        self._started = True
        return self

    def stop(self):
        self._stopping.set()
        with self._lock:
            timers = list(self._timers)
            self._timers.clear()
        for t in timers:
            t.cancel()
        for w in self._workers:
            if w.up or w.server is not None:
                w.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def urls(self):
        return [w.url for w in self._workers]

    @property
    def ports(self):
        return [w.port for w in self._workers]

    def worker_id(self, index):
        return self._workers[index].worker_id

    def worker_down(self, index):
        """Worker stops listening: connections are refused (existing ones closed)."""
        self._workers[index].stop()

    def worker_up(self, index):
        w = self._workers[index]
        if not w.up:
            w.start()

    def worker_is_up(self, index):
        return self._workers[index].up

    # ------------------------------------------------------------ timers

    def _schedule(self, delay, fn, *args):
        holder = []

        def run():
            with self._lock:
                self._timers.discard(holder[0])
                if self._stopping.is_set():
                    return
                try:
                    fn(*args)
                except Exception as e:
                    self._internal_error("timer %s: %r" % (fn.__name__, e))

        t = threading.Timer(max(0.0, delay), run)
        t.daemon = True
        holder.append(t)
        with self._lock:
            self._timers.add(t)
        t.start()

    def _internal_error(self, msg):
        with self._lock:
            self.errors.append(msg)

    # ------------------------------------------------------------ state helpers

    def _owner(self):
        o = self._next_owner % len(self._workers)
        self._next_owner += 1
        return o

    def _set(self, c, task, inst, state, trace=None, keep_trace=False):
        inst.state = state
        if not keep_trace:
            inst.trace = trace
        inst.worker_id = self._workers[inst.owner].worker_id
        self._history.append({"time": time.monotonic(), "connector": c.name, "task": task,
                              "state": state, "worker_id": inst.worker_id,
                              "trace": inst.trace})

    def _get(self, name):
        c = self._connectors.get(name)
        if c is None:
            raise KeyError("no connector %r" % (name,))
        return c

    def _run_state(self, c):
        """The state an instance ends in after (re)starting: §4 target state."""
        return {"STARTED": "RUNNING", "PAUSED": "PAUSED", "STOPPED": "STOPPED"}[c.target]

    def _make_tasks(self, c, n, state):
        c.tasks = {}
        c.n_task_configs = n
        for t in range(n):
            inst = _Instance(self._owner(), state)
            c.tasks[t] = inst
            self._set(c, t, inst, state)

    def _outcome_fails(self, c):
        """True if this restart of a failing instance fails again (consumes a use)."""
        if self._fail_all_until is not None and time.monotonic() < self._fail_all_until:
            return True  # the cause persists, whatever the connector
        if c.outcome != "fail_again":
            return False
        if c.outcome_times is not None:
            if c.outcome_times <= 0:
                return False
        return True

    def _consume_outcome(self, c):
        if c.outcome == "fail_again" and c.outcome_times is not None:
            c.outcome_times -= 1
            if c.outcome_times <= 0:
                c.outcome, c.outcome_trace, c.outcome_times = "recover", None, None

    def _again_trace(self, c, old):
        c.failures += 1
        if c.outcome_trace is None:
            return old or DEFAULT_TRACE
        if c.outcome_trace == "new":
            first, _, rest = (old or DEFAULT_TRACE).partition("\n")
            first = re.sub(r" \(failure #\d+\)$", "", first)
            return "%s (failure #%d)\n%s" % (first, c.failures, rest)
        return c.outcome_trace

    # ------------------------------------------------------------ control API

    def add_connector(self, name, type="sink", tasks=1, state="RUNNING", paused=False,
                      stopped=False, config=None, connector_class=None):
        """Adds a connector with `tasks` task configs. state is the target:
        RUNNING (default), PAUSED or STOPPED (paused=/stopped= are shortcuts)."""
        if not self._started:
            raise RuntimeError("start() the cluster first (worker ids need ports)")
        if paused:
            state = "PAUSED"
        if stopped:
            state = "STOPPED"
        target = {"RUNNING": "STARTED", "STARTED": "STARTED", "PAUSED": "PAUSED",
                  "STOPPED": "STOPPED"}[state]
        if type not in ("source", "sink", "unknown"):
            raise ValueError("type must be source, sink or unknown")
        with self._lock:
            if name in self._connectors:
                raise ValueError("connector %r exists" % (name,))
            cls = connector_class or ("com.example.fake.Fake%sConnector" % type.capitalize())
            cfg = {"connector.class": cls, "tasks.max": str(tasks), "name": name}
            if type == "sink":
                cfg["topics"] = name + "-topic"
            if config:
                cfg.update({k: str(v) for k, v in config.items()})
            c = _Connector(name, type, cfg, target)
            c.connector = _Instance(self._owner(), None)
            self._connectors[name] = c
            run = self._run_state(c)
            self._set(c, None, c.connector, run)
            self._make_tasks(c, 0 if target == "STOPPED" else tasks, run)
        return name

    def remove_connector(self, name):
        with self._lock:
            c = self._connectors.pop(name)
            c.generation += 1

    def connectors(self):
        with self._lock:
            return list(self._connectors)

    def fail_task(self, connector, task, trace=None):
        with self._lock:
            c = self._get(connector)
            if task not in c.tasks:
                raise KeyError("no task %s-%d" % (connector, task))
            self._set(c, task, c.tasks[task], "FAILED", trace or DEFAULT_TRACE)

    def fail_connector(self, connector, trace=None):
        with self._lock:
            c = self._get(connector)
            self._set(c, None, c.connector, "FAILED", trace or DEFAULT_TRACE)

    def set_task_state(self, connector, task, state, trace=None):
        """Writes any status record directly (e.g. UNASSIGNED after a rebalance)."""
        if state not in STATES:
            raise ValueError(state)
        with self._lock:
            c = self._get(connector)
            inst = c.tasks.get(task)
            if inst is None:
                inst = c.tasks[task] = _Instance(self._owner(), state)
            self._set(c, task, inst, state, trace)

    def set_connector_state(self, connector, state, trace=None):
        if state not in STATES:
            raise ValueError(state)
        with self._lock:
            c = self._get(connector)
            self._set(c, None, c.connector, state, trace)

    def hide_status(self, connector, hidden=True):
        """No status record: left out of expand=status, /status answers 404 (§3.5)."""
        with self._lock:
            self._get(connector).status_hidden = hidden

    def pause(self, connector, immediate=True):
        with self._lock:
            c = self._get(connector)
            self._pause(c, immediate)

    def resume(self, connector, immediate=True):
        with self._lock:
            c = self._get(connector)
            self._resume(c, immediate)

    def stop_connector(self, connector):
        with self._lock:
            self._stop(self._get(connector))

    def fail_restarts_for(self, seconds):
        """A cause outside the connectors (a broker, a registry): for `seconds`
        from now every restart of a FAILED instance, of any connector, fails
        again with its old trace; afterwards each connector's own outcome."""
        with self._lock:
            self._fail_all_until = time.monotonic() + seconds

    def set_restart_outcome(self, connector, outcome, trace=None, times=None):
        """What restarts of this connector's FAILED instances lead to:
        "recover" (target state) or "fail_again" (FAILED again; trace None keeps
        the old trace, "new" makes a distinct one each time, else the string).
        times: only the next N restarts fail, then it recovers. Instances that
        were not FAILED when restarted always come back in their target state."""
        if outcome not in ("recover", "fail_again"):
            raise ValueError(outcome)
        with self._lock:
            c = self._get(connector)
            c.outcome, c.outcome_trace, c.outcome_times = outcome, trace, times

    def inject_restart_faults(self, status, count=1, message=None, retry_after=None):
        """The next `count` restart calls (connector or task) answer `status`
        (409 rebalance, 429 rate limit from a proxy in front of the workers,
        500 timeout/forwarding) without restarting anything. retry_after:
        the Retry-After header value sent with each answer."""
        if message is None:
            message = {409: "Cannot complete request momentarily due to stale configuration "
                            "(typically caused by a concurrent config change)",
                       429: "Too Many Requests",
                       500: "Request timed out"}.get(status, "injected error")
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        with self._lock:
            self._restart_faults.extend([(status, message, headers)] * count)

    def inject_poll_faults(self, kind, count=1):
        """The next `count` GET /connectors answers are broken: "malformed"
        ("{not json"), "truncated" (a valid prefix of the real body, consistent
        Content-Length) or "cut" (full Content-Length announced, half sent,
        connection closed)."""
        if kind not in ("malformed", "truncated", "cut"):
            raise ValueError(kind)
        with self._lock:
            self._poll_faults.extend([kind] * count)

    def pending_poll_faults(self):
        with self._lock:
            return len(self._poll_faults)

    def set_response_delay(self, seconds, path=None, count=None):
        """Delay answers by `seconds` (path: regex on the decoded path; count:
        only the next N matching requests). seconds=0 clears all delays."""
        with self._lock:
            if not seconds:
                self._delays = []
            else:
                self._delays.append([seconds, re.compile(path) if path else None, count])

    def set_basic_auth(self, username=None, password=None):
        """Require Basic auth on every request (§8); None disables it."""
        with self._lock:
            self._auth = (username, password) if username is not None else None

    def set_version(self, version):
        parse_version(version)
        with self._lock:
            self.version = version

    # ------------------------------------------------------------ inspection

    def status(self, connector):
        """The §3.2 status object (tasks sorted) as a dict."""
        with self._lock:
            return self._status_json(self._get(connector))

    def task_state(self, connector, task):
        with self._lock:
            inst = self._get(connector).tasks.get(task)
            return inst.state if inst else None

    def task_worker_id(self, connector, task):
        with self._lock:
            inst = self._get(connector).tasks.get(task)
            return inst.worker_id if inst else None

    def connector_state(self, connector):
        with self._lock:
            return self._get(connector).connector.state

    def history(self, connector=None, task="any"):
        """Status records written, oldest first; task=None selects the connector's."""
        with self._lock:
            return [dict(h) for h in self._history
                    if (connector is None or h["connector"] == connector)
                    and (task == "any" or h["task"] == task)]

    def states(self, connector, task=None):
        return [h["state"] for h in self.history(connector, task)]

    def requests(self, method=None, path=None, path_re=None, since=None, worker=None,
                 pred=None):
        with self._lock:
            out = list(self._requests)
        rx = re.compile(path_re) if path_re else None
        return [r for r in out
                if (method is None or r.method == method)
                and (path is None or r.path == path)
                and (rx is None or rx.search(r.path))
                and (since is None or r.time >= since)
                and (worker is None or r.worker == worker)
                and (pred is None or pred(r))]

    def restarts(self, connector=None, since=None):
        """POST .../restart and .../tasks/{t}/restart requests, in order."""
        rx = re.compile(r"^/connectors/([^/]+)(/tasks/[^/]+)?/restart$")

        def is_restart(r):
            m = rx.match(r.path)
            return bool(m) and (connector is None or unquote(m.group(1)) == connector)

        return self.requests(method="POST", since=since, pred=is_restart)

    def poll_count(self, since=None, worker=None):
        """GET /connectors requests received (any query)."""
        return len(self.requests(method="GET", path="/connectors", since=since, worker=worker))

    def clear_requests(self):
        with self._lock:
            self._requests = []

    def snapshot(self):
        with self._lock:
            return {"version": self.version, "urls": self.urls,
                    "workers_up": [w.up for w in self._workers],
                    "connectors": {n: self._status_json(c)
                                   for n, c in self._connectors.items()},
                    "errors": list(self.errors)}

    # ------------------------------------------------------------ transitions

    def _pause(self, c, immediate):
        was_stopped = c.target == "STOPPED"
        c.target = "PAUSED"

        def apply(gen):
            if self._connectors.get(c.name) is not c or c.generation != gen or c.target != "PAUSED":
                return
            if c.connector.state != "FAILED":  # a FAILED connector refuses to pause (§4)
                self._set(c, None, c.connector, "PAUSED")
            if was_stopped and not c.tasks:
                self._make_tasks(c, int(c.config.get("tasks.max", "1")), "PAUSED")
            for t, inst in sorted(c.tasks.items()):
                if inst.state != "FAILED":  # FAILED tasks ignore the pause (§4)
                    self._set(c, t, inst, "PAUSED")

        if immediate:
            apply(c.generation)
        else:
            self._schedule(self.transition_delay, apply, c.generation)

    def _resume(self, c, immediate):
        was_stopped = c.target == "STOPPED"
        c.target = "STARTED"

        def apply(gen):
            if self._connectors.get(c.name) is not c or c.generation != gen or c.target != "STARTED":
                return
            if c.connector.state in ("PAUSED", "STOPPED"):
                self._set(c, None, c.connector, "RUNNING")
            if was_stopped:  # a STOPPED connector regenerates its tasks (§6)
                self._make_tasks(c, int(c.config.get("tasks.max", "1")), "RUNNING")
            for t, inst in sorted(c.tasks.items()):
                if inst.state == "PAUSED":
                    self._set(c, t, inst, "RUNNING")

        if immediate:
            apply(c.generation)
        else:
            self._schedule(self.transition_delay, apply, c.generation)

    def _stop(self, c):
        c.target = "STOPPED"
        # Even a FAILED connector goes STOPPED; its tasks disappear (§4, §6).
        self._set(c, None, c.connector, "STOPPED")
        c.tasks = {}
        c.n_task_configs = 0

    def _kip745(self, c, include_tasks, only_failed):
        """Queues a KIP-745 request and returns the 202 body (§5.3)."""
        body = self._status_json(c, sort_tasks=False)
        if (not only_failed) or c.connector.state == "FAILED":
            body["connector"]["state"] = "RESTARTING"  # keeps old worker_id and trace
        for entry in body["tasks"]:
            if include_tasks and ((not only_failed) or entry["state"] == "FAILED"):
                entry["state"] = "RESTARTING"
        # Not sorted by id in the real reply (§5.3): make that visible.
        body["tasks"].reverse()
        pending = c.pending
        if pending is None:
            c.pending = (include_tasks, only_failed)
            self._schedule(self.restart_process_delay, self._process_restart, c, c.generation)
        elif _impact(include_tasks, only_failed) > _impact(*pending):
            c.pending = (include_tasks, only_failed)  # merged: the larger impact wins
        return body

    def _process_restart(self, c, gen):
        """The owning workers execute the request: the selection rule is applied
        again against the status now (§5.2)."""
        if self._connectors.get(c.name) is not c or c.generation != gen or c.pending is None:
            return
        include_tasks, only_failed = c.pending
        c.pending = None
        selected = []
        if (not only_failed) or c.connector.state == "FAILED":
            selected.append((None, c.connector))
        if include_tasks:
            for t, inst in sorted(c.tasks.items()):
                if (not only_failed) or inst.state == "FAILED":
                    selected.append((t, inst))
        if not selected:
            return
        done = []
        for t, inst in selected:
            done.append((t, inst, inst.state == "FAILED", inst.trace))
            self._set(c, t, inst, "RESTARTING")  # no trace on the new record
        self._schedule(self.restarting_delay, self._finish_restart, c, gen, done)

    def _finish_restart(self, c, gen, done):
        if self._connectors.get(c.name) is not c or c.generation != gen:
            return
        failed_again = False
        for t, inst, was_failed, old_trace in done:
            if inst.state != "RESTARTING":
                continue  # something else wrote a newer record meanwhile
            if t is not None and c.tasks.get(t) is not inst:
                continue
            if was_failed and self._outcome_fails(c):
                failed_again = True
                self._set(c, t, inst, "FAILED", self._again_trace(c, old_trace))
            else:
                self._set(c, t, inst, self._run_state(c) if t is None
                          else ("PAUSED" if c.target == "PAUSED" else "RUNNING"))
        if failed_again:
            self._consume_outcome(c)

    def _finish_task_restart(self, c, gen, t, inst, was_failed, old_trace):
        if self._connectors.get(c.name) is not c or c.generation != gen:
            return
        if c.tasks.get(t) is not inst:
            return
        if was_failed and self._outcome_fails(c):
            self._set(c, t, inst, "FAILED", self._again_trace(c, old_trace))
            self._consume_outcome(c)
        else:
            self._set(c, t, inst, "PAUSED" if c.target == "PAUSED" else "RUNNING")

    # ------------------------------------------------------------ JSON shapes

    def _inst_json(self, inst):
        d = {"state": inst.state, "worker_id": inst.worker_id}
        if parse_version(self.version) >= (4, 1):
            # The plugin's version (KIP-891), seen on 4.1.1 workers; the
            # FileStream plugins report the worker's version.
            d["version"] = self.version
        if inst.trace:  # Jackson NON_EMPTY (§3.2)
            d["trace"] = inst.trace
        return d

    def _status_json(self, c, sort_tasks=True):
        tasks = []
        for t in (sorted(c.tasks) if sort_tasks else list(c.tasks)):
            d = {"id": t}
            d.update(self._inst_json(c.tasks[t]))
            tasks.append(d)
        return {"name": c.name, "connector": self._inst_json(c.connector), "tasks": tasks,
                "type": c.type}

    def _info_json(self, c):
        return {"name": c.name, "config": dict(c.config),
                "tasks": [{"connector": c.name, "task": t} for t in range(c.n_task_configs)],
                "type": c.type}

    # ------------------------------------------------------------ HTTP side

    def _record(self, worker, method, raw_path, headers, body):
        split = urlsplit(raw_path)
        path = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        hdrs = {k.lower(): v for k, v in headers.items()}
        rec = Request(worker.index, worker.port, method, raw_path, path, query, hdrs, body,
                      time.monotonic())
        with self._lock:
            self._requests.append(rec)
        return rec

    def _delay_for(self, rec):
        with self._lock:
            total = 0.0
            for d in self._delays:
                seconds, rx, remaining = d
                if rx is not None and not rx.search(rec.path):
                    continue
                if remaining is not None:
                    if remaining <= 0:
                        continue
                    d[2] = remaining - 1
                total = max(total, seconds)
            self._delays = [d for d in self._delays if d[2] is None or d[2] > 0]
            return total

    @staticmethod
    def _json(status, obj, extra=None):
        return status, "application/json", json.dumps(obj).encode(), dict(extra or {})

    def _error(self, e):
        status, ctype, payload, extra = self._json(
            e.status, {"error_code": e.status, "message": e.message})
        extra = dict(extra)
        extra.update(e.headers)
        return status, ctype, payload, extra

    def _check_auth(self, rec, segs):
        if self._auth is None:
            return None
        # Exempt: the internal task-config POST and the fence PUT (§8).
        if len(segs) == 3 and segs[0] == "connectors" and (
                (rec.method == "POST" and segs[2] == "tasks")
                or (rec.method == "PUT" and segs[2] == "fence")):
            return None
        h = rec.headers.get("authorization", "")
        ok = False
        if h.startswith("Basic "):
            try:
                raw = base64.b64decode(h[6:].strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                # Not caught by the auth filter's handler: surfaces as a 500 (§13).
                return self._json(500, {"error_code": 500, "message": "Illegal base64 character"})
            user, sep, pw = raw.partition(":")
            ok = bool(sep) and (user, pw) == self._auth
        if ok:
            return None
        # Plain text, no WWW-Authenticate header (§8).
        return 401, "text/plain", b"User cannot access the resource.", {}

    def _handle(self, rec, worker):
        segs = [unquote(s) for s in urlsplit(rec.raw_path).path.split("/")[1:]]
        while segs and segs[-1] == "":
            segs.pop()
        with self._lock:
            denied = self._check_auth(rec, segs)
            if denied:
                return denied
            version = parse_version(self.version)
        try:
            return self._route(rec, segs, version)
        except HttpError as e:
            return self._error(e)

    def _route(self, rec, segs, version):
        m = rec.method
        n = len(segs)

        def allow(*methods):
            if m not in methods:
                raise HttpError(405)

        if n == 0:
            allow("GET")
            with self._lock:
                return self._json(200, {"version": self.version, "commit": self.commit,
                                        "kafka_cluster_id": self.kafka_cluster_id})
        if segs[0] == "health" and n == 1 and version >= (3, 9):
            allow("GET")
            return self._json(200, {"status": "healthy", "message": "Worker has completed "
                                    "startup and is ready to handle requests."})
        if segs[0] == "admin" and n == 2 and segs[1] == "loggers" and version >= (2, 4):
            allow("GET")
            lv = {"level": "INFO"}
            if version >= (3, 7):
                lv["last_modified"] = None
            return self._json(200, {"root": dict(lv), "org.apache.kafka.connect": dict(lv)})
        if segs[0] != "connectors":
            raise HttpError(404)
        if n == 1:
            allow("GET", "POST")
            if m == "POST":
                return self._create(rec)
            return self._list(rec, version)
        name = segs[1]
        if n == 2:
            allow("GET", "DELETE")
            with self._lock:
                c = self._need(name)
                if m == "DELETE":
                    c.generation += 1
                    del self._connectors[name]
                    return 204, None, b"", {}
                return self._json(200, self._info_json(c))
        sub = segs[2]
        if n == 3:
            if sub == "config":
                allow(*(("GET", "PUT", "PATCH") if version >= (3, 8) else ("GET", "PUT")))
                if m != "GET":
                    raise HttpError(501, "not modelled by the fake")
                with self._lock:
                    return self._json(200, dict(self._need(name).config))
            if sub == "status":
                allow("GET")
                with self._lock:
                    c = self._connectors.get(name)
                    if c is None or c.status_hidden:
                        raise HttpError(404, "No status found for connector %s" % name)
                    return self._json(200, self._status_json(c))
            if sub == "restart":
                allow("POST")
                return self._restart(rec, name, version)
            if sub in ("pause", "resume"):
                allow("PUT")
                with self._lock:
                    c = self._need(name)
                    (self._pause if sub == "pause" else self._resume)(c, False)
                    return 202, None, b"", {}
            if sub == "stop" and version >= (3, 5):
                allow("PUT")
                with self._lock:
                    c = self._need(name)
                    self._stop(c)
                    return 204, None, b"", {}
            if sub == "topics" and version >= (2, 5):
                allow("GET")
                with self._lock:
                    c = self._connectors.get(name)  # no existence check (§2)
                    topics = [] if c is None else [
                        t for t in c.config.get("topics", "").split(",") if t]
                    return self._json(200, {name: {"topics": topics}})
            if sub == "tasks":
                allow("GET", "POST")
                if m == "POST":
                    raise HttpError(501, "not modelled by the fake")
                with self._lock:
                    c = self._need(name)
                    return self._json(200, [
                        {"id": {"connector": name, "task": t},
                         "config": {"task.class": c.config["connector.class"] + "Task"}}
                        for t in range(c.n_task_configs)])
            raise HttpError(404)
        if sub == "tasks" and n == 5 and segs[4] in ("status", "restart"):
            try:
                task = int(segs[3])
            except ValueError:
                raise HttpError(404)  # non-integer task id: generic 404 (§2)
            if segs[4] == "status":
                allow("GET")
                with self._lock:
                    c = self._need(name)
                    inst = c.tasks.get(task)
                    if inst is None or c.status_hidden:
                        raise HttpError(404, "No status found for task %s-%d" % (name, task))
                    d = {"id": task}
                    d.update(self._inst_json(inst))
                    return self._json(200, d)
            allow("POST")
            return self._task_restart(rec, name, task)
        raise HttpError(404)

    def _need(self, name, message="Connector %s not found"):
        c = self._connectors.get(name)
        if c is None:
            raise HttpError(404, message % name)
        return c

    def _create(self, rec):
        try:
            req = json.loads(rec.body or b"null")
            name = req["name"]
            cfg = dict(req.get("config") or {})
        except (ValueError, KeyError, TypeError, AttributeError):
            raise HttpError(400, "Invalid request body")
        with self._lock:
            if name in self._connectors:
                raise HttpError(409, "Connector %s already exists" % name)
        tasks = int(cfg.get("tasks.max", "1"))
        ctype = "sink" if "topics" in cfg or "topics.regex" in cfg else "source"
        self.add_connector(name, type=ctype, tasks=tasks, config=cfg)
        with self._lock:
            info = self._info_json(self._connectors[name])
            # The worker answers before the connector generated its task
            # configs: a real 201 lists no tasks (docs/connect-rest.md §14).
            info["tasks"] = []
            return self._json(201, info)

    def _list(self, rec, version):
        with self._lock:
            if "expand" in rec.query and version >= (2, 3):
                values = rec.query["expand"]  # repeated parameter; "a,b" is one value
                want_status = "status" in values
                want_info = "info" in values
                out = {}
                for n, c in self._connectors.items():
                    if want_status and c.status_hidden:
                        continue  # silently left out (§3.5)
                    entry = {}
                    if want_status:
                        entry["status"] = self._status_json(c)
                    if want_info:
                        entry["info"] = self._info_json(c)
                    out[n] = entry
            else:
                out = list(self._connectors)
            status, ctype, payload, extra = self._json(200, out)
            if self._poll_faults:
                kind = self._poll_faults.pop(0)
                self.poll_faults_served += 1
                rec.fault = kind
                if kind == "malformed":
                    payload = b"{not json"
                elif kind == "truncated":
                    payload = payload[: max(1, len(payload) // 2)]
                else:
                    extra["cut"] = True
            return status, ctype, payload, extra

    def _take_fault(self):
        if self._restart_faults:
            return self._restart_faults.pop(0)
        return None

    def _restart(self, rec, name, version):
        def flag(key):
            # JAX-RS Boolean: only "true" in any case is true (§5.1).
            v = rec.query.get(key)
            return bool(v) and v[0].lower() == "true"

        with self._lock:
            fault = self._take_fault()
            if fault:
                rec.fault = "restart-%d" % fault[0]
                raise HttpError(fault[0], fault[1], headers=fault[2])
            c = self._need(name, "Unknown connector: %s")
            include_tasks, only_failed = flag("includeTasks"), flag("onlyFailed")
            if version >= (3, 0) and (include_tasks or only_failed):
                return self._json(202, self._kip745(c, include_tasks, only_failed))
            # Legacy path (and every pre-3.0 worker whatever the parameters):
            # the Connector instance only, whatever its state (§5.1, §5.5).
            gen = c.generation
            was_failed = c.connector.state == "FAILED"
            old_trace = c.connector.trace
            self._set(c, None, c.connector, "UNASSIGNED")
        self._stopping.wait(self.legacy_restart_delay)
        with self._lock:
            if self._connectors.get(name) is not c or c.generation != gen:
                raise HttpError(404, "Unknown connector: %s" % name)
            if was_failed and self._outcome_fails(c):
                trace = self._again_trace(c, old_trace)
                self._set(c, None, c.connector, "FAILED", trace)
                self._consume_outcome(c)
                raise HttpError(500, "Failed to start connector %s: %s"
                                % (name, trace.partition("\n")[0]))
            self._set(c, None, c.connector, self._run_state(c))
            return 204, None, b"", {}

    def _task_restart(self, rec, name, task):
        with self._lock:
            fault = self._take_fault()
            if fault:
                rec.fault = "restart-%d" % fault[0]
                raise HttpError(fault[0], fault[1], headers=fault[2])
            c = self._need(name)
            # Task ids are task configs, not status records (§5.1).
            if task < 0 or task >= c.n_task_configs:
                raise HttpError(404, "Unknown task: %s-%d" % (name, task))
            inst = c.tasks.get(task)
            if inst is None:
                inst = c.tasks[task] = _Instance(self._owner(), "UNASSIGNED")
            was_failed = inst.state == "FAILED"
            old_trace = inst.trace
            if not was_failed:
                # A running task is stopped first; a FAILED one keeps its stale
                # record until the new instance writes (§5.4).
                self._set(c, task, inst, "UNASSIGNED")
            self._schedule(self.restart_process_delay, self._finish_task_restart, c,
                           c.generation, task, inst, was_failed, old_trace)
            return 204, None, b"", {}


# ---------------------------------------------------------------- control port

CONTROL_METHODS = (
    "add_connector", "remove_connector", "connectors", "fail_task", "fail_connector",
    "set_task_state", "set_connector_state", "hide_status", "pause", "resume", "stop_connector",
    "set_restart_outcome", "inject_restart_faults", "inject_poll_faults", "set_response_delay",
    "set_basic_auth", "set_version", "worker_down", "worker_up", "status", "clear_requests",
    "snapshot",
)


def make_control_server(cluster, host="127.0.0.1", port=0):
    class Control(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def _send(self, status, obj):
            body = json.dumps(obj, indent=1).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            split = urlsplit(self.path)
            q = parse_qs(split.query)
            if split.path == "/requests":
                reqs = cluster.requests(method=q.get("method", [None])[0],
                                        path_re=q.get("path", [None])[0])
                self._send(200, [r.to_dict() for r in reqs])
            elif split.path in ("/state", "/"):
                self._send(200, cluster.snapshot())
            elif split.path == "/restarts":
                self._send(200, [r.to_dict() for r in cluster.restarts()])
            else:
                self._send(404, {"error": "unknown control path"})

        def do_POST(self):
            method = urlsplit(self.path).path.strip("/")
            length = int(self.headers.get("Content-Length") or 0)
            try:
                kwargs = json.loads(self.rfile.read(length) or b"{}")
                if method not in CONTROL_METHODS or not isinstance(kwargs, dict):
                    self._send(404, {"error": "unknown control method %r" % method})
                    return
                result = getattr(cluster, method)(**kwargs)
                self._send(200, {"result": result})
            except Exception as e:
                self._send(400, {"error": repr(e)})

    srv = _Server((host, port), Control)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    return srv


def _demo_connectors(cluster):
    cluster.add_connector("orders-sink", type="sink", tasks=2)
    cluster.add_connector("users-source", type="source", tasks=1)
    cluster.add_connector("audit-sink", type="sink", tasks=1, paused=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fake Kafka Connect cluster (connect-rest.md)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--version", default="3.8.0")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--ports", default="", help="comma list of worker ports (default: free)")
    ap.add_argument("--control-port", type=int, default=0)
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--demo", action="store_true", help="add a few demo connectors")
    ap.add_argument("--restart-process-delay", type=float, default=1.0)
    ap.add_argument("--restarting-delay", type=float, default=1.0)
    args = ap.parse_args(argv)
    ports = [int(p) for p in args.ports.split(",") if p]
    cluster = FakeConnectCluster(
        workers=args.workers, version=args.version, host=args.host, ports=ports,
        restart_process_delay=args.restart_process_delay, restarting_delay=args.restarting_delay,
        basic_auth=(args.user, args.password or "") if args.user else None)
    cluster.start()
    if args.demo:
        _demo_connectors(cluster)
    control = make_control_server(cluster, args.host, args.control_port)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    signal.signal(signal.SIGINT, lambda *a: done.set())
    print(json.dumps({"workers": cluster.urls,
                      "control": "http://%s:%d" % (args.host, control.server_address[1])}),
          flush=True)
    while not done.wait(0.5):
        pass
    control.shutdown()
    control.server_close()
    cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
