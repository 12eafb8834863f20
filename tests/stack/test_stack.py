#!/usr/bin/env python3
"""The real stack, end to end: kcwatch against a real Kafka Connect worker.

One stack (tests/stack/stack.py: KRaft broker, Connect worker with the JMX
exporter agent, Prometheus, webhook sink, kcwatch) is started once and the
scenarios below run against it in order, each reported as PASS/FAIL with its
own assertions; the last line is "N passed, M failed".

If the jars cannot be resolved (no Maven Central) every scenario FAILS with
that reason: the stack tests never pass by skipping.

Environment: KCWATCH_BIN (required), KCWATCH_STACK_SKIP_SECOND_WORKER=1
leaves out scenario 7 (a second worker) on machines too small for it.
"""

import json
import os
import re
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import stack  # noqa: E402
from stack import Stack, StackUnavailable, rest, wait_until  # noqa: E402
import conformance  # noqa: E402
import dashboards  # noqa: E402

import harness  # noqa: E402  (tests/integration, on the path via stack)

yaml = stack.yaml

STATUS_RULES = os.path.join(stack.ROOT, "rules.d", "connect-status.yaml")
T = 90  # seconds: a deadline for things a real worker does in a few seconds


class World:
    st = None
    tmp = None
    t0 = None


W = World()


def fail(msg):
    raise AssertionError("%s\n--- logs ---\n%s" % (msg, W.st.logs(25)))


def check(cond, msg):
    if not cond:
        fail(msg)


def wait(pred, what, timeout=T):
    return wait_until(pred, timeout, what, on_timeout=lambda: W.st.logs(25), interval=0.25)


def path(name):
    return os.path.join(W.tmp, name)


def sink_config(file, topics, **extra):
    cfg = {"connector.class": "FileStreamSink", "tasks.max": "1", "file": file,
           "topics": topics}
    cfg.update(extra)
    return cfg


def source_config(file, topic, **extra):
    cfg = {"connector.class": "FileStreamSource", "tasks.max": "1", "file": file,
           "topic": topic}
    cfg.update(extra)
    return cfg


def stack_rules():
    """The shipped packs with the `for:` durations shortened for a test, as
    an operator's copy would be. The JMX pack keeps its expressions."""
    with open(STATUS_RULES) as f:
        status = yaml.safe_load(f)
    for g in status["groups"]:
        for r in g["rules"]:
            if r["alert"] == "ConnectClusterUnreachable":
                r["for"] = "3s"
    with open(stack.JMX_RULES) as f:
        jmx = yaml.safe_load(f)
    for g in jmx["groups"]:
        for r in g["rules"]:
            if r["alert"] == "KafkaConnectTaskRecordErrors":
                r["for"] = "0s"
    out = []
    for name, doc in (("connect-status.yaml", status), ("connect-jmx.yaml", jmx)):
        p = path(name)
        with open(p, "w") as f:
            f.write(harness.to_yaml(doc))
        out.append(p)
    return out


def restarts_sent(connector):
    return W.st.kcwatch_log_records(msg="restart sent", connector=connector)


def alerts(alertname, status, **labels):
    return W.st.sink.find_alerts(alertname=alertname, status=status, labels=labels)


def prom_value(expr):
    try:
        res = W.st.prom.query(expr)
    except AssertionError:
        return None
    return res[0][1] if res else None


# ---------------------------------------------------------------- setup

