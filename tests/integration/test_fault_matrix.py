#!/usr/bin/env python3
"""The fault matrix (tests/FAULTS.md): each peer behind fault_proxy.py, each
fault as an episode. In every cell kcwatch keeps running, logs the episode
once (the WARN/ERROR lines about that peer stay few however long it lasts),
marks the peer down in /metrics (kcwatch_connect_up 0, kcwatch_prometheus_up
0 or its error count rising, the receiver's failure count rising), acts on
no partial data, and recovers by itself once the fault is cleared (and
/metrics says the peer is up again).

Peers here: Connect (a fake Connect worker), the webhook receiver (the
webhook sink), Prometheus (the real binary); the Slack, PagerDuty,
Alertmanager and etcd rows are in test_fault_matrix_<peer>.py, the
receivers' through receiver_faults() below. Each episode lasts several requests
against the fault; recovery is proven by fresh work done after it (a restart
sent, a notification delivered, a rule evaluated healthy again)."""

import json
import os
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "fakes"))
import harness  # noqa: E402
import prom_harness  # noqa: E402
from harness import Harness  # noqa: E402
from fault_proxy import FaultProxy  # noqa: E402
from test_metrics import scrape, value  # noqa: E402

# fault name -> set_fault keyword arguments
FAULTS = [
    ("refused", {}),
    ("reset", {}),
    ("slow", {"delay": 4.0}),
    ("status", {"status": 500}),
    ("status", {"status": 409}),
    ("status", {"status": 429, "retry_after": 1}),
    ("malformed", {}),
    ("truncated", {}),
    ("huge", {}),
    ("endless", {}),
    ("redirect", {}),
]
# Lines about one peer during one episode: first failure, maybe a change of
# wording (unreachable -> reachable again), never one per request.
MAX_EPISODE_LINES = 2


def cell(fault, kw):
    return fault + ("(%s)" % kw["status"] if fault == "status" else "")


def metric(h, name, **labels):
    """The sample's value on /metrics now (0 when the series is absent)."""
    return value(scrape(h)[1], name, **labels) or 0.0


def loud_lines(h, start, pred):
    return [r for r in (harness.parse_logfmt(l) for l in h.log_lines()[start:])
            if r.get("level") in ("warn", "error") and pred(r)]


def test_connect_faults():
    with Harness("faults-connect", workers=1) as h:
        h.fake.add_connector("orders", tasks=2)
        proxy = FaultProxy(h.fake.urls[0]).start()
        try:
            h.start_daemon({"connect": [{"name": "c1", "urls": [proxy.url],
                                         "poll_interval": "200ms", "timeout": "1s"}],
                            "remediation": {"budget": {"max_restarts": 100, "window": "1h"}}})
            for fault, kw in FAULTS:
                name = cell(fault, kw)
                start = len(h.log_lines())
                deliveries = len(h.sink.deliveries())
                errors0 = metric(h, "kcwatch_connect_polls_total", cluster="c1", result="error")
                proxy.set_fault(fault, **kw)
                t0 = time.monotonic()
                # While the fault lasts, a task fails: only fresh, whole data
                # may show it, so no restart may be sent and no alert for it
                # may fire.
                h.fake.fail_task("orders", 0)
                h.wait_for(lambda: time.monotonic() - t0 > 3 and (
                    fault == "refused" or len(proxy.faulted()) >= 3),
                    what="%s: an episode of several failed polls" % name)
                h.check(h.alive(), "%s: the daemon died" % name)
                # Marked down: the cluster's up gauge 0, its failed polls counted.
                h.wait_for(lambda: metric(h, "kcwatch_connect_up", cluster="c1") == 0,
                           what="%s: kcwatch_connect_up{cluster=c1} 0" % name)
                h.check(metric(h, "kcwatch_connect_polls_total", cluster="c1",
                               result="error") > errors0,
                        "%s: no failed poll counted in /metrics" % name)
                h.check(not h.fake.restarts("orders"), "%s: restart sent on partial data" % name)
                fired = h.sink.find_alerts("ConnectTaskFailed", "firing", {"connector": "orders"})
                h.check(not [d for d, _ in fired if d.index >= deliveries],
                        "%s: alert fired from data kcwatch could not read" % name)
                loud = loud_lines(h, start, lambda r: r.get("cluster") == "c1")
                h.check(len(loud) <= MAX_EPISODE_LINES,
                        "%s: %d warn/error lines for one episode:\n%s"
                        % (name, len(loud), "\n".join(map(str, loud))))
                proxy.clear()
                h.wait_for(lambda: h.fake.restarts("orders")
                           and h.fake.task_state("orders", 0) == "RUNNING",
                           timeout=30, what="%s: recovery (the FAILED task restarted)" % name)
                h.wait_for(lambda: metric(h, "kcwatch_connect_up", cluster="c1") == 1,
                           what="%s: kcwatch_connect_up{cluster=c1} 1 again" % name)
                h.fake.clear_requests()
                print("  connect x %-10s ok: %d faulted requests, %d loud lines"
                      % (name, len(proxy.faulted()), len(loud)))
                proxy.records.clear()
            h.finish()
        finally:
            proxy.stop()


