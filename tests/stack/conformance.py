"""conformance.py: the same REST calls against the real Connect worker and
tests/fakes/fake_connect.py, compared.

What is compared, call by call (restart codes 202/204/404/409 included:
the real worker's 409 is provoked by config changes made meanwhile, the
fake's by its fault injection): the HTTP status, the JSON shape of the body
(keys and value types, recursively; lists by their first element), the
connector and task states, and error messages (with the connector name
written as NAME). Differences the fake keeps on purpose are listed in
DELIBERATE with the reason (and in docs/connect-rest.md); every other
difference is reported.

Both sides get the same two connectors through POST /connectors: conf-ok (a
healthy FileStreamSink) and conf-fail (whose task fails). The real task fails
because its output directory is missing; the fake one is failed through the
fake's API, and its restarts are scripted to fail again, as the real ones
do while the directory is missing.
"""

import json
import os
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "fakes"))

from fake_connect import FakeConnectCluster  # noqa: E402
from stack import rest, wait_until  # noqa: E402

# (call label, what) -> why the fake differs on purpose.
DELIBERATE = {
}


def shape(v):
    if isinstance(v, dict):
        return {k: shape(x) for k, x in sorted(v.items())}
    if isinstance(v, list):
        return [shape(v[0])] if v else []
    if v is None:
        return "null"
    return type(v).__name__


def states(body):
    """Connector and task states of a status body, or None."""
    if not isinstance(body, dict) or "connector" not in body:
        return None
    return {"connector": body["connector"].get("state"),
            "tasks": [t.get("state") for t in body.get("tasks", [])]}


class Side:
    def __init__(self, name, url, fail_task, meet_rebalance):
        self.name = name
        self.url = url
        self.fail_task = fail_task
        # meet_rebalance(path): (status, JSON, text) of a restart POSTed to
        # path while the worker expects a rebalance.
        self.meet_rebalance = meet_rebalance

    def call(self, method, path, body=None):
        return rest(method, self.url + path, body, timeout=30)

    def status(self, connector):
        st, body, _ = self.call("GET", "/connectors/%s/status" % connector)
        return body if st == 200 else None

    def wait(self, pred, what, timeout=60):
        return wait_until(pred, timeout, "%s: %s" % (self.name, what))

    def wait_states(self, connector, conn_state, task_states, timeout=60):
        def ok():
            s = states(self.status(connector))
            return s == {"connector": conn_state, "tasks": task_states}
        self.wait(ok, "%s to be %s %s (is %s)" % (connector, conn_state, task_states,
                                                  states(self.status(connector))), timeout)


def facts(side, sink_dir):
    """[(label, dict of observations)] of one side, in call order."""
    out = []

    def rec(label, method, path, body=None, keep=("status", "shape", "states", "message")):
        st, js, text = side.call(method, path, body)
        f = {"status": st, "shape": shape(js) if js is not None else ("text" if text else "")}
        if isinstance(js, dict):
            f["states"] = states(js)
            msg = js.get("message")
            if isinstance(msg, str):
                f["message"] = msg.replace("conf-ok", "NAME").replace("conf-fail", "NAME") \
                    .replace("nope", "NAME")
        out.append((label, {k: v for k, v in f.items() if k in keep}))
        return st, js

    ok_cfg = {"connector.class": "FileStreamSink", "tasks.max": "1", "topics": "conformance",
              "file": os.path.join(sink_dir, "ok.txt")}
    fail_cfg = dict(ok_cfg, file=os.path.join(sink_dir, "missing-dir", "fail.txt"))
    rec("create", "POST", "/connectors", {"name": "conf-ok", "config": ok_cfg})
    rec("create-2", "POST", "/connectors", {"name": "conf-fail", "config": fail_cfg})
    rec("create-existing", "POST", "/connectors", {"name": "conf-ok", "config": ok_cfg})
    rec("create-bad-body", "POST", "/connectors", {"config": ok_cfg}, keep=("status",))
    side.wait_states("conf-ok", "RUNNING", ["RUNNING"])
    side.fail_task("conf-fail")
    side.wait_states("conf-fail", "RUNNING", ["FAILED"])

    rec("root", "GET", "/", keep=("status", "shape"))
    rec("list", "GET", "/connectors", keep=("status", "shape"))
    st, js = rec("expand-status", "GET", "/connectors?expand=status", keep=("status",))
    out.append(("expand-status entry", {"shape": shape((js or {}).get("conf-ok"))}))
    st, js = rec("expand-info", "GET", "/connectors?expand=info", keep=("status",))
    out.append(("expand-info entry", {"shape": shape((js or {}).get("conf-ok"))}))
    st, js = rec("expand-both", "GET", "/connectors?expand=status&expand=info",
                 keep=("status",))
    out.append(("expand-both entry keys", {"keys": sorted((js or {}).get("conf-ok") or {})}))
    rec("info", "GET", "/connectors/conf-ok", keep=("status", "shape"))
    rec("config", "GET", "/connectors/conf-ok/config", keep=("status", "shape"))
    rec("status ok", "GET", "/connectors/conf-ok/status")
    rec("status failed", "GET", "/connectors/conf-fail/status")
    rec("status missing", "GET", "/connectors/nope/status")
    rec("info missing", "GET", "/connectors/nope")
    rec("config missing", "GET", "/connectors/nope/config")
    rec("task status", "GET", "/connectors/conf-ok/tasks/0/status")
    rec("task status missing", "GET", "/connectors/conf-ok/tasks/9/status")
    rec("unknown path", "GET", "/nope")
    rec("wrong method", "DELETE", "/connectors")

    # Restarts (KIP-745): codes, bodies and the task states they report.
    rec("restart missing", "POST", "/connectors/nope/restart")
    rec("restart plain", "POST", "/connectors/conf-ok/restart")
    side.wait_states("conf-ok", "RUNNING", ["RUNNING"])
    rec("restart onlyFailed, nothing failed", "POST",
        "/connectors/conf-ok/restart?includeTasks=true&onlyFailed=true")
    side.wait_states("conf-ok", "RUNNING", ["RUNNING"])
    rec("restart includeTasks", "POST", "/connectors/conf-ok/restart?includeTasks=true")
    side.wait_states("conf-ok", "RUNNING", ["RUNNING"])
    rec("restart onlyFailed, task failed", "POST",
        "/connectors/conf-fail/restart?includeTasks=true&onlyFailed=true")
    # The restart fails again (directory still missing): FAILED once more.
    side.wait_states("conf-fail", "RUNNING", ["FAILED"])
    # A paused connector keeps its FAILED task FAILED.
    rec("pause failed", "PUT", "/connectors/conf-fail/pause")
    side.wait_states("conf-fail", "PAUSED", ["FAILED"])
    rec("status paused failed", "GET", "/connectors/conf-fail/status")
    for label, p in (("restart during config change",
                      "/connectors/conf-ok/restart?includeTasks=true&onlyFailed=true"),
                     ("task restart during config change",
                      "/connectors/conf-ok/tasks/0/restart")):
        st, js, text = side.meet_rebalance(p)
        out.append((label, {"status": st, "shape": shape(js),
                            "message": (js or {}).get("message")}))
    rec("task restart", "POST", "/connectors/conf-ok/tasks/0/restart")
    side.wait_states("conf-ok", "RUNNING", ["RUNNING"])
    rec("task restart missing task", "POST", "/connectors/conf-ok/tasks/9/restart")
    rec("task restart bad id", "POST", "/connectors/conf-ok/tasks/x/restart",
        keep=("status",))

    # Operator intent.
    rec("pause", "PUT", "/connectors/conf-ok/pause")
    side.wait_states("conf-ok", "PAUSED", ["PAUSED"])
    rec("status paused", "GET", "/connectors/conf-ok/status")
    rec("resume", "PUT", "/connectors/conf-ok/resume")
    side.wait_states("conf-ok", "RUNNING", ["RUNNING"])
    rec("stop", "PUT", "/connectors/conf-ok/stop")
    side.wait_states("conf-ok", "STOPPED", [])
    rec("status stopped", "GET", "/connectors/conf-ok/status")
    rec("restart stopped", "POST",
        "/connectors/conf-ok/restart?includeTasks=true&onlyFailed=true")
    rec("resume stopped", "PUT", "/connectors/conf-ok/resume")
    side.wait_states("conf-ok", "RUNNING", ["RUNNING"])
    for name in ("conf-ok", "conf-fail"):
        rec("delete " + name, "DELETE", "/connectors/" + name, keep=("status",))
    rec("status deleted", "GET", "/connectors/conf-ok/status")
    return out