def setup_stack():
    spare = 0 if os.environ.get("KCWATCH_STACK_SKIP_SECOND_WORKER") else 1
    W.st = Stack(spare_workers=spare)
    W.tmp = W.st.tmp
    W.st.start()
    # Scenario 4's connectors fail before kcwatch watches, then an operator
    # pauses one and stops the other: kcwatch must leave both alone.
    for name in ("paused-sink", "stopped-sink"):
        W.st.create(name, sink_config(path("absent-%s/out.txt" % name), "walkthrough"))
    for name in ("paused-sink", "stopped-sink"):
        W.st.wait_task(name, "FAILED", timeout=T)
    st, _, text = W.st.rest("PUT", "/connectors/paused-sink/pause")
    check(st == 202, "pause answered %s %s" % (st, text))
    st, _, text = W.st.rest("PUT", "/connectors/stopped-sink/stop")
    check(st == 204, "stop answered %s %s" % (st, text))
    wait(lambda: (W.st.status("paused-sink") or {}).get("connector", {}).get("state")
         == "PAUSED", "paused-sink PAUSED")
    wait(lambda: (W.st.status("stopped-sink") or {}).get("connector", {}).get("state")
         == "STOPPED", "stopped-sink STOPPED")
    # The conformance calls fail a task on purpose: kcwatch leaves it alone.
    W.st.start_kcwatch(harness.kcwatch_bin(), stack_rules(),
                       {"remediation": {"exclude": {"connector": "conf-.*"}}})


# ---------------------------------------------------------------- scenarios