REJECTED = "notification rejected, dropped"
CONFIG_ERROR = "notification rejected: configuration error, not retried"


def receiver_faults(h, proxy, receiver, delivered, final=None, resends=False, during=None,
                    label="receiver", config_error=None):
    """Runs every fault of FAULTS against one receiver whose peer sits behind
    proxy, in the daemon h already runs (remediation off, so each task stays
    FAILED; a new connector failing per episode makes a new group).

    delivered(conn): truthy once the peer holds a firing notification about
    connector conn. final(fault, kw): the fault's answer is final for this
    receiver (dropped with one error line, never retried); default: 3xx and
    409, as for a webhook. resends: the receiver sends firing alerts again
    (Alertmanager), so every cell must end with the alert delivered.
    during(name, conn): extra checks while the fault lasts. config_error(fault,
    kw): a final answer this receiver calls a configuration error (Slack and
    PagerDuty 4xx), logged as such; other final answers are plain
    rejections."""
    if final is None:
        final = lambda fault, kw: fault == "redirect" or kw.get("status") == 409  # noqa: E731
    for i, (fault, kw) in enumerate(FAULTS):
        name = cell(fault, kw)
        conn = "c%02d" % i
        h.fake.add_connector(conn, tasks=1)
        start = len(h.log_lines())
        failures0 = metric(h, "kcwatch_notifications_total", receiver=receiver,
                           result="failure")
        proxy.set_fault(fault, **kw)
        t0 = time.monotonic()
        h.fake.fail_task(conn, 0)
        # A 200 whose body is not what the peer speaks is a delivery
        # (receivers' bodies mean nothing); any other cell keeps failing.
        is_final = final(fault, kw)
        h.wait_for(lambda: time.monotonic() - t0 > 2 and (
            fault in ("refused", "malformed")
            or len(proxy.faulted()) >= (1 if is_final else 3)),
            timeout=40, what="%s: failed deliveries" % name)
        h.check(h.alive(), "%s: the daemon died" % name)
        if during:
            during(name, conn)
        loud = loud_lines(h, start, lambda r: r.get("receiver") == receiver)
        h.check(len(loud) <= MAX_EPISODE_LINES,
                "%s: %d warn/error lines for one episode:\n%s"
                % (name, len(loud), "\n".join(map(str, loud))))
        if fault != "malformed":
            # Marked down: every failed attempt counted for the receiver.
            h.wait_for(lambda: metric(h, "kcwatch_notifications_total", receiver=receiver,
                                      result="failure") > failures0,
                       what="%s: the receiver's failures counted in /metrics" % name)
        if fault not in ("refused", "malformed"):
            h.check(not delivered(conn), "%s: delivered through the fault" % name)
        proxy.clear()

        def settled():
            if delivered(conn):
                return "delivered"
            if resends:
                return None  # the next send must reach the peer
            if [r for r in h.log_records(start, msg="notification sent", receiver=receiver)
                    if 'connector="%s"' % conn in r.get("group", "")]:
                return "accepted by the fault's 200"
            for msg in (REJECTED, CONFIG_ERROR):
                if h.log_records(start, msg=msg, receiver=receiver):
                    return "rejected"
            return None
        how = h.wait_for(settled, timeout=90, what="%s: delivered or dropped" % name)
        if how == "rejected":
            want = CONFIG_ERROR if config_error and config_error(fault, kw) else REJECTED
            h.check(h.log_records(start, msg=want, receiver=receiver),
                    "%s: not logged as %r" % (name, want))
            # Final answers are dropped, as in Alertmanager: the next
            # notification proves the receiver is used again.
            h.fake.add_connector(conn + "-next", tasks=1)
            h.fake.fail_task(conn + "-next", 0)
            h.wait_for(lambda: delivered(conn + "-next"), timeout=30,
                       what="%s: the next notification delivered" % name)
        print("  %s x %-10s ok: %s; %d faulted requests, %d loud lines"
              % (label, name, how, len(proxy.faulted()), len(loud)))
        proxy.records.clear()


def receiver_config(receiver):
    """Overrides for a daemon whose only receiver is `receiver` (a dict)."""
    return {"remediation": {"enabled": False}, "receivers": [receiver],
            "route": {"receiver": receiver["name"], "group_interval": "1h"}}


