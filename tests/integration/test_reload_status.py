#!/usr/bin/env python3
"""SIGHUP reload: a broken config is rejected with its positioned errors in the
log and the daemon keeps watching on the old one; a good config takes over.
`kcwatch status` prints the cluster's connectors and tasks (table and JSON)."""

import json
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402


def test_bad_reload_keeps_running_on_old_config():
    with Harness("reload", workers=1) as h:
        h.fake.add_connector("orders", tasks=1)
        h.start_daemon()
        with open(h.config_path) as f:
            good = f.read()
        with open(h.config_path, "w") as f:
            f.write(good + "bogus_section: 1\n")
        before = len(h.log_lines())
        h.proc.send_signal(signal.SIGHUP)
        rejected = h.wait_for(lambda: h.log_records(before, msg="reload rejected"),
                              what="the rejected reload logged")
        h.check(any("kcwatch.yaml:" in r.get("error", "") and "bogus_section" in r.get("error", "")
                    for r in rejected), "the error names file, position and key: %r" % rejected)
        h.check(h.log_records(before, msg="reload failed: keeping the running configuration"),
                "no 'keeping the running configuration' line")
        # Still watching and healing on the old config.
        h.fake.fail_task("orders", 0)
        h.wait_for(lambda: h.fake.restarts("orders"), what="a restart after the bad reload")

        # A good config (dry run now) takes over.
        h.wait_for(lambda: h.fake.task_state("orders", 0) == "RUNNING", what="recovery")
        with open(h.config_path, "w") as f:
            f.write(good.replace("dry_run: false", "dry_run: true"))
        before = len(h.log_lines())
        h.proc.send_signal(signal.SIGHUP)
        h.wait_for(lambda: h.log_records(before, msg="configuration reloaded"),
                   what="the good reload")
        restarts = len(h.fake.restarts("orders"))
        h.fake.fail_task("orders", 0, "java.lang.RuntimeException: second failure")
        h.wait_for(lambda: h.log_records(before, msg="dry run: restart not sent"),
                   what="a dry-run decision under the new config")
        h.wait_polls(10)
        h.check(len(h.fake.restarts("orders")) == restarts,
                "a restart was sent after switching to dry_run")
        h.finish()


def test_status_table_and_json():
    with Harness("status", workers=1) as h:
        h.fake.add_connector("orders", type="sink", tasks=2)
        h.fake.fail_task("orders", 1, "org.apache.kafka.connect.errors.ConnectException: boom\n"
                         "\tat x.y(Z.java:1)")
        h.write_config()
        out = subprocess.run([harness.kcwatch_bin(), "status", "-c", h.config_path],
                             capture_output=True, text=True, timeout=30)
        h.check(out.returncode == 0, "status exit %d: %s" % (out.returncode, out.stderr))
        lines = out.stdout.splitlines()
        h.check(lines and lines[0].split()[:5] == ["CLUSTER", "CONNECTOR", "TYPE", "TARGET",
                                                  "STATE"], "header: %r" % lines[:1])
        failed = [ln for ln in lines if "task 1" in ln]
        h.check(failed and "FAILED" in failed[0] and "ConnectException: boom" in failed[0],
                "failed task row with its trace's first line: %r" % lines)
        h.check(any("task 0" in ln and "RUNNING" in ln for ln in lines), "running task row")

        out = subprocess.run([harness.kcwatch_bin(), "status", "-c", h.config_path, "--json"],
                             capture_output=True, text=True, timeout=30)
        h.check(out.returncode == 0, "status --json exit %d" % out.returncode)
        doc = json.loads(out.stdout)
        cl = doc["clusters"][0]
        h.check(cl["name"] == "c1" and cl["state"] == "REACHABLE", "cluster: %r" % cl)
        conn = cl["connectors"][0]
        h.check(conn["name"] == "orders" and conn["type"] == "sink", "connector: %r" % conn)
        h.check([t["state"] for t in conn["tasks"]] == ["RUNNING", "FAILED"],
                "task states: %r" % conn["tasks"])
        h.check(conn["tasks"][1]["trace"].startswith("org.apache.kafka.connect.errors"),
                "trace in JSON")

        # Every worker down: exit 1 and UNREACHABLE, not a crash.
        h.fake.worker_down(0)
        out = subprocess.run([harness.kcwatch_bin(), "status", "-c", h.config_path],
                             capture_output=True, text=True, timeout=30)
        h.check(out.returncode == 1 and "UNREACHABLE" in out.stdout,
                "unreachable status: rc=%d %r" % (out.returncode, out.stdout))


if __name__ == "__main__":
    harness.run_tests(globals())
