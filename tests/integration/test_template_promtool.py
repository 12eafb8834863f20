#!/usr/bin/env python3
"""Rule unit tests with {{ query }} templates: kcwatch test agrees with promtool.

One rule file whose annotations use query, with, first, value, humanize,
range, sortByLabel, label and reReplaceAll. promtool (Debian's Prometheus
2.42) runs it against input series and must find the expected annotations;
`kcwatch test` runs the same rule file against canned `promql:` results
carrying the same samples and must find the very same annotations. A wrong
expectation fails both. Prometheus does not order an instant vector, so
`first` is taken of a one-sample topk: over the plain vector promtool answers
"a" or "b" from run to run."""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402

RULES = """\
groups:
  - name: errors
    rules:
      - alert: HighErrors
        expr: errors_total > 0
        labels: {severity: warning}
        annotations:
          summary: '{{ with query "sum(errors_total)" }}{{ . | first | value | humanize }}{{ end }} total'
          detail: '{{ range sortByLabel "job" (query "errors_total") }}{{ .Labels.job }}={{ .Value }} {{ end }}'
          first: '{{ query "topk(1, errors_total)" | first | label "job" }}'
          job: '{{ reReplaceAll "^(.)$" "job-$1" $labels.job }}'
"""

EXPECT = """\
    alert_rule_test:
      - eval_time: 5m
        alertname: HighErrors
        exp_alerts:
          - exp_labels: {job: a, severity: warning}
            exp_annotations: {summary: "%(total)s", detail: "a=5 b=3 ", first: "a", job: "job-a"}
          - exp_labels: {job: b, severity: warning}
            exp_annotations: {summary: "%(total)s", detail: "a=5 b=3 ", first: "a", job: "job-b"}
"""

PROMTOOL_TEST = """\
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - {series: 'errors_total{job="b"}', values: '3x10'}
      - {series: 'errors_total{job="a"}', values: '5x10'}
"""

SERIES = ("[{labels: {__name__: errors_total, job: b}, value: 3}, "
          "{labels: {__name__: errors_total, job: a}, value: 5}]")
KCWATCH_TEST = """\
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - promql:
      - expr: errors_total > 0
        results: [{at: 0s, vector: %(s)s}]
      - expr: errors_total
        results: [{at: 0s, vector: %(s)s}]
      - expr: sum(errors_total)
        results: [{at: 0s, vector: [{labels: {}, value: 8}]}]
      - expr: topk(1, errors_total)
        results: [{at: 0s, vector: [{labels: {__name__: errors_total, job: a}, value: 5}]}]
""" % {"s": SERIES}


def run(cmd, cwd):
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def test_kcwatch_test_agrees_with_promtool():
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    with Harness("template-promtool", start_fakes=False) as h:
        h.write("rules.yaml", RULES)
        for total, want_pass in (("8 total", True), ("9 total", False)):
            exp = EXPECT % {"total": total}
            h.write("prom.test.yaml", PROMTOOL_TEST + exp)
            h.write("kcw.test.yaml", KCWATCH_TEST + exp)
            rc_p, out_p = run([promtool, "test", "rules", "prom.test.yaml"], h.tmp)
            rc_k, out_k = run([harness.kcwatch_bin(), "test", "kcw.test.yaml"], h.tmp)
            h.check((rc_p == 0) == want_pass,
                    "promtool with %r: exit %d\n%s" % (total, rc_p, out_p))
            h.check((rc_k == 0) == want_pass,
                    "kcwatch test with %r: exit %d\n%s" % (total, rc_k, out_k))
            if not want_pass:
                h.check("8 total" in out_k, "kcwatch test does not show what it got:\n" + out_k)


if __name__ == "__main__":
    harness.run_tests(globals(), needs_daemon=False)
