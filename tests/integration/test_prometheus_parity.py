#!/usr/bin/env python3
"""kcwatch evaluates PromQL rules exactly as Prometheus does, and rides out a
Prometheus outage.

One rule file, in pure Prometheus format and written in the style of
rules.d/connect-jmx.yaml, is loaded by a real Prometheus (/usr/bin/prometheus,
own config and TSDB in a temp dir, on a free loopback port, scraping a fake
JMX exporter every second and evaluating every second) AND by kcwatch (which
sends the same exprs to that Prometheus, evaluation_interval 1s, watching a
fake Connect cluster as usual). The exporter's values are then changed so
that some alerts fire, one goes pending (for: 1h) and one rule stays inactive.

1. Parity: GET /api/v1/alerts of both list the same alerts with the same
   labels (rule labels, a templated one included), annotations (humanize,
   humanizePercentage, raw $value) and states; GET /api/v1/rules the same
   groups, rules, queries, durations, labels, annotations, states and health.
   Only these differ, unavoidably:
   - activeAt: each evaluator stamps an alert with the time of its own
     evaluation that first saw it; the two 1 s loops are not aligned and both
     wait for a scrape, so the stamps are compared within a tolerance.
   - value of the increase() rule: increase() extrapolates to the evaluation
     timestamp, so two evaluators at different instants get different values
     from the same samples (that rule's annotations do not print $value).
     Values of the rules on plain gauges must be equal to the digit.
   - lastEvaluation / evaluationTime: timings.
2. Outage: Prometheus is stopped. Every rule of kcwatch's group turns health
   "err" with a lastError; the daemon stays up, its alerts stay exactly as
   they were (no flapping to resolved, no new activeAt) over several failed
   evaluations (kcwatch_rule_evaluation_failures_total is the clock).
3. Recovery: Prometheus starts again on the same port and data dir; kcwatch's
   rules turn "ok", the alerts keep their activeAt, parity holds again.

Prometheus missing is a failure, not a skip: CI installs it
(packaging/install-deps.sh).
"""

import os
import re
import sys
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import prom_harness  # noqa: E402
from harness import Harness  # noqa: E402
from jmx_exporter import JmxExporter  # noqa: E402  (tests/fakes is on the path)

GROUP = "connect-jmx-parity"
PARITY_TIMEOUT = max(40.0, 2 * harness.DEFAULT_TIMEOUT)
# activeAt of the same alert may differ by up to about two evaluation
# intervals plus a scrape interval (1 s each); slow sanitizer builds add more.
ACTIVE_AT_TOLERANCE = 5.0
# Rules whose value depends on the evaluation instant (see the docstring).
INSTANT_DEPENDENT = {"KafkaConnectDeadLetterQueueWrites"}

ERRORS = "kafka_connect_task_error_metrics_total_record_errors_total"
COMMIT_FAIL = "kafka_connect_connector_task_metrics_offset_commit_failure_percentage"
DLQ = "kafka_connect_task_error_metrics_deadletterqueue_produce_requests_total"
REBALANCING = "kafka_connect_connect_worker_rebalance_metrics_rebalancing"

# Exprs are written the way Prometheus prints them back (its /api/v1/rules
# `query` is the parsed expression re-printed), so `query` compares as text.
RULES_YAML = """\
# Shared by Prometheus and kcwatch in test_prometheus_parity.py.
groups:
  - name: %(group)s
    rules:
      - alert: KafkaConnectTaskRecordErrors
        expr: %(errors)s > 1000
        for: 0s
        labels:
          severity: warning
          team: data-platform
        annotations:
          summary: "Task {{ $labels.connector }}/{{ $labels.task }} has record errors"
          description: |-
            Task {{ $labels.task }} of {{ $labels.connector }} on {{ $labels.instance }}:
            {{ $value | humanize }} record(s) ({{ $value }} exactly).

      - alert: KafkaConnectOffsetCommitFailures
        expr: %(commit_fail)s > 0
        for: 0s
        labels:
          severity: warning
          pipeline: "connect-{{ $labels.connector }}"
        annotations:
          summary: "Offset commits of task {{ $labels.connector }}/{{ $labels.task }} fail"
          description: "{{ $value | humanizePercentage }} of commits of task {{ $labels.task }} failed."

      - alert: KafkaConnectDeadLetterQueueWrites
        expr: increase(%(dlq)s[5m]) > 0
        for: 0s
        labels:
          severity: warning
        annotations:
          summary: "Task {{ $labels.connector }}/{{ $labels.task }} writes to its dead letter queue"

      - alert: KafkaConnectWorkerRebalanceStuck
        expr: %(rebalancing)s == 1
        for: 1h
        labels:
          severity: critical
        annotations:
          summary: "Worker {{ $labels.instance }} is stuck rebalancing"
          description: "rebalancing={{ $value }} on job {{ $labels.job }}"

      - alert: KafkaConnectTaskStartupFailures
        expr: increase(kafka_connect_connect_worker_metrics_task_startup_failure_total[10m]) > 0
        for: 0s
        labels:
          severity: warning
        annotations:
          summary: "Worker {{ $labels.instance }} failed to start {{ $value | humanize }} task(s)"
""" % {"group": GROUP, "errors": ERRORS, "commit_fail": COMMIT_FAIL, "dlq": DLQ,
       "rebalancing": REBALANCING}