def compare(real, fake):
    diffs = []
    fake_by = dict(fake)
    for label, r in real:
        f = fake_by.get(label)
        if f is None:
            diffs.append("%s: the fake has no answer" % label)
            continue
        for k in sorted(set(r) | set(f)):
            if r.get(k) != f.get(k):
                why = DELIBERATE.get((label, k))
                if why:
                    continue
                diffs.append("%s: %s real=%s fake=%s" % (label, k, json.dumps(r.get(k)),
                                                         json.dumps(f.get(k))))
    return diffs


def real_rebalance(st, tmp):
    """meet_rebalance for the real worker: other connectors are created and
    deleted in a loop (each a config change the worker must rebalance for)
    while the restart is sent again until one meets a pending rebalance."""
    def meet(path):
        stop = threading.Event()

        def churn(k):
            i = 0
            while not stop.is_set():
                name = "conf-churn-%d-%d" % (k, i)
                rest("POST", st.url + "/connectors", {"name": name, "config": {
                    "connector.class": "FileStreamSink", "tasks.max": "1", "topics": "churn",
                    "file": os.path.join(tmp, name)}}, timeout=10)
                rest("DELETE", st.url + "/connectors/" + name, timeout=10)
                i += 1
        threads = [threading.Thread(target=churn, args=(k,), daemon=True) for k in range(2)]
        for t in threads:
            t.start()
        try:
            return wait_until(lambda: (lambda r: r if r[0] == 409 else None)(
                rest("POST", st.url + path, timeout=10)), 60, "a restart to meet a rebalance")
        finally:
            stop.set()
            for t in threads:
                t.join(30)
    return meet


def run(st, tmp):
    """Runs the calls against the stack's first worker and a fresh fake of
    the same version; returns the differences (empty: conformant)."""
    sink_dir = os.path.join(tmp, "conformance")
    os.makedirs(sink_dir, exist_ok=True)
    _, root, _ = rest("GET", st.url + "/")
    version = root["version"]
    real = facts(Side("real", st.url, lambda c: None, real_rebalance(st, sink_dir)), sink_dir)
    fake = FakeConnectCluster(workers=1, version=version, restart_process_delay=0.1,
                              restarting_delay=0.4).start()
    try:
        def fail(c):
            fake.fail_task(c, 0)
            fake.set_restart_outcome(c, "fail_again")
        def rebalance(path):
            fake.inject_restart_faults(409)
            return rest("POST", fake.urls[0] + path)
        fake_facts = facts(Side("fake", fake.urls[0], fail, rebalance), sink_dir)
    finally:
        fake.stop()
    if os.environ.get("KCWATCH_CONFORMANCE_DUMP"):
        with open(os.environ["KCWATCH_CONFORMANCE_DUMP"], "w") as f:
            json.dump({"real": real, "fake": fake_facts}, f, indent=1)
    return compare(real, fake_facts)
