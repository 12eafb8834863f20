#!/usr/bin/env python3
"""Durable state: kill -9 at the moments that matter forgets nothing.

The real daemon against the fake Connect and the webhook sink, killed with
SIGKILL and started again on the same state_dir:
- during a receiver outage: the firing and the resolved notification of the
  episode are both delivered after the start (the outbox and the group log);
- with an alert firing: it is not paged again, and a `for` clock continues;
- between a restart request and its verification: no second restart;
- with the restart budget (2) spent: no more restarts;
- in the middle of a reload: nothing paged again, the database intact.
Also: one group a receiver rejects (conn-2) holds back no other group; a
SIGTERM keeps the queue in the outbox; a second kcwatch on the state_dir
refuses to start; `kcwatch history` reads the audit log while the daemon
runs; a corrupt database is renamed aside."""

import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness, connect_rule  # noqa: E402

# Rules that only alert (no restart): the tests decide when a task recovers.
ALERT_ONLY = [connect_rule("ConnectTaskFailed", "task", "FAILED")]


def kill9(h):
    os.killpg(h.proc.pid, signal.SIGKILL)
    h.proc.wait(5)


def start_again(h, overrides=None, rules=None):
    """Starts the daemon on the same tmp (config, state_dir) and waits until
    it has polled twice."""
    h.start_daemon(overrides, rules, wait_polls=0)
    h.wait_polls(2, what="the restarted daemon to poll")


def attempts(h, connector, status, alertname="ConnectTaskFailed"):
    """POSTs the sink got (whatever it answered) carrying this alert."""
    out = []
    for r in h.sink.received():
        p = r.payload if isinstance(r.payload, dict) else {}
        for a in p.get("alerts", []):
            lab = a.get("labels", {})
            if lab.get("connector") == connector and a.get("status") == status \
                    and lab.get("alertname") == alertname:
                out.append(r)
                break
    return out


def delivered(h, connector, status, alertname="ConnectTaskFailed"):
    return [r for r in attempts(h, connector, status, alertname) if r.delivered]