def fake_receiver_row(name, fake, receiver, delivered, **kw):
    """The row of a receiver whose peer is a fake (a WebhookSink): fake
    behind the proxy; receiver(proxy_url) is its configuration (a dict with
    its name); delivered(fake, conn) and kw as for receiver_faults. The
    fake must have seen no message that breaks its format."""
    with Harness("faults-" + name, workers=1) as h, fake:
        proxy = FaultProxy(fake.url).start()
        try:
            conf = receiver(proxy.url)
            h.start_daemon(receiver_config(conf))
            receiver_faults(h, proxy, conf["name"], lambda conn: delivered(fake, conn),
                            label=name, **kw)
            h.check(not fake.violations, fake.violations)
            h.finish()
        finally:
            proxy.stop()


def test_webhook_faults():
    with Harness("faults-webhook", workers=1) as h:
        h.fake.add_connector("orders", tasks=1)
        h.fake.add_connector("billing", tasks=1)
        proxy = FaultProxy(h.sink.url).start()
        try:
            h.start_daemon(receiver_config({"name": "hook", "webhook": {
                "url": proxy.url + "/hook", "timeout": "1s"}}))
            receiver_faults(h, proxy, "hook", lambda conn: h.sink.find_alerts(
                "ConnectTaskFailed", "firing", {"connector": conn}), label="webhook")
            h.finish()
        finally:
            proxy.stop()


PROM_RULES = """groups:
  - name: prom
    interval: 1s
    rules:
      - alert: AlwaysOn
        expr: vector(1)
        labels: {severity: info}
"""


def rule_health(h):
    listen = h.config["global"]["listen"]
    with urllib.request.urlopen("http://%s/api/v1/rules" % listen, timeout=5) as r:
        doc = json.load(r)
    for g in doc["data"]["groups"]:
        for rule in g["rules"]:
            if rule.get("name") == "AlwaysOn":
                return rule.get("health"), rule.get("lastError", "")
    return None, ""


def test_prometheus_faults():
    prom_harness.prometheus_bin()
    with Harness("faults-prom", workers=1) as h:
        prom = proxy = None
        try:
            prom = prom_harness.PrometheusServer(h.tmp, [], []).start()
            proxy = FaultProxy(prom.url).start()
            rules = h.write("prom-rules.yaml", PROM_RULES)
            h.start_daemon({"prometheus": {"url": proxy.url, "timeout": "1s"},
                            "rule_files": [h.rules_path, rules]})
            h.wait_for(lambda: rule_health(h)[0] == "ok", what="the PromQL rule healthy")
            h.wait_alert("AlwaysOn", "firing")
            for fault, kw in FAULTS:
                name = cell(fault, kw)
                start = len(h.log_lines())
                resolved0 = len(h.sink.find_alerts("AlwaysOn", "resolved"))
                errors0 = metric(h, "kcwatch_prometheus_queries_total", result="error")
                proxy.set_fault(fault, **kw)
                h.wait_for(lambda: rule_health(h)[0] == "err", timeout=20,
                           what="%s: the rule's health err" % name)
                h.wait_for(lambda: fault == "refused" or len(proxy.faulted()) >= 3, timeout=30,
                           what="%s: several failed evaluations" % name)
                h.check(h.alive(), "%s: the daemon died" % name)
                # Marked down: its failed queries counted, and
                # kcwatch_prometheus_up 0 (no cell answers as Prometheus
                # does; a query error of its own API would count as up).
                h.check(metric(h, "kcwatch_prometheus_queries_total", result="error") > errors0,
                        "%s: no failed query counted in /metrics" % name)
                up = metric(h, "kcwatch_prometheus_up")
                h.check(up == 0, "%s: kcwatch_prometheus_up %r, not 0" % (name, up))
                # A failed evaluation leaves the alert as it was (Prometheus
                # does the same): no resolve from a missing answer.
                h.check(len(h.sink.find_alerts("AlwaysOn", "resolved")) == resolved0,
                        "%s: the alert resolved on a failed query" % name)
                loud = loud_lines(h, start, lambda r: r.get("rule") == "AlwaysOn")
                h.check(len(loud) <= MAX_EPISODE_LINES,
                        "%s: %d warn/error lines for one episode:\n%s"
                        % (name, len(loud), "\n".join(map(str, loud))))
                err = rule_health(h)[1]
                proxy.clear()
                h.wait_for(lambda: rule_health(h)[0] == "ok", timeout=20,
                           what="%s: the rule healthy again" % name)
                h.wait_for(lambda: metric(h, "kcwatch_prometheus_up") == 1,
                           what="%s: kcwatch_prometheus_up 1 again" % name)
                print("  prometheus x %-10s ok: up %d during; lastError %r"
                      % (name, up, err[:80]))
                proxy.records.clear()
            h.finish()
        finally:
            if proxy is not None:
                proxy.stop()
            if prom is not None:
                prom.close()


if __name__ == "__main__":
    harness.run_tests(globals())
