#!/usr/bin/env python3
"""The status page at scale: 10,000 connectors x 2 tasks, some of them failed.

    python3 bench/statuspage/run.py [--connectors 10000] [--failed 500] [--requests 50] [--runs 3]

Starts the Connect stand-in (bench/common/static_connect.py) and kcwatch
(Release build in bench/.build unless --kcwatch names one) with the shipped
rules.d/connect-status.yaml and remediation off, so the failed tasks stay
FAILED, their alerts fire and every one of them is a held restart ("not
restarted: remediation is disabled"): the page then has a paginated
not-RUNNING list, a paginated alert list and a long hold list to sort. Once
every alert fires it requests `/` (and `/?page=2&alerts=2`) --requests
times each, one at a time, and reports

  - server_ms: the admin server's own time per request (its DEBUG "admin
    request" log line: from the request's arrival to the queued answer, so
    the collect and render on the loop, which is how long the loop is busy);
  - client_ms: the wall time of the whole HTTP exchange seen by the client;
  - the page's size.

Prints one JSON line per run and a summary with medians and spread."""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench", "common"))
from sink import start_sink  # noqa: E402
import static_connect  # noqa: E402
from build import kcwatch_binary, stop_run, wait_for, write_kcwatch_config  # noqa: E402

ADMIN_LINE = re.compile(r'msg="admin request".*path=(\S+).*duration_ms=([0-9.]+)')


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * (len(xs) - 1) + 0.5))]


def get(url):
    t0 = time.monotonic()
    with urllib.request.urlopen(url, timeout=30) as r:
        body = r.read()
        status = r.status
    return status, body, (time.monotonic() - t0) * 1000


def one_run(binary, n_conn, n_failed, n_requests, seed):
    cluster = static_connect.Cluster(n_conn, tasks=2, seed=seed)
    for _ in range(n_failed):
        cluster.fail_one()
    srv = static_connect.start(cluster)
    sink = start_sink()
    tmp = tempfile.mkdtemp(prefix="kcw-bench-page-")
    rules = os.path.join(ROOT, "rules.d", "connect-status.yaml")
    cfg, listen = write_kcwatch_config(tmp, rules, srv.server_address[1], sink.server_address[1],
                                       poll_interval="1s", log_level="debug",
                                       remediation="{enabled: false}")
    log_path = os.path.join(tmp, "kcwatch.log")
    log = open(log_path, "wb")
    proc = subprocess.Popen([binary, "run", "-c", cfg], stdin=subprocess.DEVNULL, stdout=log,
                            stderr=log, start_new_session=True)
    base = "http://%s" % listen
    try:
        def all_firing():
            try:
                with urllib.request.urlopen(base + "/api/v1/alerts", timeout=10) as r:
                    alerts = json.load(r)["data"]["alerts"]
            except OSError:
                return False
            return sum(a["state"] == "firing" for a in alerts) >= n_failed
        wait_for(all_firing, 600, "every failed task's alert to fire", proc)
        results = {}
        for name, path in (("page1", "/"), ("page2", "/?page=2&alerts=2")):
            client, size = [], 0
            log.flush()
            with open(log_path, "rb") as f:
                start = len(f.read())
            for _ in range(n_requests):
                status, body, ms = get(base + path)
                if status != 200:
                    raise RuntimeError("GET %s answered %s" % (path, status))
                client.append(ms)
                size = len(body)
            with open(log_path, "rb") as f:
                f.seek(start)
                lines = f.read().decode("utf-8", "replace").splitlines()
            server = [float(m.group(2)) for m in map(ADMIN_LINE.search, lines)
                      if m and m.group(1).strip('"').startswith("/")
                      and m.group(1).strip('"') == path.split("?")[0]]
            if len(server) < n_requests:
                raise RuntimeError("found %d admin request lines for %s, expected %d"
                                   % (len(server), path, n_requests))
            results[name] = {
                "server_ms_median": round(statistics.median(server), 2),
                "server_ms_p95": round(pct(server, 0.95), 2),
                "server_ms_max": round(max(server), 2),
                "client_ms_median": round(statistics.median(client), 2),
                "client_ms_max": round(max(client), 2),
                "bytes": size,
            }
        body = get(base + "/")[1].decode("utf-8")
        shown = re.search(r"Showing 1\u2013(\d+) of (\d+)", body)
        return {"connectors": n_conn, "tasks": 2 * n_conn, "failed": n_failed,
                "not_running_listed": int(shown.group(2)) if shown else None,
                "rows_per_page": int(shown.group(1)) if shown else None,
                **{"%s_%s" % (k, kk): vv for k, v in results.items() for kk, vv in v.items()}}
    finally:
        stop_run(proc, (srv, sink), log, tmp)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connectors", type=int, default=10000)
    ap.add_argument("--failed", type=int, default=500)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--kcwatch", help="binary to measure (default: Release build in bench/.build)")
    a = ap.parse_args()
    binary = a.kcwatch or kcwatch_binary()
    runs = []
    for i in range(a.runs):
        r = one_run(binary, a.connectors, a.failed, a.requests, seed=i + 1)
        print(json.dumps(r), flush=True)
        runs.append(r)
    keys = ["page1_server_ms_median", "page1_server_ms_max", "page1_client_ms_median",
            "page2_server_ms_median", "page1_bytes"]
    summary = {k: {"median": statistics.median(r[k] for r in runs),
                   "min": min(r[k] for r in runs), "max": max(r[k] for r in runs)}
               for k in keys}
    print("summary " + json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