def task(connector, t):
    return {"connector": connector, "task": str(t)}


def expected_alerts(instance, job):
    """(alertname, state, identifying labels) Prometheus must list."""
    base = {"instance": instance, "job": job}
    return sorted([
        ("KafkaConnectTaskRecordErrors", "firing", dict(base, **task("orders-sink", 0))),
        ("KafkaConnectTaskRecordErrors", "firing", dict(base, **task("audit-source", 1))),
        ("KafkaConnectOffsetCommitFailures", "firing", dict(base, **task("orders-sink", 0))),
        ("KafkaConnectDeadLetterQueueWrites", "firing", dict(base, **task("orders-sink", 1))),
        ("KafkaConnectWorkerRebalanceStuck", "pending", dict(base)),
    ], key=repr)


# ---------------------------------------------------------------- helpers

def parse_time(s):
    """Seconds since the epoch of Go RFC3339Nano text (None for the zero time)."""
    if not s or s.startswith("0001-01-01"):
        return None
    m = re.match(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$", s)
    if not m:
        raise AssertionError("not an RFC3339 time: %r" % (s,))
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    base = datetime.fromisoformat(m.group(1) + tz)
    frac = float("0." + m.group(2)) if m.group(2) else 0.0
    return base.replace(tzinfo=base.tzinfo or timezone.utc).timestamp() + frac


def key_of(labels):
    return tuple(sorted(labels.items()))


def norm_alerts(alerts):
    """{labels key: alert} of an /api/v1/alerts list (duplicates are an error)."""
    out = {}
    for a in alerts:
        k = key_of(a.get("labels") or {})
        if k in out:
            raise AssertionError("alert listed twice: %r" % (a,))
        out[k] = a
    return out


def identity(alerts):
    """What the parity check expects Prometheus to list, in the same form."""
    out = []
    for a in alerts:
        labels = dict(a["labels"])
        name = labels.pop("alertname")
        ident = {k: labels[k] for k in ("instance", "job", "connector", "task") if k in labels}
        out.append((name, a["state"], ident))
    return sorted(out, key=repr)


def diff_alerts(prom, kcw, active_at=True):
    """Human-readable differences between two alert lists ([] = same).
    active_at=False skips activeAt (after a restart of Prometheus, which
    stamps its for: 0s alerts anew while kcwatch rightly keeps its own)."""
    p, k = norm_alerts(prom), norm_alerts(kcw)
    diffs = []
    for key in sorted(set(p) | set(k)):
        a, b = p.get(key), k.get(key)
        if a is None:
            diffs.append("only kcwatch lists %s (%s)" % (dict(key), b.get("state")))
            continue
        if b is None:
            diffs.append("only Prometheus lists %s (%s)" % (dict(key), a.get("state")))
            continue
        name = dict(key).get("alertname")
        for field in ("state", "annotations"):
            if a.get(field) != b.get(field):
                diffs.append("%s %s: Prometheus %r, kcwatch %r"
                             % (dict(key), field, a.get(field), b.get(field)))
        if name not in INSTANT_DEPENDENT and a.get("value") != b.get("value"):
            diffs.append("%s value: Prometheus %r, kcwatch %r"
                         % (dict(key), a.get("value"), b.get("value")))
        ta, tb = parse_time(a.get("activeAt")), parse_time(b.get("activeAt"))
        if not active_at:
            continue
        if ta is None or tb is None or abs(ta - tb) > ACTIVE_AT_TOLERANCE:
            diffs.append("%s activeAt: Prometheus %r, kcwatch %r (tolerance %.0fs)"
                         % (dict(key), a.get("activeAt"), b.get("activeAt"),
                            ACTIVE_AT_TOLERANCE))
    return diffs


RULE_FIELDS = ("type", "query", "duration", "labels", "annotations", "state", "health")


def diff_rules(prom_groups, kcw_groups, group=GROUP):
    """Differences of /api/v1/rules for one group ([] = same)."""
    pg = {g["name"]: g for g in prom_groups}
    kg = {g["name"]: g for g in kcw_groups}
    if group not in pg or group not in kg:
        return ["group %r: Prometheus has %s, kcwatch has %s"
                % (group, sorted(pg), sorted(kg))]
    a, b = pg[group], kg[group]
    diffs = []
    for field in ("file", "interval", "limit"):
        if a.get(field, 0) != b.get(field, 0):
            diffs.append("group %s: Prometheus %r, kcwatch %r" % (field, a.get(field),
                                                                   b.get(field)))
    an = [r.get("name") for r in a.get("rules", [])]
    bn = [r.get("name") for r in b.get("rules", [])]
    if an != bn:
        return diffs + ["rule names/order: Prometheus %r, kcwatch %r" % (an, bn)]
    for ra, rb in zip(a["rules"], b["rules"]):
        for field in RULE_FIELDS:
            if ra.get(field) != rb.get(field):
                diffs.append("rule %s %s: Prometheus %r, kcwatch %r"
                             % (ra["name"], field, ra.get(field), rb.get(field)))
        if (ra.get("lastError") or "") != (rb.get("lastError") or ""):
            diffs.append("rule %s lastError: Prometheus %r, kcwatch %r"
                         % (ra["name"], ra.get("lastError"), rb.get("lastError")))
        # Prometheus 2.42 has no keepFiringFor in the API when it is 0.
        if ra.get("keepFiringFor", 0) != rb.get("keepFiringFor", 0):
            diffs.append("rule %s keepFiringFor: Prometheus %r, kcwatch %r"
                         % (ra["name"], ra.get("keepFiringFor"), rb.get("keepFiringFor")))
        diffs += ["rule %s alerts: %s" % (ra["name"], d)
                  for d in diff_alerts(ra.get("alerts") or [], rb.get("alerts") or [])]
    return diffs


class Kcwatch:
    """kcwatch's admin API (its listen address from the harness config)."""

    def __init__(self, h):
        self.h = h
        self.url = "http://" + h.config["global"]["listen"]

    def api(self, path):
        status, body, text = prom_harness.http_json(self.url + path)
        if status != 200 or not isinstance(body, dict) or body.get("status") != "success":
            raise AssertionError("kcwatch %s answered %s: %s" % (path, status, text[:500]))
        return body["data"]

    def answers(self, path):
        status, body, _ = prom_harness.http_json(self.url + path, timeout=2.0)
        return status == 200 and isinstance(body, dict) and body.get("status") == "success"

    def alerts(self):
        return self.api("/api/v1/alerts").get("alerts", [])

    def groups(self):
        return self.api("/api/v1/rules").get("groups", [])

    def group(self, name=GROUP):
        for g in self.groups():
            if g.get("name") == name:
                return g
        return None

    def eval_failures(self, group=GROUP):
        """kcwatch_rule_evaluation_failures_total{group=...}, None if absent."""
        status, _, text = prom_harness.http_json(self.url + "/metrics")
        if status != 200:
            return None
        for line in text.splitlines():
            if line.startswith("kcwatch_rule_evaluation_failures_total{") and \
                    ('group="%s"' % group) in line:
                return float(line.rsplit(" ", 1)[1])
        return None


def stable_view(alerts):
    """Everything of each alert that must not move while Prometheus is away."""
    return {k: (a.get("state"), a.get("annotations"), a.get("activeAt"), a.get("value"))
            for k, a in norm_alerts(alerts).items()}


# ---------------------------------------------------------------- the test

def test_prometheus_parity_and_outage():
    prom_harness.prometheus_bin()  # fail (not skip) at once when missing
    exporter = JmxExporter().start()
    with Harness("prom-parity", workers=1) as h:
        try:
            _run(h, exporter)
        finally:
            prom = getattr(h, "prom", None)
            if prom is not None:
                prom.close()
            exporter.stop()


def _run(h, exporter):
    # A healthy worker running two connectors with two tasks each.
    exporter.add_worker_defaults(connectors=2, tasks=4)
    for c, kind in (("orders-sink", "sink"), ("audit-source", "source")):
        exporter.add_connector(c, tasks=2)
        for t in (0, 1):
            exporter.add_task(c, t, kind)
    h.fake.add_connector("orders-sink", type="sink", tasks=2)
    h.fake.add_connector("audit-source", type="source", tasks=2)

    rules_path = h.write("parity-rules.yaml", RULES_YAML)
    prom = h.prom = prom_harness.PrometheusServer(h.tmp, [exporter.address], [rules_path])
    prom.start()
    job, instance = prom.job, exporter.address

    h.start_daemon(overrides={"prometheus": {"url": prom.url, "timeout": "2s"},
                              "rule_files": [rules_path]})
    kcw = Kcwatch(h)

    # Baseline: Prometheus has scraped the healthy values (the DLQ counter's 0
    # must be stored before it grows, or increase() sees one sample only) and
    # both evaluators have run the group with nothing to report.
    h.wait_for(prom.targets_up, what="Prometheus to scrape the fake exporter")
    h.wait_for(lambda: prom.query(DLQ), what="Prometheus to store %s" % DLQ)
    h.wait_for(lambda: kcw.answers("/api/v1/rules"),
               what="kcwatch to answer GET /api/v1/rules")

    def evaluated_ok(groups):
        g = [x for x in groups if x.get("name") == GROUP]
        return bool(g) and all(r.get("health") == "ok" for r in g[0].get("rules", []))

    h.wait_for(lambda: evaluated_ok(prom.rule_groups()),
               what="Prometheus to evaluate group %s" % GROUP)
    h.wait_for(lambda: evaluated_ok(kcw.groups()),
               what="kcwatch to evaluate group %s with health ok" % GROUP)
    h.check(prom.api("/api/v1/alerts")["alerts"] == [], "Prometheus alerts before the change")
    h.check(kcw.alerts() == [], "kcwatch lists alerts before any metric is bad: %r"
            % kcw.alerts())

    # The change: record errors on two tasks (one under the threshold too),
    # a failing offset commit, DLQ writes, a rebalance that will not end.
    exporter.set(ERRORS, task("orders-sink", 0), 1234567)
    exporter.set(ERRORS, task("audit-source", 1), 2500)
    exporter.set(ERRORS, task("orders-sink", 1), 999)
    exporter.set(COMMIT_FAIL, task("orders-sink", 0), 0.25)
    exporter.set(DLQ, task("orders-sink", 1), 3)
    exporter.set(REBALANCING, None, 1)

    want = expected_alerts(instance, job)
    h.wait_for(lambda: identity(prom.api("/api/v1/alerts")["alerts"]) == want,
               timeout=PARITY_TIMEOUT, what="Prometheus to list %r" % (want,))
    # Annotations as Prometheus rendered them (sanity of the fixture itself).
    p_alerts = norm_alerts(prom.api("/api/v1/alerts")["alerts"])
    descs = sorted(a["annotations"].get("description", "") for a in p_alerts.values())
    h.check(any("\n1.235M record(s) (1.234567e+06 exactly)" in d for d in descs), descs)
    h.check(any("\n2.5k record(s) (2500 exactly)" in d for d in descs), descs)
    h.check(any(d == "25% of commits of task 0 failed." for d in descs), descs)
    h.check(any(d == "rebalancing=1 on job %s" % job for d in descs), descs)

    # 1. Parity of /api/v1/alerts and /api/v1/rules, polled until equal.
    last = {}

    def alerts_equal(active_at=True):
        p = prom.api("/api/v1/alerts")["alerts"]
        k = kcw.alerts()
        last["alerts"] = diff_alerts(p, k, active_at)
        return identity(p) == want and not last["alerts"]

    _wait_or_diff(h, alerts_equal, last, "alerts",
                  "kcwatch's /api/v1/alerts to match Prometheus'")

    def rules_equal():
        last["rules"] = diff_rules(prom.rule_groups(), kcw.groups())
        return not last["rules"]

    _wait_or_diff(h, rules_equal, last, "rules",
                  "kcwatch's /api/v1/rules to match Prometheus'")

    # 2. Prometheus goes away.
    pre_stop = {k: v[:3] for k, v in stable_view(kcw.alerts()).items()}
    h.check(prom.stop() == 0, "Prometheus did not exit cleanly on SIGTERM\n" + prom.log_tail())

    def all_err():
        g = kcw.group()
        return g is not None and all(r.get("health") == "err" and r.get("lastError")
                                     for r in g.get("rules", []))

    h.wait_for(all_err, what="every rule of kcwatch's group %s to turn health err with "
                             "a lastError" % GROUP)
    g = kcw.group()
    errors = sorted({r["lastError"] for r in g["rules"]})
    before = stable_view(kcw.alerts())
    h.check({k: v[:3] for k, v in before.items()} == pre_stop,
            "kcwatch's alerts changed when Prometheus went away:\nbefore %r\nafter %r"
            % (pre_stop, before))
    # The clock of failed evaluations: kcwatch_rule_evaluation_failures_total
    # when /metrics serves it, else the group's lastEvaluation, which (as in
    # Prometheus) moves on every evaluation attempt, failed ones included.
    f0 = kcw.eval_failures()
    evals = {g.get("lastEvaluation")}

    changes = []

    def held_through_failures():
        now = stable_view(kcw.alerts())
        if now != before:
            changes.append(now)
        grp = kcw.group()
        rules = (grp or {}).get("rules") or []
        if not rules or not all(r.get("health") == "err" for r in rules):
            changes.append("group health left err while Prometheus is down: %r"
                           % [(r.get("name"), r.get("health")) for r in rules])
        if changes:
            return True
        if f0 is not None:
            f = kcw.eval_failures()
            return f is not None and f >= f0 + 3
        evals.add(grp.get("lastEvaluation"))
        return len(evals) >= 4

    h.wait_for(held_through_failures,
               what="3 more failed evaluations of %s with Prometheus down" % GROUP)
    h.check(not changes, "kcwatch's alerts changed while Prometheus was down "
                         "(lastError %r):\nbefore %r\nafter %r" % (errors, before, changes))
    h.check(h.alive(), "kcwatch died while Prometheus was down")

    # 3. Prometheus is back on the same port with the same data.
    prom.start()

    def all_ok():
        grp = kcw.group()
        return grp is not None and all(r.get("health") == "ok" and not r.get("lastError")
                                       for r in grp.get("rules", []))

    h.wait_for(all_ok, timeout=PARITY_TIMEOUT,
               what="every rule of kcwatch's group to turn health ok again")
    after = stable_view(kcw.alerts())
    h.check(identity(kcw.alerts()) == want, "kcwatch alerts after the outage: %r"
            % identity(kcw.alerts()))
    for k, v in before.items():
        # activeAt survives: the outage did not restart any alert.
        h.check(after[k][2] == v[2], "activeAt of %s changed over the outage: %r -> %r"
                % (dict(k), v[2], after[k][2]))
    h.wait_for(prom.targets_up, what="the restarted Prometheus to scrape again")
    _wait_or_diff(h, lambda: alerts_equal(active_at=False), last, "alerts",
                  "parity of /api/v1/alerts after Prometheus came back")
    h.finish()


def _wait_or_diff(h, pred, last, key, what):
    try:
        h.wait_for(pred, timeout=PARITY_TIMEOUT, what=what)
    except AssertionError as e:
        raise AssertionError("%s\n--- last differences ---\n  %s"
                             % (e, "\n  ".join(last.get(key) or ["(none recorded)"])))


if __name__ == "__main__":
    try:
        prom_harness.prometheus_bin()
    except prom_harness.MissingPrometheus as e:
        # Not a skip: CI installs Prometheus, so its absence is a broken setup.
        print("test_prometheus_parity.py: cannot run: %s" % e)
        print("FAIL test_prometheus_parity_and_outage (no Prometheus binary)")
        print("0 passed, 1 failed")
        sys.exit(1)
    harness.run_tests(globals())
