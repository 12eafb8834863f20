#!/usr/bin/env python3
"""Delivery: 1,000 alerts firing at once, all delivered through grouping
(group_by alertname, cluster, connector: 500 groups of 2) to a webhook sink.

    python3 bench/delivery/run.py [--runs 3]

Uses the rules benchmark's Prometheus and JMX-shaped data (bench/rules/run.py);
one rule matches 1,000 task series. Measures, per run, the time from
kcwatch's start to the first and to the last of the 1,000 alerts at the
sink, kcwatch's CPU over that time and its peak RssAnon."""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import shutil
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "rules"))
import run as rules  # noqa: E402  (bench/rules/run.py)
from run import kcwatch_binary, procstat, wait_for  # noqa: E402

EXPR = ('kafka_connect_connector_task_metrics_offset_commit_failure_percentage'
        '{connector=~"conn-[0-4].*"} >= 0')


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--kcwatch")
    a = ap.parse_args()
    binary = a.kcwatch or kcwatch_binary()
    tmp = tempfile.mkdtemp(prefix="kcw-bench-delivery-")
    env = rules.Environment(tmp).start()
    try:
        path = os.path.join(tmp, "rules.yaml")
        with open(path, "w") as f:
            f.write("groups:\n  - name: delivery\n    interval: 1s\n    rules:\n" +
                    rules.rule("Delivery", EXPR))
        out = []
        for r in range(a.runs):
            sink = env.sink
            with sink.lock:
                sink.names.clear()
                sink.arrivals = []
            cmd, _ = rules.kcwatch_cmd(binary, tmp, path, env.prom, env.connect_port,
                                       sink.server_address[1])
            log = open(os.path.join(tmp, "kcwatch.log"), "ab")
            t0 = time.monotonic()
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True)
            try:
                sampler = procstat.Sampler({"kcwatch": proc.pid}, every=0.05).start()
                wait_for(lambda: len(sink.names) >= 1000, 60, "1,000 alerts at the sink", proc,
                         interval=0.005)
                t_all = time.monotonic() - t0
                cpu = procstat.cpu_seconds(proc.pid)
                sampler.stop()
                first = min(sink.arrivals) - t0 if sink.arrivals else None
                res = {"run": r + 1, "alerts": len(sink.names), "posts": sink.posts,
                       "first_delivery_s": round(first, 3),
                       "all_delivered_s": round(t_all, 3), "cpu_s": round(cpu, 3),
                       "rss_anon_peak_mib": round(sampler.peak["kcwatch"] / 1024, 1)}
                print(json.dumps(res), flush=True)
                out.append(res)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(10)
                log.close()
            with sink.lock:
                sink.posts = 0
        print("summary " + json.dumps({k: statistics.median(o[k] for o in out)
                                       for k in ("all_delivered_s", "first_delivery_s", "cpu_s",
                                                 "rss_anon_peak_mib")}), flush=True)
    finally:
        env.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
