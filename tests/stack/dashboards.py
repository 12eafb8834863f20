"""dashboards.py: the metric names and panel queries of the shipped Grafana
dashboards and JMX rule pack, checked against a running Prometheus."""

import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CONNECT_DASHBOARD = os.path.join(ROOT, "packaging", "grafana", "dashboards", "kafka-connect.json")
KCWATCH_DASHBOARD = os.path.join(ROOT, "packaging", "grafana", "dashboards", "kcwatch.json")

# Metric families the JMX exporter agent serves (the agent's own jmx_*, the
# JVM's jvm_*, and the Kafka MBeans). `up` is Prometheus' own.
_EXPORTER_METRIC = re.compile(r"\b((?:kafka|jvm|jmx)_[a-zA-Z0-9_:]*)\b")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')

# What the test substitutes for the dashboards' template variables: every
# value, as Grafana's "All" does with allValue ".+".
VARIABLES = {"$job": ".+", "$instance": ".+", "${job}": ".+", "${instance}": ".+"}


def exporter_metric_names(expr):
    """Exporter metric names an expression reads (label values, grouping
    lists and function names are not metric names)."""
    e = _STRING.sub('""', expr)
    e = _GROUPING.sub(" ", e)
    e = re.sub(r"\{[^}]*\}", "", e)
    return set(_EXPORTER_METRIC.findall(e))


def rule_metric_names(path):
    from stack import yaml
    with open(path) as f:
        doc = yaml.safe_load(f)
    out = set()
    for g in doc["groups"]:
        for r in g["rules"]:
            out |= exporter_metric_names(r["expr"])
    return out


def panels(path):
    """(title, [expr]) of every panel with queries, rows included."""
    with open(path) as f:
        d = json.load(f)
    out = []

    def walk(ps):
        for p in ps:
            exprs = [t["expr"] for t in p.get("targets", []) if t.get("expr")]
            if exprs:
                out.append((p.get("title", "?"), exprs))
            walk(p.get("panels", []))
    walk(d.get("panels", []))
    return out


def dashboard_metric_names(path):
    out = set()
    for _, exprs in panels(path):
        for e in exprs:
            out |= exporter_metric_names(e)
    return out


def substitute(expr):
    for k, v in VARIABLES.items():
        expr = expr.replace(k, v)
    return expr


def run_panels(prom, path):
    """[(title, query, series or None if Prometheus refused it, error)]."""
    out = []
    for title, exprs in panels(path):
        for e in exprs:
            q = substitute(e)
            try:
                out.append((title, q, prom.query(q), None))
            except AssertionError as err:
                out.append((title, q, None, err))
    return out


def check_panels(prom):
    """([problem], [report line]): every query of both dashboards must return
    at least one series (the kcwatch one from kcwatch's /metrics, which the
    stack's Prometheus scrapes)."""
    problems, report = [], []
    conn = run_panels(prom, CONNECT_DASHBOARD)
    if len(conn) < 10:
        problems.append("only %d queries in %s" % (len(conn), CONNECT_DASHBOARD))
    for title, q, res, err in conn:
        if err is not None:
            problems.append("%s: %s fails: %s" % (title, q, err))
        elif not res:
            problems.append("%s: %s returns no data" % (title, q))
        else:
            report.append("data  %-45s %d series" % (title[:45], len(res)))
    kc = run_panels(prom, KCWATCH_DASHBOARD)
    if len(kc) < 10:
        problems.append("only %d queries in %s" % (len(kc), KCWATCH_DASHBOARD))
    for title, q, res, err in kc:
        if err is not None:
            problems.append("kcwatch dashboard %s: %s fails: %s" % (title, q, err))
        elif not res:
            problems.append("kcwatch dashboard %s: %s returns no data" % (title, q))
        else:
            report.append("data  %-45s %d series" % (title[:45], len(res)))
    return problems, report
