"""build.py: the kcwatch binary the benchmarks measure, and small helpers.

The benchmarks measure a Release build (-O2, no sanitizers) made in
bench/.build from the working tree, so that what is measured is what ships."""

import os
import shutil
import signal
import socket
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, "bench", ".build")


def kcwatch_binary():
    os.makedirs(BUILD, exist_ok=True)
    subprocess.run(["cmake", "-S", ROOT, "-B", BUILD, "-DCMAKE_BUILD_TYPE=Release",
                    "-DKCWATCH_TESTS=OFF"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", BUILD, "-j2", "--target", "kcwatch"], check=True,
                   stdout=subprocess.DEVNULL)
    return os.path.join(BUILD, "kcwatch")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what, proc=None, interval=0.05):
    """Waits on a condition with a deadline; raises when it does not come or
    proc exited."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("kcwatch exited (rc=%s) while waiting for %s" % (proc.returncode, what))
        if time.monotonic() > deadline:
            raise RuntimeError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


def write_kcwatch_config(tmp, rules_path, connect_port, sink_port, poll_interval="1s",
                         prometheus_url=None, remediation="{enabled: false}",
                         group_interval="5s", log_level="warn"):
    """Writes tmp/kcwatch.yaml for one Connect cluster and a webhook sink;
    returns (path, listen address of the admin API)."""
    listen = "127.0.0.1:%d" % free_port()
    prom = ("prometheus:\n  url: %s\n  timeout: 10s\n" % prometheus_url
            if prometheus_url else "")
    cfg = f"""global:
  evaluation_interval: 1s
  state_dir: {tmp}/state
  listen: {listen}
  log: {{format: logfmt, level: {log_level}}}
{prom}connect:
  - name: bench
    urls: [http://127.0.0.1:{connect_port}]
    poll_interval: {poll_interval}
    timeout: 10s
remediation: {remediation}
rule_files: [{rules_path}]
receivers:
  - name: sink
    webhook: {{url: "http://127.0.0.1:{sink_port}/hook"}}
route:
  receiver: sink
  group_by: [alertname, cluster, connector]
  group_wait: 0s
  group_interval: {group_interval}
  repeat_interval: 1h
"""
    path = os.path.join(tmp, "kcwatch.yaml")
    with open(path, "w") as f:
        f.write(cfg)
    return path, listen


def stop_run(proc, servers, log, tmp):
    """End of a run: SIGTERM kcwatch (kill after 10 s), shut the stand-in
    servers down, close the log, remove the temp dir."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for srv in servers:
        srv.shutdown()
    log.close()
    shutil.rmtree(tmp, ignore_errors=True)
