#!/usr/bin/env python3
"""demo.py: kcwatch healing a failed Kafka Connect task, end to end, in one terminal.

Starts a simulated two-worker Connect cluster (tests/fakes/fake_connect.py,
which follows the real REST API's shapes and restart semantics), a webhook
receiver, and the real kcwatch daemon with the shipped rules
(rules.d/connect-status.yaml). Then a task fails. The terminal shows what
kcwatch logs, the restart request the cluster received, the task's recovery,
and the firing and resolved notifications the webhook received. Exits 0 when
all of that happened, 1 (with the daemon's log) when something did not within
the deadline.

Every port is picked free (the simulated workers and the webhook receiver
bind port 0, the admin API a port free at start), so the demo runs beside a
kcwatch already on 9464. Whatever ends it (success, failure, Ctrl-C,
SIGTERM, SIGHUP), it stops the daemon and the simulators and removes its
temporary directory (--keep keeps it, for a look at the state database).
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakes"))

from fake_connect import FakeConnectCluster  # noqa: E402
from webhook_sink import WebhookSink  # noqa: E402

TRACE = ("org.apache.kafka.connect.errors.ConnectException: sink write failed: "
         "connection reset by database\n"
         "\tat com.acme.OrdersSinkTask.put(OrdersSinkTask.java:88)\n"
         "\tat org.apache.kafka.connect.runtime.WorkerSinkTask.deliverMessages(WorkerSinkTask.java:601)\n")

BOLD, DIM, GREEN, RED, YELLOW, RESET = "\033[1m", "\033[2m", "\033[32m", "\033[31m", "\033[33m", "\033[0m"
if not sys.stdout.isatty():
    BOLD = DIM = GREEN = RED = YELLOW = RESET = ""


def say(color, text):
    print("%s%s%s" % (color, text, RESET), flush=True)


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise TimeoutError(what)


def free_port():
    """A loopback port free right now (kcwatch binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stop(Exception):
    """A signal asked the demo to end: cleanup still runs."""


def on_signal(signum, frame):
    raise Stop(signal.Signals(signum).name)


def write_config(tmp, cluster, sink, admin_port):
    rules = os.path.join(ROOT, "rules.d", "connect-status.yaml")
    cfg = """\
admin:
  listen: 127.0.0.1:{admin_port}
global:
  evaluation_interval: 1s
  state_dir: {tmp}/state
  log: {{format: logfmt, level: info}}
connect:
  - name: demo
    urls: [{urls}]
    poll_interval: 500ms
    timeout: 5s
remediation:
  enabled: true
  backoff: {{initial: 5s, max: 5m, multiplier: 2, jitter: 0.2}}
  budget: {{max_restarts: 5, window: 1h}}
  # RUNNING this long after the restart counts as healed and resolves the
  # alert (production: minutes; the demo has no time for that)
  stable_period: 3s
rule_files: [{rules}]
receivers:
  - name: oncall-webhook
    webhook: {{url: {hook}}}
route:
  receiver: oncall-webhook
  group_by: [alertname, cluster, connector]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 4h
""".format(tmp=tmp, urls=", ".join(cluster.urls), rules=rules, hook=sink.url + "/hook",
           admin_port=admin_port)
    path = os.path.join(tmp, "kcwatch.yaml")
    with open(path, "w") as f:
        f.write(cfg)
    return path


def pump_log(proc, lines):
    for raw in proc.stderr:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        lines.append(line)
        print("%s  kcwatch | %s%s" % (DIM, line, RESET), flush=True)


def show_notification(alert):
    labels = alert.get("labels", {})
    ann = alert.get("annotations", {})
    status = alert.get("status")
    color = RED if status == "firing" else GREEN
    say(color + BOLD, "  webhook received [%s] %s %s/%s task %s" % (
        status.upper(), labels.get("alertname"), labels.get("cluster"),
        labels.get("connector"), labels.get("task", "-")))
    if labels.get("remediation"):
        say(color, "      remediation label: %s" % labels["remediation"])
    for key in ("summary", "remediation"):
        if ann.get(key):
            say(color, "      %s: %s" % (key, ann[key]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kcwatch", default=os.path.join(ROOT, "build", "kcwatch"))
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    if not os.access(args.kcwatch, os.X_OK):
        sys.exit("demo: no kcwatch binary at %s (build it first)" % args.kcwatch)

    # The cleanup below runs however the demo ends (the trap).
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_signal)
    cluster = sink = proc = None
    tmp = tempfile.mkdtemp(prefix="kcwatch-demo-")
    lines = []
    ok = False
    try:
        cluster = FakeConnectCluster(workers=2, version="3.8.0", restart_process_delay=0.5,
                                     restarting_delay=0.5).start()
        sink = WebhookSink().start()
        cluster.add_connector("orders-sink", type="sink", tasks=2)
        cluster.add_connector("users-source", type="source", tasks=1)
        admin_port = free_port()
        cfg = write_config(tmp, cluster, sink, admin_port)
        say(BOLD, "== A Connect cluster with 2 workers (%s): orders-sink (2 tasks), users-source"
            % ", ".join(cluster.urls))
        say(BOLD, "== Starting kcwatch with the shipped rules: %s run -c %s" % (args.kcwatch, cfg))
        proc = subprocess.Popen([args.kcwatch, "run", "-c", cfg], stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        say(BOLD, "== kcwatch (pid %d) serves its admin API on http://127.0.0.1:%d"
            % (proc.pid, admin_port))
        threading.Thread(target=pump_log, args=(proc, lines), daemon=True).start()
        wait_for(lambda: cluster.poll_count() >= 2, args.timeout, "kcwatch polling the cluster")

        say(YELLOW + BOLD, "\n== Task orders-sink/1 fails (a sink write error)")
        failed_at = time.monotonic()
        cluster.fail_task("orders-sink", 1, TRACE)

        restart = wait_for(lambda: cluster.restarts("orders-sink"), args.timeout,
                           "a restart request")[0]
        say(BOLD, "== The cluster received %s %s%s after %.1f s" % (
            restart.method, restart.path,
            ("?" + "&".join("%s=%s" % (k, v[0]) for k, v in sorted(restart.query.items())))
            if restart.query else "", time.monotonic() - failed_at))

        wait_for(lambda: cluster.task_state("orders-sink", 1) == "RUNNING", args.timeout,
                 "the task running again")
        say(GREEN + BOLD, "== orders-sink/1 is RUNNING again after %.1f s"
            % (time.monotonic() - failed_at))

        # heal_wait: the first notification waits for the restart's verdict.
        # The restart worked, so nobody is paged: one message, resolved,
        # labelled remediation="healed".
        wait_for(lambda: sink.find_alerts("ConnectTaskFailed", "resolved"), args.timeout,
                 "the healed notification")
        for _, a in sink.find_alerts("ConnectTaskFailed", "resolved")[:1]:
            show_notification(a)
        if sink.find_alerts("ConnectTaskFailed", "firing"):
            raise AssertionError("a firing notification for a task the restart fixed")
        healed = [a for _, a in sink.find_alerts("ConnectTaskFailed", "resolved")
                  if a.get("labels", {}).get("remediation") == "healed"]
        if not healed:
            raise AssertionError("the resolved notification is not labelled remediation=healed")
        if sink.violations:
            raise AssertionError("webhook payloads broke the Alertmanager format: %s"
                                 % sink.violations)
        restarts = cluster.restarts("orders-sink")
        say(GREEN + BOLD, "\n== Healed: %d restart request, 1 notification (healed, no page), "
            "%.1f s from failure to that notification." % (len(restarts),
                                                           time.monotonic() - failed_at))
        ok = True
    except (TimeoutError, AssertionError) as e:
        say(RED + BOLD, "demo failed: waiting for %s" % e)
    except Stop as e:
        say(YELLOW + BOLD, "demo stopped by %s" % e)
    finally:
        # Signals arriving during cleanup must not cut it short.
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if sink:
            sink.stop()
        if cluster:
            cluster.stop()
        if args.keep:
            say(DIM, "demo: kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if proc and proc.returncode not in (0, None) and ok:
        say(RED, "kcwatch exited with status %d" % proc.returncode)
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