def history(h, *args):
    """`kcwatch history -c CONFIG ARGS` while the daemon runs: (rc, stdout)."""
    p = subprocess.run([harness.kcwatch_bin(), "history", "-c", h.config_path] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def history_json(h, *args):
    rc, out, err = history(h, "--json", *args)
    h.check(rc == 0, "kcwatch history failed (%d): %s" % (rc, err))
    return json.loads(out)


def restart_rows(h, connector, reason=None):
    return [r for r in history_json(h, "--since", "1h", "--connector", connector)
            if r["kind"] == "restart" and (reason is None or r["reason"] == reason)]


def fail_during_outage(h):
    """The receiver is down (503) when orders/0 fails; returns once kcwatch
    has tried to send the firing notification."""
    h.fake.add_connector("orders", tasks=1)
    h.sink.fail_matching("", 503)
    h.start_daemon(rules=ALERT_ONLY)
    h.fake.fail_task("orders", 0, harness.TASK_FAILED_TRACE)
    h.wait_for(lambda: attempts(h, "orders", "firing"), what="a firing attempt (503)")


def test_outage_kill9_delivers_firing_and_resolved():
    """The receiver is down while the task fails and recovers; kill -9; after
    the start both the firing and the resolved notification arrive."""
    with Harness("dur-outage") as h:
        fail_during_outage(h)
        h.fake.set_task_state("orders", 0, "RUNNING")
        h.wait_for(lambda: h.log_records(msg="alert resolved"), what="the alert to resolve")
        h.wait_polls(5)  # > group_interval: the resolution is flushed into the outbox
        kill9(h)
        h.check(not delivered(h, "orders", "firing"), "nothing can have been delivered yet")
        h.sink.clear_failures()
        start_again(h, rules=ALERT_ONLY)
        h.wait_for(lambda: delivered(h, "orders", "firing") and
                   delivered(h, "orders", "resolved"),
                   what="the firing and the resolved notification after the start")
        restored = h.log_records(msg="notifier state restored")
        h.check(restored and int(restored[0].get("queued", "0")) >= 1,
                "the queued notifications were not restored from the outbox")
        h.finish()


def test_recovered_while_dead_still_resolves():
    """kill -9 with the firing notification undelivered; the task recovers
    while kcwatch is down; after the start the firing (outbox) and the
    resolution (restored alert state + group log) are both delivered."""
    with Harness("dur-dead") as h:
        fail_during_outage(h)
        kill9(h)
        h.fake.set_task_state("orders", 0, "RUNNING")
        h.sink.clear_failures()
        start_again(h, rules=ALERT_ONLY)
        h.wait_for(lambda: delivered(h, "orders", "firing") and
                   delivered(h, "orders", "resolved"),
                   what="the firing and the resolved notification after the start")
        h.finish()


def test_kill9_no_repage_and_for_continues():
    """A firing alert is not paged again after kill -9 (repeat_interval 1h),
    and a pending alert's `for` clock continues from where it was."""
    rules = [connect_rule("TaskFailedNow", "task", "FAILED"),
             connect_rule("TaskFailedFor6s", "task", "FAILED", for_="6s")]
    over = {"global": {"evaluation_interval": "500ms"}}
    with Harness("dur-for") as h:
        h.fake.add_connector("orders", tasks=1)
        h.start_daemon(over, rules)
        t0 = time.monotonic()
        h.fake.fail_task("orders", 0, harness.TASK_FAILED_TRACE)
        h.wait_for(lambda: delivered(h, "orders", "firing", "TaskFailedNow"),
                   what="TaskFailedNow delivered")
        h.wait_for(lambda: h.log_records(msg="alert pending", alertname="TaskFailedFor6s"),
                   what="TaskFailedFor6s pending")
        # Wait until about half of `for` has passed (the fake's polls are the clock).
        h.wait_for(lambda: time.monotonic() - t0 >= 3.0, what="3 s of `for`", interval=0.1)
        kill9(h)
        t_start = time.monotonic()
        start_again(h, over, rules)
        h.wait_for(lambda: delivered(h, "orders", "firing", "TaskFailedFor6s"), timeout=20,
                   what="TaskFailedFor6s to fire")
        t_fire = delivered(h, "orders", "firing", "TaskFailedFor6s")[0].time
        h.check(t_fire - t0 >= 5.5, "fired %.2fs after the failure; for is 6s" % (t_fire - t0))
        h.check(t_fire < t_start + 5.0,
                "fired %.2fs after the start: the for clock restarted instead of continuing "
                "(failure was %.2fs before the start)" % (t_fire - t_start, t_start - t0))
        h.wait_polls(15)
        n = len(delivered(h, "orders", "firing", "TaskFailedNow"))
        h.check(n == 1, "TaskFailedNow was paged %d times; the restart re-paged it" % n)
        h.finish()


def test_kill9_between_restart_and_verification():
    """kill -9 after the restart request was answered, before its verdict:
    the next run waits for the verdict instead of restarting again."""
    with Harness("dur-verify", fake_kwargs={"restart_process_delay": 3.0}) as h:
        h.fake.add_connector("orders", tasks=1)
        over = {"remediation": {"verify_timeout": "20s"}}
        h.start_daemon(over)
        h.fake.fail_task("orders", 0, harness.TASK_FAILED_TRACE)
        h.wait_for(lambda: restart_rows(h, "orders", "sent"),
                   what="the restart in the audit log (read while the daemon runs)")
        kill9(h)
        h.check(len(h.fake.restarts("orders")) == 1, "expected one restart before the kill")
        start_again(h, over)
        h.wait_for(lambda: h.fake.task_state("orders", 0) == "RUNNING", timeout=20,
                   what="the task to recover")
        h.wait_for(lambda: restart_rows(h, "orders", "recovered"),
                   what="the verdict (recovered) after the start")
        h.wait_polls(10)
        n = len(h.fake.restarts("orders"))
        h.check(n == 1, "%d restarts: the restarted daemon restarted again instead of "
                        "verifying" % n)
        sent = restart_rows(h, "orders", "sent")[0]
        # scope failed: one connector-level KIP-745 request (task null)
        h.check(sent["rule"] == "ConnectTaskFailed" and sent["task"] is None,
                "audit row: %r" % sent)
        h.check(sent["request"].startswith("POST http://") and
                "/connectors/orders/restart?includeTasks=true&onlyFailed=true" in sent["request"],
                "exact request in the audit row: %r" % sent["request"])
        h.check(sent["http_status"] == 202 and "ConnectException" in (sent["trace"] or ""),
                "response and trace in the audit row: %r" % sent)
        rc, table, _ = history(h, "--connector", "orders")
        h.check(rc == 0 and "ConnectTaskFailed" in table and "recovered" in table,
                "history table:\n%s" % table)
        rc, table, _ = history(h, "--connector", "other-.*")
        h.check(rc == 0 and "orders" not in table, "--connector did not filter:\n%s" % table)
        rc, _, err = history(h, "--since", "yesterday")
        h.check(rc == 2 and "--since yesterday: not a duration" in err, "bad --since: %s" % err)
        h.finish()


def test_budget_spent_stays_spent_after_kill9():
    """budget 2, both spent, kill -9, start: no 3rd restart, no re-page."""
    over = {"global": {"evaluation_interval": "200ms"},
            "remediation": {"backoff": {"initial": "300ms", "max": "1s", "multiplier": 2,
                                        "jitter": 0},
                            "budget": {"max_restarts": 2, "window": "1h"}}}
    with Harness("dur-budget") as h:
        h.fake.add_connector("flaky", tasks=1)
        h.start_daemon(over)
        h.fake.set_restart_outcome("flaky", "fail_again", trace="new")
        h.fake.fail_task("flaky", 0, harness.TASK_FAILED_TRACE)
        h.wait_alert("KcwatchRestartBudgetExhausted", "firing", {"connector": "flaky"},
                     timeout=30)
        h.check(len(h.fake.restarts("flaky")) == 2, "restarts: %r" % h.fake.restarts("flaky"))
        # Delivery is at-least-once: a kill between the receiver's 2xx and the
        # commit that records it would page again. Kill once it is recorded.
        h.wait_for(lambda: [r for r in history_json(h, "--since", "1h")
                            if r["kind"] == "notification" and r.get("http_status") == 200
                            and "KcwatchRestartBudgetExhausted" in (r.get("group") or "")],
                   what="the budget page recorded as delivered")
        kill9(h)
        start_again(h, over)
        h.wait_polls(30)  # >= 6 s: a new run would have restarted twice by now
        n = len(h.fake.restarts("flaky"))
        h.check(n == 2, "%d restarts after the start: the spent budget was forgotten" % n)
        pages = h.sink.find_alerts("KcwatchRestartBudgetExhausted", "firing",
                                   {"connector": "flaky"})
        h.check(len(pages) == 1, "budget alert paged %d times" % len(pages))
        h.finish()


def test_kill9_during_reload():
    """SIGHUP and kill -9 right after: the next start re-pages nothing and
    the database is intact."""
    with Harness("dur-reload") as h:
        h.fake.add_connector("orders", tasks=1)
        h.start_daemon(rules=ALERT_ONLY)
        h.fake.fail_task("orders", 0, harness.TASK_FAILED_TRACE)
        h.wait_for(lambda: delivered(h, "orders", "firing"), what="the firing notification")
        h.write_config({"global": {"evaluation_interval": "700ms"}}, ALERT_ONLY)
        os.kill(h.proc.pid, signal.SIGHUP)
        h.wait_for(lambda: h.log_records(msg="SIGHUP: reloading configuration"),
                   what="the reload to begin", interval=0.005)
        kill9(h)
        start_again(h, {"global": {"evaluation_interval": "700ms"}}, ALERT_ONLY)
        h.wait_polls(15)
        n = len(delivered(h, "orders", "firing"))
        h.check(n == 1, "paged %d times after a kill during reload" % n)
        h.check(not h.log_records(msg="state store: the state database is unreadable; renamed "
                                      "it aside and starting with fresh state"),
                "the database was damaged")
        h.check(h.log_records(msg="alert state restored"), "no alert state restored")
        h.finish()


def test_rejected_group_blocks_no_other():
    """A receiver answers 500 only for bodies naming conn-2: conn-3's and
    conn-4's firing and resolved notifications are delivered meanwhile."""
    with Harness("dur-conn2") as h:
        for c in ("conn-2", "conn-3", "conn-4"):
            h.fake.add_connector(c, tasks=1)
        h.sink.fail_matching("conn-2", 500)
        h.start_daemon(rules=ALERT_ONLY)
        for c in ("conn-2", "conn-3", "conn-4"):
            h.fake.fail_task(c, 0, harness.TASK_FAILED_TRACE)
        h.wait_for(lambda: delivered(h, "conn-3", "firing") and delivered(h, "conn-4", "firing"),
                   timeout=10, what="conn-3 and conn-4 firing delivered")
        h.fake.set_task_state("conn-3", 0, "RUNNING")
        h.fake.set_task_state("conn-4", 0, "RUNNING")
        h.wait_for(lambda: delivered(h, "conn-3", "resolved") and
                   delivered(h, "conn-4", "resolved"),
                   timeout=10, what="conn-3 and conn-4 resolved delivered")
        h.wait_for(lambda: len(attempts(h, "conn-2", "firing")) >= 2,
                   what="conn-2 to be retried on its own schedule")
        h.check(not delivered(h, "conn-2", "firing"), "the sink never accepts conn-2")
        h.finish()


def test_sigterm_keeps_the_queue():
    with Harness("dur-sigterm") as h:
        fail_during_outage(h)
        h.proc.send_signal(signal.SIGTERM)
        h.check(h.proc.wait(5) == 0, "SIGTERM exit status")
        kept = h.log_records(msg="notifier closed; undelivered notifications kept in the outbox "
                                 "for the next start")
        h.check(kept and kept[0]["kept"] == "1", "queue not kept: %r" % kept)
        h.check(not h.log_records(msg="notifier closed with undelivered notifications"),
                "notifications were dropped on SIGTERM")
        h.sink.clear_failures()
        start_again(h, rules=ALERT_ONLY)
        h.wait_for(lambda: delivered(h, "orders", "firing"), what="the kept notification")
        h.finish()


def test_second_instance_refused():
    with Harness("dur-lock") as h:
        h.start_daemon()
        p = subprocess.run([harness.kcwatch_bin(), "run", "-c", h.config_path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        err = p.stderr.decode()
        h.check(p.returncode != 0, "a second kcwatch started on the same state_dir")
        h.check("another kcwatch uses this state directory" in err and
                ("pid %d" % h.proc.pid) in err, "refusal message: %s" % err)
        h.check(h.alive(), "the first kcwatch died")
        h.finish()


def test_corrupt_database_renamed_aside():
    with Harness("dur-corrupt") as h:
        h.fake.add_connector("orders", tasks=1)
        state = os.path.join(h.tmp, "state")
        os.makedirs(state)
        with open(os.path.join(state, "kcwatch.db"), "wb") as f:
            f.write(b"definitely not an SQLite database\n" * 200)
        h.start_daemon()
        h.check(h.log_records(msg="state store: the state database is unreadable; renamed it "
                                  "aside and starting with fresh state"),
                "no loud error about the corrupt database")
        h.check(any(n.startswith("kcwatch.db.corrupt-") for n in os.listdir(state)),
                "the corrupt database was not kept aside: %r" % os.listdir(state))
        h.fake.fail_task("orders", 0, harness.TASK_FAILED_TRACE)
        h.wait_for(lambda: h.fake.restarts("orders"), what="a restart (still healing)")
        h.wait_for(lambda: restart_rows(h, "orders", "sent"), what="the audit row")
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
