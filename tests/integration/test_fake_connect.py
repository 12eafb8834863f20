#!/usr/bin/env python3
"""The fake Connect cluster itself against docs/connect-rest.md (no kcwatch needed)."""

import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import FakeConnectCluster  # noqa: E402

FAKES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fakes")
TIMEOUT = harness.DEFAULT_TIMEOUT


def call(url, method, path, headers=None, body=None, conn=None):
    """(status, headers dict lower-case, body bytes) for one request."""
    host, port = url.replace("http://", "").split(":")
    c = conn or http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        data = json.dumps(body).encode() if body is not None else None
        h = dict(headers or {})
        if data is not None:
            h["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        raw = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, raw
    finally:
        if conn is None:
            c.close()


def get_json(url, path, **kw):
    st, hd, raw = call(url, "GET", path, **kw)
    return st, json.loads(raw) if raw else None


def wait_for(pred, what, timeout=TIMEOUT):
    return harness.wait_until(pred, timeout, what)


def eq(a, b, msg=""):
    if a != b:
        raise AssertionError("%s: %r != %r" % (msg or "mismatch", a, b))


def ok(cond, msg):
    if not cond:
        raise AssertionError(msg)


def assert_error_body(status, hdrs, raw, code):
    eq(status, code, "status")
    ok(hdrs.get("content-type", "").startswith("application/json"), "error is JSON")
    body = json.loads(raw)
    eq(sorted(body), ["error_code", "message"], "error body keys (§7.1)")
    eq(body["error_code"], code, "error_code")
    ok(isinstance(body["message"], str), "message is a string")


class Cluster:
    def __init__(self, **kw):
        self.c = FakeConnectCluster(**kw)

    def __enter__(self):
        return self.c.start()

    def __exit__(self, *exc):
        self.c.stop()
        if not exc[0]:
            eq(self.c.errors, [], "fake internal errors")


# -------------------------------------------------------------------- shapes

def test_server_info():
    with Cluster(workers=2, version="3.7.1") as c:
        for url in c.urls:
            st, body = get_json(url, "/")
            eq(st, 200)
            eq(sorted(body), ["commit", "kafka_cluster_id", "version"], "ServerInfo keys")
            eq(body["version"], "3.7.1")
        eq(c.worker_id(0), "127.0.0.1:%d" % c.ports[0])
        ok(c.ports[0] != c.ports[1], "each worker has its own port")


def test_status_shape_and_worker_ids():
    with Cluster(workers=2) as c:
        c.add_connector("orders-sink", type="sink", tasks=3)
        c.fail_task("orders-sink", 1, "java.lang.RuntimeException: boom\n\tat X.y(X.java:1)")
        for url in c.urls:  # every worker answers from the shared state
            st, s = get_json(url, "/connectors/orders-sink/status")
            eq(st, 200)
            eq(list(s), ["name", "connector", "tasks", "type"], "status keys")
            eq(s["type"], "sink")
            eq(s["connector"], {"state": "RUNNING", "worker_id": c.worker_id(0)})
            eq([t["id"] for t in s["tasks"]], [0, 1, 2], "tasks sorted by id (§3.2)")
            workers = {c.worker_id(0), c.worker_id(1)}
            for t in s["tasks"]:
                ok(t["worker_id"] in workers, "worker_id is host:port of a worker")
            eq(s["tasks"][1]["state"], "FAILED")
            ok(s["tasks"][1]["trace"].startswith("java.lang.RuntimeException: boom"), "trace")
            ok("trace" not in s["tasks"][0], "no trace on RUNNING (NON_EMPTY)")
            ok("trace" not in s["connector"], "no trace on RUNNING connector")
        st, t = get_json(c.urls[0], "/connectors/orders-sink/tasks/1/status")
        eq(st, 200)
        eq(sorted(t), ["id", "state", "trace", "worker_id"])
        eq(t["id"], 1)
        st, info = get_json(c.urls[1], "/connectors/orders-sink")
        eq(st, 200)
        eq(sorted(info), ["config", "name", "tasks", "type"])
        eq(info["tasks"], [{"connector": "orders-sink", "task": i} for i in range(3)])
        ok(all(isinstance(v, str) for v in info["config"].values()), "config values strings")
        eq(info["config"]["tasks.max"], "3")
        st, cfg = get_json(c.urls[0], "/connectors/orders-sink/config")
        eq(cfg, info["config"], "GET /config is the config map")
        st, tasks = get_json(c.urls[0], "/connectors/orders-sink/tasks")
        eq([t["id"] for t in tasks], [{"connector": "orders-sink", "task": i} for i in range(3)])
        # Percent-encoded names are decoded (§1).
        st, s = get_json(c.urls[0], "/connectors/orders%2Dsink/status")
        eq(st, 200)
        eq(s["name"], "orders-sink")


def test_errors_404_405():
    with Cluster() as c:
        c.add_connector("a", tasks=1)
        assert_error_body(*call(c.urls[0], "GET", "/connectors/nope/status"), 404)
        assert_error_body(*call(c.urls[0], "GET", "/connectors/nope"), 404)
        assert_error_body(*call(c.urls[0], "POST", "/connectors/nope/restart"), 404)
        assert_error_body(*call(c.urls[0], "POST", "/connectors/nope/tasks/0/restart"), 404)
        assert_error_body(*call(c.urls[0], "PUT", "/connectors/nope/pause"), 404)
        assert_error_body(*call(c.urls[0], "GET", "/connectors/a/tasks/7/status"), 404)
        assert_error_body(*call(c.urls[0], "GET", "/connectors/a/tasks/x/status"), 404)
        assert_error_body(*call(c.urls[0], "POST", "/connectors/a/tasks/x/restart"), 404)
        assert_error_body(*call(c.urls[0], "POST", "/connectors/a/tasks/5/restart"), 404)
        assert_error_body(*call(c.urls[0], "GET", "/no/such/path"), 404)
        assert_error_body(*call(c.urls[0], "GET", "/connectors/a/restart"), 405)
        assert_error_body(*call(c.urls[0], "POST", "/connectors/a/status"), 405)
        assert_error_body(*call(c.urls[0], "PUT", "/"), 405)
        st, _, raw = call(c.urls[0], "GET", "/no/such/path")
        eq(json.loads(raw)["message"], "HTTP 404 Not Found", "generic JAX-RS 404 text")


# -------------------------------------------------------------------- expand

def test_expand_forms():
    with Cluster(version="3.8.0") as c:
        c.add_connector("a", tasks=1)
        c.add_connector("b", type="source", tasks=2)
        st, body = get_json(c.urls[0], "/connectors")
        eq(st, 200)
        eq(sorted(body), ["a", "b"], "plain list")
        st, body = get_json(c.urls[0], "/connectors?expand=status")
        eq(sorted(body), ["a", "b"])
        eq(list(body["a"]), ["status"])
        eq(body["b"]["status"]["type"], "source")
        st, body = get_json(c.urls[0], "/connectors?expand=info")
        eq(list(body["a"]), ["info"])
        eq(body["b"]["info"]["tasks"][1], {"connector": "b", "task": 1})
        st, body = get_json(c.urls[0], "/connectors?expand=status&expand=info")
        eq(sorted(body["a"]), ["info", "status"], "repeated parameter (§3.5)")
        st, body = get_json(c.urls[0], "/connectors?expand=status,info")
        eq(body, {"a": {}, "b": {}}, "'status,info' is one unknown value")
        st, body = get_json(c.urls[0], "/connectors?expand=bogus")
        eq(body, {"a": {}, "b": {}}, "unknown value ignored, object form")
        st, body = get_json(c.urls[0], "/connectors?expand=")
        eq(body, {"a": {}, "b": {}}, "any expand switches to the object form")
        c.hide_status("b")
        st, body = get_json(c.urls[0], "/connectors?expand=status&expand=info")
        eq(sorted(body), ["a"], "no status record: silently left out")
        st, body = get_json(c.urls[0], "/connectors?expand=info")
        eq(sorted(body), ["a", "b"], "info-only still lists it")
        assert_error_body(*call(c.urls[0], "GET", "/connectors/b/status"), 404)
        st, body = get_json(c.urls[0], "/connectors")
        eq(sorted(body), ["a", "b"])


def test_pre_2_3_array():
    with Cluster(version="2.2.0") as c:
        c.add_connector("a", tasks=1)
        st, body = get_json(c.urls[0], "/connectors?expand=status&expand=info")
        eq(st, 200)
        eq(body, ["a"], "before 2.3 expand is ignored: array")
        st, s = get_json(c.urls[0], "/connectors/a/status")
        eq(s["connector"]["state"], "RUNNING")
        assert_error_body(*call(c.urls[0], "GET", "/connectors/a/topics"), 404)
        assert_error_body(*call(c.urls[0], "GET", "/admin/loggers"), 404)


def test_version_gated_endpoints():
    with Cluster(version="3.4.1") as c:
        c.add_connector("a", tasks=1)
        assert_error_body(*call(c.urls[0], "PUT", "/connectors/a/stop"), 404)
        assert_error_body(*call(c.urls[0], "GET", "/health"), 404)
        st, body = get_json(c.urls[0], "/connectors/a/topics")
        eq(body, {"a": {"topics": ["a-topic"]}})
        st, body = get_json(c.urls[0], "/connectors/zzz/topics")
        eq((st, body), (200, {"zzz": {"topics": []}}), "no existence check on /topics")
        st, body = get_json(c.urls[0], "/admin/loggers")
        eq(body["root"], {"level": "INFO"}, "before 3.7 no last_modified")
    with Cluster(version="3.9.0") as c:
        st, body = get_json(c.urls[0], "/health")
        eq(st, 200)
        eq(body["status"], "healthy")
        st, body = get_json(c.urls[0], "/admin/loggers")
        ok("last_modified" in body["root"], "3.7+ logger last_modified")


# -------------------------------------------------------------------- KIP-745

def test_kip745_202_body_and_transitions():
    with Cluster(workers=2, restart_process_delay=0.3, restarting_delay=0.3) as c:
        c.add_connector("s", tasks=3)
        c.fail_task("s", 1, "T1: one\n\tat a")
        c.fail_task("s", 2, "T2: two\n\tat b")
        before = c.status("s")
        st, hd, raw = call(c.urls[1], "POST", "/connectors/s/restart?includeTasks=true&onlyFailed=true")
        eq(st, 202)
        body = json.loads(raw)
        eq(list(body), ["name", "connector", "tasks", "type"])
        ids = [t["id"] for t in body["tasks"]]
        eq(sorted(ids), [0, 1, 2])
        ok(ids != sorted(ids), "202 task list is not sorted (§5.3): %r" % ids)
        by = {t["id"]: t for t in body["tasks"]}
        eq(body["connector"]["state"], "RUNNING", "connector not FAILED: not selected")
        eq(by[0], before["tasks"][0], "unselected task shows its current state")
        for i, tr in ((1, "T1: one\n\tat a"), (2, "T2: two\n\tat b")):
            eq(by[i]["state"], "RESTARTING")
            eq(by[i]["trace"], tr, "RESTARTING entry keeps the old trace")
            eq(by[i]["worker_id"], before["tasks"][i]["worker_id"], "keeps old worker_id")
        # Unchanged (still FAILED) until the worker processes the request (§5.4).
        s = c.status("s")
        eq([t["state"] for t in s["tasks"]], ["RUNNING", "FAILED", "FAILED"])
        eq(s["tasks"][1]["trace"], "T1: one\n\tat a")

        def seen_restarting():
            st, s = get_json(c.urls[0], "/connectors/s/status")
            t = s["tasks"][1]
            return t["state"] == "RESTARTING" and t
        t = wait_for(seen_restarting, "RESTARTING via GET")
        ok("trace" not in t, "RESTARTING record has no trace")
        wait_for(lambda: [t["state"] for t in c.status("s")["tasks"]] ==
                 ["RUNNING", "RUNNING", "RUNNING"], "tasks RUNNING")
        eq(c.states("s", 1), ["RUNNING", "FAILED", "RESTARTING", "RUNNING"], "task 1 history")
        eq(c.states("s", 0), ["RUNNING"], "task 0 untouched")
        eq(c.states("s", None), ["RUNNING"], "connector untouched")
        ok("trace" not in c.status("s")["tasks"][1], "trace gone after recovery")


def test_kip745_selection_rule():
    with Cluster(restart_process_delay=0.05, restarting_delay=0.05) as c:
        c.add_connector("s", tasks=2)
        c.fail_task("s", 0)
        # includeTasks only: connector and every task.
        st, _, raw = call(c.urls[0], "POST", "/connectors/s/restart?includeTasks=TRUE")
        eq(st, 202, "'TRUE' is true")
        b = json.loads(raw)
        eq(b["connector"]["state"], "RESTARTING")
        eq({t["state"] for t in b["tasks"]}, {"RESTARTING"})
        wait_for(lambda: c.states("s", 1)[-1] == "RUNNING" and len(c.states("s", 1)) == 3,
                 "running task restarted too")
        eq(c.states("s", None), ["RUNNING", "RESTARTING", "RUNNING"])
        # onlyFailed only, connector healthy: nothing selected, tasks never.
        c.fail_task("s", 1)
        st, _, raw = call(c.urls[0], "POST", "/connectors/s/restart?onlyFailed=true")
        eq(st, 202)
        b = json.loads(raw)
        eq(b["connector"]["state"], "RUNNING")
        eq(sorted((t["id"], t["state"]) for t in b["tasks"]), [(0, "RUNNING"), (1, "FAILED")])
        # FAILED connector, onlyFailed only: connector alone.
        c.fail_connector("s", "C: bad\n\tat c")
        st, _, raw = call(c.urls[0], "POST", "/connectors/s/restart?onlyFailed=true")
        b = json.loads(raw)
        eq(b["connector"], {"state": "RESTARTING", "worker_id": c.worker_id(0),
                            "trace": "C: bad\n\tat c"})
        eq(sorted((t["id"], t["state"]) for t in b["tasks"]), [(0, "RUNNING"), (1, "FAILED")])
        wait_for(lambda: c.connector_state("s") == "RUNNING", "connector RUNNING")
        eq(c.task_state("s", 1), "FAILED", "task left alone")
        # "yes" is not true: both false -> legacy 204.
        st, _, raw = call(c.urls[0], "POST", "/connectors/s/restart?includeTasks=yes&onlyFailed=1")
        eq((st, raw), (204, b""), "unparsable booleans read as false (§13)")


def test_kip745_merge_pending():
    with Cluster(restart_process_delay=0.3, restarting_delay=0.05) as c:
        c.add_connector("s", tasks=2)
        c.fail_task("s", 0)
        eq(call(c.urls[0], "POST", "/connectors/s/restart?onlyFailed=true")[0], 202)
        eq(call(c.urls[0], "POST", "/connectors/s/restart?includeTasks=true")[0], 202)
        wait_for(lambda: all(len(c.states("s", t)) >= 3 for t in (None, 0, 1)), "processed")
        # Merged into the larger impact (everything): all three restarted once.
        eq(c.states("s", None), ["RUNNING", "RESTARTING", "RUNNING"])
        eq(c.states("s", 0), ["RUNNING", "FAILED", "RESTARTING", "RUNNING"])
        eq(c.states("s", 1), ["RUNNING", "RESTARTING", "RUNNING"])


def test_restart_outcome_fail_again():
    with Cluster(restart_process_delay=0.05, restarting_delay=0.05) as c:
        c.add_connector("s", tasks=1)
        c.fail_task("s", 0, "E: first\n\tat x")
        c.set_restart_outcome("s", "fail_again", trace="new", times=2)
        traces = []
        for attempt in range(2):
            n = len(c.history("s", 0))
            eq(call(c.urls[0], "POST", "/connectors/s/restart?includeTasks=true&onlyFailed=true")[0], 202)
            wait_for(lambda: len(c.history("s", 0)) >= n + 2, "restart %d processed" % attempt)
            h = c.history("s", 0)
            eq([x["state"] for x in h[n:]], ["RESTARTING", "FAILED"])
            traces.append(h[-1]["trace"])
        ok(traces[0] != traces[1] and traces[0] != "E: first\n\tat x", "new traces each time")
        ok(traces[0].startswith("E: first"), "same exception class")
        eq(call(c.urls[0], "POST", "/connectors/s/restart?includeTasks=true&onlyFailed=true")[0], 202)
        wait_for(lambda: c.task_state("s", 0) == "RUNNING", "recovers after times=2")
        # Same trace variant.
        c.fail_task("s", 0, "E: same\n\tat y")
        c.set_restart_outcome("s", "fail_again")
        n = len(c.history("s", 0))
        call(c.urls[0], "POST", "/connectors/s/restart?includeTasks=true&onlyFailed=true")
        wait_for(lambda: len(c.history("s", 0)) >= n + 2, "processed")
        eq(c.history("s", 0)[-1]["trace"], "E: same\n\tat y")
        eq(c.history("s", 0)[-1]["state"], "FAILED")


# -------------------------------------------------------------------- legacy

def test_legacy_connector_restart_204():
    with Cluster(version="3.8.0", legacy_restart_delay=0.05) as c:
        c.add_connector("s", tasks=1)
        c.fail_task("s", 0)
        st, hd, raw = call(c.urls[0], "POST", "/connectors/s/restart")
        eq((st, raw), (204, b""), "legacy restart: 204 no body")
        eq(c.states("s", None), ["RUNNING", "UNASSIGNED", "RUNNING"],
           "UNASSIGNED then RUNNING by the time the 204 is sent")
        eq(c.task_state("s", 0), "FAILED", "tasks untouched")
        # A FAILED connector whose start() throws: 500 and FAILED (§5.1).
        c.fail_connector("s")
        c.set_restart_outcome("s", "fail_again")
        assert_error_body(*call(c.urls[0], "POST", "/connectors/s/restart"), 500)
        eq(c.connector_state("s"), "FAILED")


def test_pre_3_0_ignores_kip745_params():
    with Cluster(version="2.8.1", legacy_restart_delay=0.05) as c:
        c.add_connector("s", tasks=2)
        c.fail_task("s", 1)
        st, _, raw = call(c.urls[0], "POST", "/connectors/s/restart?includeTasks=true&onlyFailed=true")
        eq((st, raw), (204, b""), "pre-3.0: parameters ignored, 204")
        eq(c.states("s", None), ["RUNNING", "UNASSIGNED", "RUNNING"],
           "healthy connector bounced anyway (§5.5)")
        eq(c.task_state("s", 1), "FAILED", "failed task untouched")
        ok("RESTARTING" not in [h["state"] for h in c.history()], "no RESTARTING before 3.0")


def test_legacy_task_restart():
    with Cluster(version="2.8.1", restart_process_delay=0.3) as c:
        c.add_connector("s", tasks=2)
        c.fail_task("s", 0, "E: x\n\tat y")
        st, _, raw = call(c.urls[0], "POST", "/connectors/s/tasks/0/restart")
        eq((st, raw), (204, b""))
        st, t = get_json(c.urls[0], "/connectors/s/tasks/0/status")
        eq(t["state"], "FAILED", "stale FAILED right after the 204 (§5.4)")
        eq(t["trace"], "E: x\n\tat y")
        wait_for(lambda: c.task_state("s", 0) == "RUNNING", "task RUNNING")
        eq(c.states("s", 0), ["RUNNING", "FAILED", "RUNNING"], "RESTARTING never appears")
        # A RUNNING task: UNASSIGNED -> RUNNING.
        eq(call(c.urls[0], "POST", "/connectors/s/tasks/1/restart")[0], 204)
        eq(c.task_state("s", 1), "UNASSIGNED")
        wait_for(lambda: c.task_state("s", 1) == "RUNNING", "task 1 RUNNING")
        eq(c.states("s", 1), ["RUNNING", "UNASSIGNED", "RUNNING"])
        # fail_again: 204 anyway, FAILED again later.
        c.fail_task("s", 0)
        c.set_restart_outcome("s", "fail_again", trace="new")
        eq(call(c.urls[0], "POST", "/connectors/s/tasks/0/restart")[0], 204)
        wait_for(lambda: len(c.states("s", 0)) == 5, "failed again")
        eq(c.states("s", 0)[-1], "FAILED")


# -------------------------------------------------------------------- paused / stopped

def test_paused_connector():
    with Cluster(restart_process_delay=0.05, restarting_delay=0.05, transition_delay=0.05) as c:
        c.add_connector("p", tasks=2, paused=True)
        s = c.status("p")
        eq((s["connector"]["state"], [t["state"] for t in s["tasks"]]),
           ("PAUSED", ["PAUSED", "PAUSED"]))
        c.fail_task("p", 1)
        # resume/pause leave the FAILED task alone (§4).
        st, hd, raw = call(c.urls[0], "PUT", "/connectors/p/resume")
        eq((st, raw), (202, b""))
        wait_for(lambda: c.connector_state("p") == "RUNNING", "resumed")
        wait_for(lambda: c.task_state("p", 0) == "RUNNING", "task 0 resumed")
        eq(c.task_state("p", 1), "FAILED")
        eq(call(c.urls[0], "PUT", "/connectors/p/pause")[0], 202)
        eq(call(c.urls[0], "PUT", "/connectors/p/pause")[0], 202, "pause is idempotent")
        wait_for(lambda: c.task_state("p", 0) == "PAUSED", "paused")
        eq(c.task_state("p", 1), "FAILED", "FAILED task stays FAILED under PAUSED")
        # Restart brings it back PAUSED (§5.2).
        eq(call(c.urls[0], "POST", "/connectors/p/restart?includeTasks=true&onlyFailed=true")[0], 202)
        wait_for(lambda: c.task_state("p", 1) == "PAUSED", "restarted task back to PAUSED")
        eq(c.states("p", 1)[-3:], ["FAILED", "RESTARTING", "PAUSED"])
        # A FAILED connector refuses to pause.
        c.resume("p")
        c.fail_connector("p")
        c.pause("p")
        eq(c.connector_state("p"), "FAILED")
        eq(c.task_state("p", 0), "PAUSED")


def test_stopped_connector():
    with Cluster(version="3.8.0", restart_process_delay=0.05, restarting_delay=0.05,
                 transition_delay=0.05) as c:
        c.add_connector("s", tasks=2)
        c.fail_connector("s")
        st, _, raw = call(c.urls[0], "PUT", "/connectors/s/stop")
        eq((st, raw), (204, b""))
        s = c.status("s")
        eq(s["connector"]["state"], "STOPPED", "STOPPED even from FAILED")
        ok("trace" not in s["connector"], "no trace")
        eq(s["tasks"], [], "STOPPED: tasks []")
        st, info = get_json(c.urls[0], "/connectors/s")
        eq(info["tasks"], [])
        st, tasks = get_json(c.urls[0], "/connectors/s/tasks")
        eq(tasks, [])
        assert_error_body(*call(c.urls[0], "POST", "/connectors/s/tasks/0/restart"), 404)
        st, _, raw = call(c.urls[0], "POST", "/connectors/s/restart?includeTasks=true")
        eq(st, 202)
        eq(json.loads(raw)["tasks"], [])
        wait_for(lambda: len(c.states("s", None)) >= 5, "restart processed")
        eq(c.states("s", None)[-2:], ["RESTARTING", "STOPPED"], "back to its target STOPPED")
        eq(call(c.urls[0], "PUT", "/connectors/s/resume")[0], 202)
        wait_for(lambda: [t["state"] for t in c.status("s")["tasks"]] == ["RUNNING", "RUNNING"],
                 "resume regenerates tasks")
        eq(c.connector_state("s"), "RUNNING")


# -------------------------------------------------------------------- faults

def test_restart_fault_injection():
    with Cluster(restart_process_delay=0.05, restarting_delay=0.05) as c:
        c.add_connector("s", tasks=1)
        c.fail_task("s", 0)
        c.inject_restart_faults(409, 2)
        path = "/connectors/s/restart?includeTasks=true&onlyFailed=true"
        assert_error_body(*call(c.urls[0], "POST", path), 409)
        assert_error_body(*call(c.urls[1 % len(c.urls)], "POST", "/connectors/s/tasks/0/restart"), 409)
        eq(c.task_state("s", 0), "FAILED", "409 restarted nothing")
        eq(call(c.urls[0], "POST", path)[0], 202)
        c.inject_restart_faults(500, 1)
        assert_error_body(*call(c.urls[0], "POST", path), 500)
        eq([r.status for r in c.restarts()], [409, 409, 202, 500])
        eq([r.fault for r in c.restarts()], ["restart-409", "restart-409", None, "restart-500"])
        eq(len(c.restarts("s")), 4)
        eq(len(c.restarts("other")), 0)


def test_poll_faults():
    with Cluster() as c:
        c.add_connector("a", tasks=1)
        good = call(c.urls[0], "GET", "/connectors?expand=status")[2]
        c.inject_poll_faults("malformed", 1)
        c.inject_poll_faults("truncated", 1)
        c.inject_poll_faults("cut", 1)
        st, hd, raw = call(c.urls[0], "GET", "/connectors?expand=status")
        eq((st, raw), (200, b"{not json"))
        st, hd, raw = call(c.urls[0], "GET", "/connectors?expand=status")
        eq(st, 200)
        ok(0 < len(raw) < len(good) and good.startswith(raw), "valid prefix of the real body")
        eq(int(hd["content-length"]), len(raw), "consistent Content-Length")
        try:
            json.loads(raw)
            raise AssertionError("truncated body parsed")
        except ValueError:
            pass
        try:
            call(c.urls[0], "GET", "/connectors?expand=status")
            raise AssertionError("cut response read completely")
        except (http.client.IncompleteRead, ConnectionError, http.client.HTTPException):
            pass
        eq(c.poll_faults_served, 3)
        eq(call(c.urls[0], "GET", "/connectors?expand=status")[2], good, "then normal again")
        eq([r.fault for r in c.requests(path="/connectors")],
           [None, "malformed", "truncated", "cut", None])


def test_response_delay():
    with Cluster() as c:
        c.set_response_delay(0.3, path="^/connectors$", count=1)
        t0 = time.monotonic()
        eq(call(c.urls[0], "GET", "/connectors")[0], 200)
        ok(time.monotonic() - t0 >= 0.29, "delayed")
        t0 = time.monotonic()
        call(c.urls[0], "GET", "/")
        call(c.urls[0], "GET", "/connectors")
        ok(time.monotonic() - t0 < 0.25, "count=1: only once")


def test_basic_auth():
    with Cluster(basic_auth=("admin", "s3cret")) as c:
        c.add_connector("a", tasks=1)
        st, hd, raw = call(c.urls[0], "GET", "/connectors")
        eq(st, 401)
        ok("www-authenticate" not in hd, "no WWW-Authenticate header (§8)")
        ok(hd.get("content-type", "").startswith("text/plain"), "plain text 401")
        try:
            json.loads(raw)
            raise AssertionError("401 body must not be the JSON error object")
        except ValueError:
            pass
        ok(len(raw) > 0, "a short sentence")
        bad = "Basic " + base64.b64encode(b"admin:wrong").decode()
        eq(call(c.urls[0], "GET", "/", headers={"Authorization": bad})[0], 401)
        good = "Basic " + base64.b64encode(b"admin:s3cret").decode()
        eq(call(c.urls[0], "GET", "/connectors", headers={"Authorization": good})[0], 200)
        eq(call(c.urls[0], "POST", "/connectors/a/restart?includeTasks=true",
                headers={"Authorization": bad})[0], 401)
        eq(c.task_state("a", 0), "RUNNING", "unauthorised restart did nothing")
        assert_error_body(*call(c.urls[0], "GET", "/", headers={"Authorization": "Basic %%%"}), 500)
        eq(c.requests()[2].headers.get("authorization"), good, "Authorization recorded")
        c.set_basic_auth(None)
        eq(call(c.urls[0], "GET", "/connectors")[0], 200)


def test_worker_down_up():
    with Cluster(workers=2) as c:
        c.add_connector("a", tasks=1)
        host, port = "127.0.0.1", c.ports[0]
        keep = http.client.HTTPConnection(host, port, timeout=5)
        eq(call(c.urls[0], "GET", "/", conn=keep)[0], 200)
        c.worker_down(0)
        ok(not c.worker_is_up(0), "down")
        try:
            socket.create_connection((host, port), timeout=2).close()
            raise AssertionError("connection to a down worker was accepted")
        except ConnectionRefusedError:
            pass
        try:
            call(c.urls[0], "GET", "/", conn=keep)
            raise AssertionError("keep-alive connection survived worker_down")
        except (ConnectionError, http.client.HTTPException, OSError):
            pass
        keep.close()
        eq(get_json(c.urls[1], "/connectors/a/status")[1]["connector"]["worker_id"],
           c.worker_id(0), "a dead worker keeps its records (§4)")
        c.worker_up(0)
        eq(call(c.urls[0], "GET", "/")[0], 200, "back up on the same port")
        eq(c.ports[0], port)


def test_request_recording():
    with Cluster(workers=2) as c:
        c.add_connector("a b", tasks=1)
        call(c.urls[1], "GET", "/connectors?expand=status&expand=info", headers={"X-T": "1"})
        call(c.urls[0], "POST", "/connectors/a%20b/restart?includeTasks=true&onlyFailed=true")
        r = c.requests(method="GET")[0]
        eq((r.worker, r.port, r.path), (1, c.ports[1], "/connectors"))
        eq(r.query, {"expand": ["status", "info"]})
        eq(r.headers.get("x-t"), "1")
        eq(r.status, 200)
        rs = c.restarts()
        eq(len(rs), 1)
        eq(rs[0].path, "/connectors/a b/restart")
        eq(rs[0].query, {"includeTasks": ["true"], "onlyFailed": ["true"]})
        eq(c.restarts("a b")[0].status, 202)
        eq(c.poll_count(), 1)
        eq(c.poll_count(worker=0), 0)


def test_create_and_delete():
    with Cluster() as c:
        st, _, raw = call(c.urls[0], "POST", "/connectors",
                          body={"name": "n", "config": {"connector.class": "X", "tasks.max": "2",
                                                        "topics": "t"}})
        eq(st, 201)
        # Like a real worker, the 201 comes before the task configs exist
        # (docs/connect-rest.md §14); GET /connectors/n lists them.
        eq(json.loads(raw)["tasks"], [])
        st, _, raw = call(c.urls[0], "GET", "/connectors/n")
        eq(json.loads(raw)["tasks"], [{"connector": "n", "task": 0}, {"connector": "n", "task": 1}])
        assert_error_body(*call(c.urls[0], "POST", "/connectors", body={"name": "n", "config": {}}), 409)
        assert_error_body(*call(c.urls[0], "POST", "/connectors", body={"x": 1}), 400)
        eq(call(c.urls[0], "DELETE", "/connectors/n")[0], 204)
        assert_error_body(*call(c.urls[0], "GET", "/connectors/n/status"), 404)


def test_cli_and_control_port():
    script = os.path.join(FAKES, "fake_connect.py")
    p = subprocess.Popen([sys.executable, script, "--workers", "2", "--version", "3.8.0",
                          "--control-port", "0", "--restart-process-delay", "0.05",
                          "--restarting-delay", "0.05"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        line = []

        def read_line():
            # readline blocks; the process prints its line at once, so one read
            # after the pipe is readable is enough.
            import select
            r, _, _ = select.select([p.stdout], [], [], 0.05)
            if r:
                line.append(p.stdout.readline())
            return line or p.poll() is not None
        wait_for(read_line, "CLI banner")
        ok(line, "CLI printed its banner (rc=%s, stderr=%r)" % (p.poll(), p.stderr.read()
                                                                 if p.poll() is not None else ""))
        info = json.loads(line[0])
        eq(len(info["workers"]), 2)
        ctl = info["control"]
        st, _, raw = call(ctl, "POST", "/add_connector", body={"name": "d", "tasks": 2})
        eq(st, 200, raw)
        eq(call(ctl, "POST", "/fail_task", body={"connector": "d", "task": 1})[0], 200)
        st, s = get_json(info["workers"][1], "/connectors/d/status")
        eq(s["tasks"][1]["state"], "FAILED")
        eq(call(info["workers"][0], "POST", "/connectors/d/restart?includeTasks=true&onlyFailed=true")[0], 202)
        wait_for(lambda: get_json(info["workers"][0], "/connectors/d/status")[1]["tasks"][1]["state"]
                 == "RUNNING", "restart via CLI fake")
        st, reqs = get_json(ctl, "/restarts")
        eq(len(reqs), 1)
        eq(call(ctl, "POST", "/worker_down", body={"index": 0})[0], 200)
        try:
            socket.create_connection(("127.0.0.1", int(info["workers"][0].rsplit(":", 1)[1])),
                                     timeout=2).close()
            raise AssertionError("worker 0 still accepting")
        except ConnectionRefusedError:
            pass
        eq(call(ctl, "POST", "/no_such_method", body={})[0], 404)
        p.send_signal(signal.SIGTERM)
        wait_for(lambda: p.poll() is not None, "CLI exit on SIGTERM")
        eq(p.returncode, 0)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)
        p.stdout.close()
        p.stderr.close()


if __name__ == "__main__":
    harness.run_tests(globals(), needs_daemon=False)
