#!/usr/bin/env python3
"""Rule evaluation: kcwatch against vmalert, the same rule file at 1 s, the
same real Prometheus and the same JMX-exporter-shaped data, one after the
other in one run.

    python3 bench/rules/run.py [--profiles quiet,storm,single] [--seconds 30] [--runs 3]

Profiles (1,200 tasks of 600 sink connectors in the exporter):
  quiet   100 rules, none firing
  storm   100 rules, 2 of them returning every task (2,400 alerts firing)
  single  1 rule returning 1,200 series (firing)

Per profile and run, each tool runs alone for a warm-up and then --seconds
of measurement: its CPU (the process's CPU-time clock, to the nanosecond;
user and system time in 10 ms ticks beside it), Prometheus' CPU in
the same window, its peak RssAnon, and the instant queries Prometheus
answered in the window (prometheus_engine_query_duration_seconds_count,
slice inner_eval): one per rule evaluation for both tools, so evaluations
skipped show as queries missing against rules x seconds. Prints one JSON
line per measurement and a summary with medians and spread of the ratios.
Also measures kcwatch's start-up and reload with 1,000 rules (--startup).
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench", "common"))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakes"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import procstat  # noqa: E402
from sink import start_sink  # noqa: E402
import static_connect  # noqa: E402
from build import free_port, kcwatch_binary, wait_for, write_kcwatch_config  # noqa: E402
from jmx_exporter import JmxExporter  # noqa: E402
from prom_harness import PrometheusServer, http_json  # noqa: E402

VMALERT = os.environ.get("VMALERT_BIN", "/usr/bin/vmalert")
WRAP = []
N_CONNECTORS = 600
QUIET_EXPRS = [
    "kafka_connect_connector_task_metrics_offset_commit_failure_percentage > {k}",
    "increase(kafka_connect_task_error_metrics_total_record_errors[5m]) > {k}",
    "rate(kafka_connect_task_error_metrics_total_record_failures[5m]) > {k}",
    "kafka_connect_connect_worker_metrics_connector_failed_task_count > {k}",
    "sum by (connector) (kafka_connect_task_error_metrics_total_records_skipped) > {k}",
    "kafka_connect_connector_task_metrics_pause_ratio > {k} + 0.5",
    "max by (connector) (kafka_connect_sink_task_metrics_sink_record_lag_max) > {k} + 100000",
    "kafka_connect_connect_worker_metrics_connector_running_task_count"
    " < kafka_connect_connect_worker_metrics_connector_total_task_count - {k}",
]
FIRING_EXPR = "kafka_connect_connector_task_metrics_offset_commit_failure_percentage >= -{k}"


def rule(name, expr, for_="0s"):
    return ("      - alert: %s\n        expr: %s\n        for: %s\n"
            "        labels: {severity: warning}\n"
            "        annotations:\n"
            "          summary: \"{{ $labels.connector }}/{{ $labels.task }}: {{ $value }}\"\n"
            % (name, json.dumps(expr), for_))


def rule_file(path, n_quiet, n_firing, n_groups=1, offset=0):
    rules = [rule("Quiet%03d" % i, QUIET_EXPRS[i % len(QUIET_EXPRS)].format(k=i + offset))
             for i in range(n_quiet)]
    rules += [rule("Storm%02d" % i, FIRING_EXPR.format(k=i + 1)) for i in range(n_firing)]
    per = (len(rules) + n_groups - 1) // n_groups
    out = "groups:\n"
    for g in range(n_groups):
        out += "  - name: bench-%d\n    interval: 1s\n    rules:\n" % g
        out += "".join(rules[g * per:(g + 1) * per])
    with open(path, "w") as f:
        f.write(out)
    return len(rules)


def queries_served(prom):
    """Instant and range queries Prometheus evaluated so far."""
    with urllib.request.urlopen(prom.url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    m = re.search(r'^prometheus_engine_query_duration_seconds_count\{slice="inner_eval"\} (\S+)$',
                  text, re.M)
    return float(m.group(1)) if m else 0.0


def kcwatch_cmd(binary, tmp, rules_path, prom, connect_port, sink_port, log_level="warn"):
    """Command line and admin listen address of kcwatch on these rules. Each
    start gets its own state directory: alerts a previous run left firing in
    the state database would otherwise not be notified again."""
    tmp = tempfile.mkdtemp(dir=tmp, prefix="kcwatch-")
    path, listen = write_kcwatch_config(tmp, rules_path, connect_port, sink_port,
                                        poll_interval="5s", prometheus_url=prom.url,
                                        log_level=log_level)
    return WRAP + [binary, "run", "-c", path], listen


def vmalert_cmd(tmp, rules_path, prom, sink_port):
    return [VMALERT, "-rule=" + rules_path, "-datasource.url=" + prom.url,
            "-notifier.url=http://127.0.0.1:%d" % sink_port, "-evaluationInterval=1s",
            "-httpListenAddr=127.0.0.1:%d" % free_port(), "-loggerLevel=ERROR"]


def measure(tool, cmd, prom, seconds, warmup, expect_firing, sink, tmp):
    log = open(os.path.join(tmp, tool + ".log"), "ab")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True)
    try:
        sink.names.clear()
        if expect_firing:
            wait_for(lambda: len(sink.names) >= expect_firing, 120,
                     "%s to deliver %d firing alerts" % (tool, expect_firing), proc)
        time.sleep(warmup)
        sampler = procstat.Sampler({"tool": proc.pid}).start()
        win = procstat.CpuWindow({"tool": proc.pid, "prometheus": prom.proc.pid}).start()
        q0 = queries_served(prom)
        time.sleep(seconds)
        q1 = queries_served(prom)
        win.stop()
        sampler.stop()
        if proc.poll() is not None:
            raise RuntimeError("%s exited during the measurement" % tool)
        return {"tool": tool, "wall_s": round(win.wall, 2),
                "cpu_s": round(win.cpu["tool"], 4),
                "user_s": round(win.split["tool"][0], 2),
                "sys_s": round(win.split["tool"][1], 2),
                "prometheus_cpu_s": round(win.cpu["prometheus"], 4),
                "evaluations": int(q1 - q0),
                "rss_anon_peak_mib": round(sampler.peak["tool"] / 1024, 2)}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


PROFILES = {"quiet": (100, 0), "storm": (98, 2), "single": (0, 1)}


def run_profile(name, binary, prom, cl_port, sink, tmp, seconds, warmup):
    n_quiet, n_firing = PROFILES[name]
    rules_path = os.path.join(tmp, "rules-%s.yaml" % name)
    n_rules = rule_file(rules_path, n_quiet, n_firing)
    firing = n_firing * 2 * N_CONNECTORS
    kc, _ = kcwatch_cmd(binary, tmp, rules_path, prom, cl_port, sink.server_address[1])
    out = {"profile": name, "rules": n_rules, "alerts_firing": firing}
    for tool, cmd in (("kcwatch", kc), ("vmalert", vmalert_cmd(tmp, rules_path, prom,
                                                                sink.server_address[1]))):
        m = measure(tool, cmd, prom, seconds, warmup, firing, sink, tmp)
        m["cpu_ms_per_eval"] = round(1000 * m["cpu_s"] / max(m["evaluations"], 1), 4)
        m["evaluations_expected"] = int(n_rules * m["wall_s"])
        out[tool] = m
    k, v = out["kcwatch"], out["vmalert"]
    out["cpu_per_eval_ratio"] = round(k["cpu_ms_per_eval"] / v["cpu_ms_per_eval"], 4)
    out["rss_ratio"] = round(k["rss_anon_peak_mib"] / v["rss_anon_peak_mib"], 3)
    out["prometheus_cpu_ratio"] = round(k["prometheus_cpu_s"] / max(v["prometheus_cpu_s"], 1e-9), 3)
    return out


def startup_reload(binary, prom, cl_port, sink, tmp, runs=5):
    """kcwatch start-up (exec to /healthz answering) and reload (POST /-/reload
    answered) with 1,000 rules in 10 groups: a reload of the same rules as
    soon as /healthz answers, while the start-up's PromQL check is still
    asking Prometheus (the reload checks what that has not accepted yet);
    then, every expr accepted, the same rules again (Prometheus is asked
    nothing) and one where every expression changed (Prometheus checks all
    1,000 before the answer)."""
    rules_path = os.path.join(tmp, "rules-1000.yaml")
    res = {"startup_ms": [], "reload_racing_ms": [], "reload_ms": [], "reload_changed_ms": []}

    def reload(listen, key):
        t1 = time.monotonic()
        req = urllib.request.Request("http://%s/-/reload" % listen, data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200, r.status
        res[key].append(round(1000 * (time.monotonic() - t1), 1))

    for _ in range(runs):
        rule_file(rules_path, 1000, 0, n_groups=10)
        cmd, listen = kcwatch_cmd(binary, tmp, rules_path, prom, cl_port,
                                  sink.server_address[1], log_level="info")
        logp = os.path.join(tmp, "startup.log")
        log = open(logp, "wb")
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=log, start_new_session=True)
        try:
            wait_for(lambda: http_json("http://%s/healthz" % listen, timeout=1)[0] == 200, 30,
                     "kcwatch to serve /healthz", proc, interval=0.002)
            res["startup_ms"].append(round(1000 * (time.monotonic() - t0), 1))
            racing = b"PromQL of every rule checked" not in open(logp, "rb").read()
            reload(listen, "reload_racing_ms")
            if not racing:  # the start-up's check was over first: not this case
                res["reload_racing_ms"].pop()
            reload(listen, "reload_ms")
            rule_file(rules_path, 1000, 0, n_groups=10, offset=5000)
            reload(listen, "reload_changed_ms")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
            log.close()
    return {"rules": 1000,
            "startup_ms_median": statistics.median(res["startup_ms"]),
            "reload_racing_ms_median": (statistics.median(res["reload_racing_ms"])
                                        if res["reload_racing_ms"] else None),
            "reload_ms_median": statistics.median(res["reload_ms"]),
            "reload_changed_ms_median": statistics.median(res["reload_changed_ms"]), **res}


class Environment:
    """The JMX-shaped exporter (1,200 tasks), the real Prometheus scraping it,
    a one-connector Connect stand-in (kcwatch needs a cluster) and the sink."""

    def __init__(self, tmp):
        self.tmp = tmp

    def start(self):
        self.exp = JmxExporter()
        self.exp.add_worker_defaults(connectors=N_CONNECTORS, tasks=2 * N_CONNECTORS)
        for c in range(N_CONNECTORS):
            name = "conn-%03d-sink" % c
            self.exp.add_connector(name, tasks=2)
            for t in range(2):
                self.exp.add_task(name, t, "sink")
        self.exp.start()
        self.csrv = static_connect.start(static_connect.Cluster(1))
        self.connect_port = self.csrv.server_address[1]
        self.sink = start_sink()
        self.prom = PrometheusServer(self.tmp, targets=[self.exp.address], scrape_interval="5s",
                                     evaluation_interval="1m").start(timeout=60)
        n = "count(kafka_connect_connector_task_metrics_offset_commit_failure_percentage)"
        wait_for(lambda: (http_json(self.prom.url + "/api/v1/query?query=" +
                                    urllib.request.quote(n))[1] or {}).get("data", {})
                 .get("result") not in (None, []), 60, "Prometheus to have the data")
        return self

    def stop(self):
        self.prom.stop()
        self.prom.close()
        self.exp.stop()
        self.csrv.shutdown()
        self.sink.shutdown()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", default="quiet,storm,single")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--warmup", type=float, default=5)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--startup", action="store_true", help="also measure start-up and reload")
    ap.add_argument("--kcwatch")
    ap.add_argument("--wrap", help="command to run kcwatch under (profiling), e.g. "
                    "'valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out'")
    a = ap.parse_args()
    global WRAP
    WRAP = a.wrap.split() if a.wrap else []
    binary = a.kcwatch or kcwatch_binary()
    tmp = tempfile.mkdtemp(prefix="kcw-bench-rules-")
    env = Environment(tmp).start()
    prom, sink = env.prom, env.sink
    try:
        results = {}
        for r in range(a.runs):
            for p in [p for p in a.profiles.split(",") if p]:  # "" with --startup: that alone
                o = run_profile(p, binary, prom, env.connect_port, sink, tmp, a.seconds,
                                a.warmup)
                o["run"] = r + 1
                print(json.dumps(o), flush=True)
                results.setdefault(p, []).append(o)
        summary = {}
        for p, outs in results.items():
            s = {}
            for key in ("cpu_per_eval_ratio", "rss_ratio", "prometheus_cpu_ratio"):
                vals = [o[key] for o in outs]
                s[key] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
            for tool in ("kcwatch", "vmalert"):
                s[tool + "_evaluations_missing"] = max(
                    o[tool]["evaluations_expected"] - o[tool]["evaluations"] for o in outs)
            summary[p] = s
        print("summary " + json.dumps(summary), flush=True)
        if a.startup:
            print("startup " + json.dumps(startup_reload(binary, prom, env.connect_port, sink,
                                                         tmp)), flush=True)
    finally:
        env.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