def test_1_walkthrough_source_runs_and_is_scraped():
    """The walkthrough's FileStreamSource: created through REST, RUNNING,
    records reach the topic (read back by a FileStreamSink) and its metrics
    reach Prometheus."""
    lines = ["line %d of the walkthrough" % i for i in range(5)]
    with open(path("walkthrough.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    W.st.create("local-file-source", source_config(path("walkthrough.txt"), "walkthrough"))
    W.st.create("local-file-sink", sink_config(path("walkthrough.out"), "walkthrough"))
    W.st.wait_task("local-file-source", "RUNNING")
    s = W.st.status("local-file-source")
    check(s["connector"]["state"] == "RUNNING" and s["type"] == "source", "status %r" % s)

    def copied():
        try:
            with open(path("walkthrough.out")) as f:
                got = f.read().splitlines()
        except FileNotFoundError:
            return False
        # JsonConverter (schemas off) writes the strings as JSON strings.
        return [json.loads(x) if x.startswith('"') else x for x in got] == lines
    wait(copied, "the 5 lines to flow source -> Kafka -> sink file")
    wait(lambda: (prom_value('kafka_connect_source_task_metrics_source_record_poll_total'
                             '{connector="local-file-source"}') or 0) >= 5,
         "Prometheus to have source_record_poll_total >= 5 for local-file-source")
    wait(lambda: (prom_value('kafka_connect_sink_task_metrics_sink_record_send_total'
                             '{connector="local-file-sink"}') or 0) >= 5,
         "Prometheus to have sink_record_send_total >= 5 for local-file-sink")
    check(not alerts("ConnectTaskFailed", "firing", connector="local-file-source"),
          "a healthy connector raised an alert")


def test_2_missing_directory_is_healed():
    """A FileStreamSink whose output directory is missing at start fails;
    once the directory exists kcwatch's KIP-745 restart brings it back, it
    stays RUNNING, and the webhook gets firing then resolved."""
    out_dir = path("heal-out")
    W.st.create("heal-sink", sink_config(os.path.join(out_dir, "out.txt"), "walkthrough"))
    _, a = wait(lambda: (alerts("ConnectTaskFailed", "firing", connector="heal-sink",
                                task="0") or [None])[0],
                "the firing webhook for heal-sink/0")
    # kcwatch may have restarted it already: the notification has the trace.
    desc = a["annotations"].get("description", "")
    check("Couldn't find or create file" in desc, "the trace is not in the notification: %r"
          % desc[:600])
    os.makedirs(out_dir)
    wait(lambda: W.st.task_state("heal-sink") == "RUNNING", "heal-sink/0 RUNNING again")
    sent = restarts_sent("heal-sink")
    check(sent, "no restart was sent")
    for r in sent:
        check("includeTasks=true" in r.get("request", "") and
              "onlyFailed=true" in r.get("request", ""),
              "not the KIP-745 form: %r" % r.get("request"))
    # stable_period is 5s: kcwatch itself says when the task stayed RUNNING.
    wait(lambda: W.st.kcwatch_log_records(msg="restart counter reset", connector="heal-sink"),
         "kcwatch to see heal-sink stay RUNNING for stable_period")
    check(W.st.task_state("heal-sink") == "RUNNING", "heal-sink did not stay RUNNING")
    wait(lambda: alerts("ConnectTaskFailed", "resolved", connector="heal-sink", task="0"),
         "the resolved webhook for heal-sink/0")
    wait(lambda: os.path.exists(os.path.join(out_dir, "out.txt")), "the sink's output file")


def produce_config_record(key, value):
    """Writes one record to the workers' config topic with the console
    producer of the same jars, as a worker that has a plugin the others
    lack would have done."""
    cmd = ["java", "-Xmx128m", "-XX:TieredStopAtLevel=1", "-cp", W.st.cp,
           "-Dlog4j2.configurationFile=" + path("log4j2-producer.properties"),
           "org.apache.kafka.tools.ConsoleProducer", "--bootstrap-server",
           W.st.broker.bootstrap, "--topic", W.st.workers[0].group_id + "-configs",
           "--property", "parse.key=true", "--property", "key.separator=\t"]
    with open(path("log4j2-producer.properties"), "w") as f:
        f.write("rootLogger.level = WARN\n")
    r = subprocess.run(cmd, input=("%s\t%s\n" % (key, json.dumps(value))).encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    check(r.returncode == 0, "console producer failed: %s" % r.stdout.decode()[-2000:])


def wait_unrecoverable(alertname, connector, word):
    def found():
        for _, a in alerts(alertname, "firing", connector=connector):
            note = a["annotations"].get("remediation", "")
            if "not restarted" in note:
                return a
        return None
    a = wait(found, "a firing %s for %s whose remediation note says 'not restarted'"
             % (alertname, connector))
    note = a["annotations"]["remediation"]
    check(word in note or word in a["annotations"].get("description", ""),
          "the notification should say why (%s): %r" % (word, note))
    check(W.st.kcwatch_log_records(msg="restart skipped: unrecoverable failure",
                                   connector=connector),
          "kcwatch did not log the unrecoverable skip for %s" % connector)
    return a


def test_3a_missing_converter_class_not_restarted():
    """A converter class that does not exist. The REST API refuses it (400,
    naming the class); a worker lacking the class still meets it when the
    config reaches it through the config topic: the connector FAILS, and
    kcwatch does not restart it and says why."""
    cfg = sink_config(path("conv.out"), "walkthrough",
                      **{"value.converter": "com.example.NoSuchConverter"})
    st, body, text = W.st.rest("POST", "/connectors", {"name": "badconv-sink", "config": cfg})
    check(st == 400 and "com.example.NoSuchConverter" in (body or {}).get("message", ""),
          "expected 400 naming the class, got %s %s" % (st, text))
    cfg["name"] = "badconv-sink"
    produce_config_record("connector-badconv-sink", {"properties": cfg})
    wait(lambda: (W.st.status("badconv-sink") or {}).get("connector", {}).get("state")
         == "FAILED", "badconv-sink to be FAILED")
    trace = W.st.status("badconv-sink")["connector"].get("trace", "")
    check("com.example.NoSuchConverter" in trace, "trace: %r" % trace[:300])
    wait_unrecoverable("ConnectConnectorFailed", "badconv-sink", "ConfigException")
    check(not restarts_sent("badconv-sink"), "badconv-sink was restarted")


def test_3b_poison_record_not_restarted():
    """A non-JSON record read with JsonConverter and errors.tolerance=none
    fails the sink task; kcwatch does not restart it and says why."""
    W.st.create("poison-sink", sink_config(path("poison.out"), "poison",
                                           **{"errors.tolerance": "none"}))
    W.st.wait_task("poison-sink", "RUNNING")
    # The error counter must be scraped at 0 before the poison arrives, so
    # that increase() sees it grow (scenario 6).
    wait(lambda: prom_value('kafka_connect_task_error_metrics_total_record_errors_total'
                            '{connector="poison-sink"}') == 0,
         "Prometheus to scrape poison-sink's error counter at 0")
    with open(path("poison.txt"), "w") as f:
        f.write("this is {not json\n")
    W.st.create("poison-source", source_config(
        path("poison.txt"), "poison",
        **{"value.converter": "org.apache.kafka.connect.storage.StringConverter"}))
    W.st.wait_task("poison-sink", "FAILED")
    trace = W.st.status("poison-sink")["tasks"][0].get("trace", "")
    check("Tolerance exceeded in error handler" in trace, "trace: %r" % trace[:300])
    wait_unrecoverable("ConnectTaskFailed", "poison-sink", "Tolerance exceeded")
    check(not restarts_sent("poison-sink"), "poison-sink was restarted")
    check(W.st.task_state("poison-sink") == "FAILED", "poison-sink left FAILED")


def test_6_promql_alert_from_real_exporter():
    """KafkaConnectTaskRecordErrors (rules.d/connect-jmx.yaml) fires from
    the real exporter's metrics after the poison record: kcwatch notifies it,
    and Prometheus itself, loading the same pack, has it active."""
    wait(lambda: (prom_value('kafka_connect_task_error_metrics_total_record_errors_total'
                             '{connector="poison-sink"}') or 0) >= 1,
         "the real exporter to count the poison record")
    _, a = wait(lambda: (alerts("KafkaConnectTaskRecordErrors", "firing",
                                connector="poison-sink", task="0") or [None])[0],
                "kcwatch's firing KafkaConnectTaskRecordErrors for poison-sink/0")
    check(a["labels"].get("instance") == W.st.workers[0].metrics_address,
          "instance label: %r" % a["labels"])

    def prom_has():
        data = W.st.prom.api("/api/v1/alerts")
        return [x for x in data.get("alerts", [])
                if x["labels"].get("alertname") == "KafkaConnectTaskRecordErrors"
                and x["labels"].get("connector") == "poison-sink"]
    got = wait(prom_has, "Prometheus's own KafkaConnectTaskRecordErrors (pending or firing)")
    check(got[0]["state"] in ("pending", "firing"), "state %r" % got[0]["state"])


def test_4_paused_and_stopped_never_restarted():
    """Connectors an operator paused or stopped while their task had failed
    are never restarted (kcwatch has polled them since it started)."""
    ps = W.st.status("paused-sink")
    check(ps["connector"]["state"] == "PAUSED", "paused-sink: %r" % ps)
    check([t["state"] for t in ps["tasks"]] == ["FAILED"],
          "a paused connector keeps its FAILED task: %r" % ps["tasks"])
    ss = W.st.status("stopped-sink")
    check(ss["connector"]["state"] == "STOPPED", "stopped-sink: %r" % ss)
    # kcwatch saw the paused connector's failed task and skipped it on purpose.
    wait(lambda: W.st.kcwatch_log_records(msg="restart skipped", connector="paused-sink"),
         "kcwatch to log that it skips the paused connector")
    for name in ("paused-sink", "stopped-sink"):
        check(not restarts_sent(name), "%s was restarted: %r" % (name, restarts_sent(name)))
    check(W.st.task_state("paused-sink") == "FAILED", "paused-sink's task changed state")


def test_conformance_real_worker_vs_fake():
    """The same REST calls against the real worker and fake_connect.py."""
    diffs = conformance.run(W.st, W.tmp)
    check(not diffs, "the fake differs from the real worker:\n  " + "\n  ".join(diffs))


def test_exporter_metric_names_used_by_rules_and_dashboards():
    """Every metric name of rules.d/connect-jmx.yaml and of the Connect
    dashboard is in the real exporter's output."""
    st, _, text = rest("GET", "http://%s/metrics" % W.st.workers[0].metrics_address)
    check(st == 200, "exporter answered %s" % st)
    exposed = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            exposed.add(re.split(r"[{ ]", line, 1)[0])
    used = dashboards.rule_metric_names(stack.JMX_RULES) | \
        dashboards.dashboard_metric_names(dashboards.CONNECT_DASHBOARD)
    missing = sorted(used - exposed)
    check(not missing, "metrics used but not exported: %s" % missing)
    check(len(used) >= 20, "suspiciously few metric names found: %r" % sorted(used))


def test_dashboard_panels_have_data():
    """Every panel query of the Connect dashboard returns data from the
    stack's Prometheus. kcwatch's dashboard queries are checked to parse;
    their data needs kcwatch's /metrics (not there yet)."""
    problems, report = dashboards.check_panels(W.st.prom)
    for line in report:
        print("  " + line)
    check(not problems, "panels without data:\n  " + "\n  ".join(problems))


def test_5_worker_killed_then_back():
    """SIGKILL the worker: ConnectClusterUnreachable fires. Start it again:
    the alert resolves."""
    w = W.st.workers[0]
    w.kill()
    wait(lambda: alerts("ConnectClusterUnreachable", "firing", cluster="stack"),
         "ConnectClusterUnreachable firing")
    w.start(wait=True)
    wait(lambda: alerts("ConnectClusterUnreachable", "resolved", cluster="stack"),
         "ConnectClusterUnreachable resolved")
    W.st.wait_task("local-file-source", "RUNNING", timeout=T)


def test_7a_restart_meeting_config_change_gets_409_and_is_retried():
    """Restarts that meet a pending rebalance get 409 (real worker: "stale
    configuration", while other connectors are created and deleted); kcwatch
    retries them without counting, and heals the task once it can."""
    import threading
    stop = threading.Event()
    churn_dir = path("churn")
    os.makedirs(churn_dir, exist_ok=True)

    def churn():
        i = 0
        while not stop.is_set():
            name = "churn-%d" % i
            W.st.rest("POST", "/connectors", {"name": name, "config": sink_config(
                os.path.join(churn_dir, name), "churn")}, timeout=10)
            W.st.rest("DELETE", "/connectors/" + name, timeout=10)
            i += 1
    threads = [threading.Thread(target=churn, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        out_dir = path("rebal-out")
        W.st.create("rebal-sink", sink_config(os.path.join(out_dir, "out.txt"), "walkthrough"))

        def deferred():
            return [r for r in W.st.kcwatch_log_records(msg="restart deferred",
                                                        connector="rebal-sink")
                    if r.get("http_status") == "409"]
        got = wait(deferred, "kcwatch to meet a 409 restarting rebal-sink", timeout=120)
        check("not counted" in got[0].get("detail", ""), "409 detail: %r" % got[0])
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    os.makedirs(out_dir)
    n_sent = len(restarts_sent("rebal-sink"))
    wait(lambda: W.st.task_state("rebal-sink") == "RUNNING" and
         len(restarts_sent("rebal-sink")) > n_sent,
         "a later restart to bring rebal-sink back", timeout=120)
    check(not W.st.kcwatch_log_records(msg="restart budget exhausted", connector="rebal-sink"),
          "409s were counted against the budget")


def test_7_second_worker_joins_and_polling_fails_over():
    """A second worker (its URL was in kcwatch's list from the start) joins
    the group; the first is killed; kcwatch fails over to the second URL,
    keeps polling there, and heals a failed task through it."""
    if os.environ.get("KCWATCH_STACK_SKIP_SECOND_WORKER"):
        raise AssertionError("left out by KCWATCH_STACK_SKIP_SECOND_WORKER")
    w0, w1 = W.st.workers[0], W.st.workers[1]
    w1.start(wait=True)
    # Both workers are members: the leader hands worker 1 a share of the work.
    wait(lambda: any(t.get("worker_id") == "127.0.0.1:%d" % w1.port
                     for c in ("local-file-source", "local-file-sink", "heal-sink")
                     for t in (W.st.status(c) or {}).get("tasks", []) +
                     [(W.st.status(c) or {}).get("connector", {})]),
         "worker 1 to run part of the connectors")
    before = len(W.st.kcwatch_log_records(msg="connect worker down"))
    unreachable_before = len(alerts("ConnectClusterUnreachable", "firing"))
    w0.kill()
    wait(lambda: len(W.st.kcwatch_log_records(msg="connect worker down")) > before,
         "kcwatch to fail over from the dead first worker")
    out_dir = path("failover-out")
    # Writes go through the leader: until the group notices worker 0 is gone
    # (session timeout) worker 1 answers 500 "IO Error trying to forward".
    body = {"name": "failover-sink",
            "config": sink_config(os.path.join(out_dir, "out.txt"), "walkthrough")}
    wait(lambda: rest("POST", w1.url + "/connectors", body)[0] in (201, 409),
         "worker 1 to accept a new connector once it leads", timeout=120)
    wait(lambda: alerts("ConnectTaskFailed", "firing", connector="failover-sink"),
         "kcwatch (polling worker 1 only) to see failover-sink fail", timeout=120)
    os.makedirs(out_dir)
    wait(lambda: (rest("GET", w1.url + "/connectors/failover-sink/status")[1] or {})
         .get("tasks", [{}])[0].get("state") == "RUNNING" and restarts_sent("failover-sink"),
         "kcwatch to restart failover-sink through worker 1", timeout=120)
    check(len(alerts("ConnectClusterUnreachable", "firing")) == unreachable_before,
          "ConnectClusterUnreachable fired although worker 1 answered")


def test_z_kcwatch_ran_throughout_and_exits_cleanly():
    """kcwatch survived every scenario, every webhook it sent was a valid
    Alertmanager payload, and it exits 0 on SIGTERM."""
    check(W.st.kcw_proc is not None and W.st.kcw_proc.poll() is None, "kcwatch is not running")
    check(W.st.sink.deliveries(), "no webhook was delivered at all")
    v = W.st.sink.violations
    check(not v, "webhook payload violations:\n  " + "\n  ".join(v))
    rc = W.st.stop_kcwatch()
    check(rc == 0, "kcwatch exited %s on SIGTERM" % rc)


# Scenario order: the paused/stopped check reads what kcwatch did since it
# started, the worker is killed only once the single-worker scenarios ran,
# and the second worker comes last.
ORDER = [
    "test_1_walkthrough_source_runs_and_is_scraped",
    "test_2_missing_directory_is_healed",
    "test_3a_missing_converter_class_not_restarted",
    "test_3b_poison_record_not_restarted",
    "test_6_promql_alert_from_real_exporter",
    "test_4_paused_and_stopped_never_restarted",
    "test_conformance_real_worker_vs_fake",
    "test_exporter_metric_names_used_by_rules_and_dashboards",
    "test_dashboard_panels_have_data",
    "test_5_worker_killed_then_back",
    "test_7a_restart_meeting_config_change_gets_409_and_is_retried",
    "test_7_second_worker_joins_and_polling_fails_over",
    "test_z_kcwatch_ran_throughout_and_exits_cleanly",
]


def main():
    tests = {"__file__": __file__}
    tests.update((n, globals()[n]) for n in ORDER)
    W.t0 = time.monotonic()
    try:
        try:
            if yaml is None:
                raise StackUnavailable("python3-yaml is missing: run packaging/install-deps.sh")
            setup_stack()
            print("stack up in %.1fs (%s)" % (time.monotonic() - W.t0, W.tmp), flush=True)
        except Exception as e:
            why = str(e) if isinstance(e, StackUnavailable) else traceback.format_exc()
            print("the real stack did not start: %s" % why)
            for n in ORDER:
                print("FAIL %s (no stack)" % n)
            print("0 passed, %d failed" % len(ORDER))
            return 1
        harness.run_tests(tests)  # exits with the summary line
    finally:
        if W.st is not None:
            W.st.close()


if __name__ == "__main__":
    sys.exit(main())
