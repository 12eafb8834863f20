#!/usr/bin/env python3
"""The daemon and `kcwatch test` run one evaluation engine: the same scenario
gives the same alert transitions at the same poll/evaluation steps.

The daemon runs against the fake Connect with remediation off; a task fails,
recovers, blips, recovers. From its debug log come the schedule start S, every
changed poll (with the time it was evaluated at) and every transition
(pending, firing, resolved, with its evaluation time). The scenario is then
replayed through `kcwatch test`: each changed poll becomes a snapshot at its
time relative to S, and every transition the daemon made becomes two checks:
the state just before it (1 ms earlier) and the state at it. A rule test that
evaluated connect: rules only on the group interval, or at other times than
the daemon, fails these checks."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402

TRACE = "java.io.IOException: broken pipe"
RULES = [
    harness.connect_rule("TaskFailed", "task", "FAILED", annotations={}),
    harness.connect_rule("TaskFailedFor", "task", "FAILED", for_="2s", annotations={}),
]


def record(h, msg):
    return [r for r in (harness.parse_logfmt(x) for x in h.log_lines()) if r.get("msg") == msg]


def hold(h, seconds):
    """Lets the daemon poll and evaluate for a while (the scenario's time)."""
    end = time.monotonic() + seconds
    h.wait_for(lambda: time.monotonic() >= end, timeout=seconds + 5, what="scenario time")


def test_daemon_and_rule_test_agree():
    with Harness("engine-parity", workers=1) as h:
        h.fake.add_connector("orders", type="sink", tasks=2)
        h.start_daemon(overrides={"remediation": {"enabled": False}}, rules=RULES)
        w0 = h.fake.task_worker_id("orders", 0)
        w1 = h.fake.task_worker_id("orders", 1)
        # What the fake serves over time, in order: each change is one changed poll.
        states = ["RUNNING"]
        for state, seconds in (("FAILED", 3.5), ("RUNNING", 1.6), ("FAILED", 1.0),
                               ("RUNNING", 1.6)):
            seen = len(record(h, "connect status changed"))
            h.fake.set_task_state("orders", 1, state, TRACE if state == "FAILED" else None)
            states.append(state)
            h.wait_for(lambda: len(record(h, "connect status changed")) > seen,
                       what="the daemon to see task 1 %s" % state)
            hold(h, seconds)

        start = record(h, "rule group schedule starts")
        h.check(len(start) == 1, "one schedule start logged: %r" % start)
        S = int(start[0]["start_ms"])
        polls = [int(r["eval_ms"]) for r in record(h, "connect status changed")]
        h.check(len(polls) == len(states),
                "one changed poll per state served: %d polls for %r" % (len(polls), states))
        trans = []
        for msg in ("alert pending", "alert firing", "alert resolved"):
            for r in record(h, msg):
                trans.append((int(r["eval_ms"]), r["alertname"], msg.split()[1]))
        trans.sort()
        kinds = [(a, w) for _, a, w in trans]
        # The scenario makes every kind of transition happen.
        for want in (("TaskFailed", "firing"), ("TaskFailed", "resolved"),
                     ("TaskFailedFor", "pending"), ("TaskFailedFor", "firing"),
                     ("TaskFailedFor", "resolved")):
            h.check(want in kinds, "daemon made no %s transition: %r" % (want, trans))
        h.check(kinds.count(("TaskFailedFor", "pending")) == 2,
                "the blip is pending only: %r" % trans)

        # The daemon's state of each alert just before / at each transition.
        # A pending alert whose task recovers is dropped without a log line
        # (as in Prometheus): no alert while the poll in force says RUNNING.
        def state_at(alert, t):
            served = [st for p, st in zip(polls, states) if p <= t]
            if not served or served[-1] != "FAILED":
                return None
            st = None
            for when, a, what in trans:
                if a == alert and when <= t:
                    st = None if what == "resolved" else what
            return st

        labels = {"cluster": "c1", "connector": "orders", "task": "1", "state": "FAILED",
                  "worker_id": w1, "type": "sink", "severity": "warning",
                  "root_cause": TRACE}

        def check(t, alert):
            st = state_at(alert, t + S)
            exp = [] if st is None else [{"exp_labels": labels, "exp_state": st}]
            return {"eval_time": "%dms" % t, "alertname": alert, "exp_alerts": exp}

        def snapshot(t, state):
            task1 = {"state": state, "worker_id": w1}
            if state == "FAILED":
                task1["trace"] = TRACE
            return {"at": "%dms" % t, "clusters": {"c1": {"orders": {
                "type": "sink", "state": "RUNNING", "worker_id": w0,
                "tasks": [{"state": "RUNNING", "worker_id": w0}, task1]}}}}

        checks = []
        for when, _, _ in trans:
            for alert in ("TaskFailed", "TaskFailedFor"):
                checks.append(check(when - S - 1, alert))
                checks.append(check(when - S, alert))
        checks = [c for c in checks if int(c["eval_time"][:-2]) >= 0]
        test_file = {
            "rule_files": [h.rules_path],
            "evaluation_interval": "1s",
            "tests": [{"name": "daemon replay",
                       "connect": [snapshot(p - S, st) for p, st in zip(polls, states)],
                       "alert_rule_test": checks}],
        }
        path = h.write("replay.test.yaml", harness.to_yaml(test_file))
        out = subprocess.run([harness.kcwatch_bin(), "test", path], capture_output=True,
                             text=True, timeout=60)
        h.check(out.returncode == 0,
                "kcwatch test disagrees with the daemon (exit %d):\n%s\n%s\nfile:\n%s"
                % (out.returncode, out.stdout, out.stderr, open(path).read()))
        h.check("rule tests: 1 passed, 0 failed" in out.stdout, out.stdout)
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
