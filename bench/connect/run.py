#!/usr/bin/env python3
"""Connect at scale: 10,000 connectors x 2 tasks with 25-key configs, polled
every second, one task failing every second.

    python3 bench/connect/run.py [--connectors 10000] [--seconds 60] [--runs 3]

Starts its own Connect stand-in (bench/common/static_connect.py) and webhook
sink on loopback, runs kcwatch (built Release into bench/.build unless
--kcwatch names a binary) with the shipped rules.d/connect-status.yaml, waits
until every connector's task configs were read, then measures for --seconds:
kcwatch's CPU (utime+stime from /proc/PID/stat) as a share of one core, its
peak and final RssAnon, every failed task restarted, and fail->restart
latency. Prints one JSON line per run and the medians with their spread."""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench", "common"))
import procstat  # noqa: E402
from sink import start_sink  # noqa: E402
import static_connect  # noqa: E402
from build import kcwatch_binary, stop_run, wait_for, write_kcwatch_config  # noqa: E402


def write_config(tmp, connect_port, sink_port):
    rules = os.path.join(ROOT, "rules.d", "connect-status.yaml")
    path, _ = write_kcwatch_config(
        tmp, rules, connect_port, sink_port, poll_interval="1s", log_level="info",
        group_interval="1s",
        remediation="{enabled: true, max_concurrent: 4, budget: {max_restarts: 100, window: 1h}}")
    return path


def one_run(binary, n_conn, seconds, seed, wrap=None):
    cluster = static_connect.Cluster(n_conn, tasks=2, seed=seed)
    srv = static_connect.start(cluster)
    sink = start_sink()
    tmp = tempfile.mkdtemp(prefix="kcw-bench-connect-")
    cfg = write_config(tmp, srv.server_address[1], sink.server_address[1])
    log = open(os.path.join(tmp, "kcwatch.log"), "wb")
    proc = subprocess.Popen((wrap or []) + [binary, "run", "-c", cfg], stdin=subprocess.DEVNULL, stdout=log,
                            stderr=log, start_new_session=True)
    try:
        t0 = time.monotonic()
        # Start-up: every connector is new, so each one's task configs are read once.
        wait_for(lambda: cluster.requests.get("info", 0) >= n_conn, 600,
                 "kcwatch to read every connector's task configs", proc)
        warm = time.monotonic() - t0
        time.sleep(3)
        polls0 = cluster.requests.get("poll", 0)
        bytes0 = cluster.bytes_sent
        sampler = procstat.Sampler({"kcwatch": proc.pid}, every=0.02).start()
        win = procstat.CpuWindow({"kcwatch": proc.pid}).start()
        driver = static_connect.FailureDriver(cluster, 1.0).start()
        time.sleep(seconds)
        driver.stop()
        win.stop()
        # The last failures get their restart (at most a poll and a re-read away).
        wait_for(lambda: not cluster.failed_at, 15, "the last failed tasks restarted", proc)
        sampler.stop()
        polls = cluster.requests.get("poll", 0) - polls0
        lat = sorted(cluster.latencies)
        res = {
            "connectors": n_conn, "tasks": 2 * n_conn, "seconds": round(win.wall, 1),
            "startup_config_reads_s": round(warm, 1),
            "poll_body_bytes": len(cluster.list_body(False)),
            "polls": polls,
            "bytes_per_poll": int((cluster.bytes_sent - bytes0) / max(polls, 1)),
            "failed": driver.fails, "restarted": len(lat),
            "not_restarted": len(cluster.failed_at),
            "latency_median_s": round(statistics.median(lat), 3) if lat else None,
            "latency_p90_s": round(lat[int(0.9 * (len(lat) - 1))], 3) if lat else None,
            "latency_max_s": round(lat[-1], 3) if lat else None,
            "cpu_pct_of_core": round(100 * win.cpu["kcwatch"] / win.wall, 2),
            "rss_anon_peak_mib": round(sampler.peak["kcwatch"] / 1024, 1),
            "rss_anon_end_mib": round(sampler.last["kcwatch"] / 1024, 1),
            "info_reads": cluster.requests.get("info", 0),
            "status_reads": cluster.requests.get("status", 0),
            "webhook_posts": sink.posts,
        }
        return res
    finally:
        stop_run(proc, (srv, sink), log, tmp)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connectors", type=int, default=10000)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--kcwatch", help="binary to measure (default: Release build in bench/.build)")
    ap.add_argument("--wrap", help="command to run kcwatch under, e.g. "
                    "'valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out' (profiling)")
    a = ap.parse_args()
    binary = a.kcwatch or kcwatch_binary()
    runs = []
    for i in range(a.runs):
        r = one_run(binary, a.connectors, a.seconds, seed=i + 1,
                    wrap=a.wrap.split() if a.wrap else None)
        print(json.dumps(r), flush=True)
        runs.append(r)
    keys = ["latency_median_s", "latency_max_s", "cpu_pct_of_core", "rss_anon_peak_mib",
            "rss_anon_end_mib"]
    summary = {k: {"median": statistics.median(r[k] for r in runs),
                   "min": min(r[k] for r in runs), "max": max(r[k] for r in runs)}
               for k in keys}
    summary["all_restarted"] = all(r["not_restarted"] == 0 and r["restarted"] >= r["failed"]
                                   for r in runs)
    print("summary " + json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
