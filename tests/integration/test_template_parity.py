#!/usr/bin/env python3
"""Template functions render as Prometheus 2.42 renders them.

The same rule file, with annotations using with, range, query, first, label,
value, sortByLabel, reReplaceAll, safeHtml, externalURL and pathPrefix, is
loaded by Debian's Prometheus and by kcwatch (`connect: []`, querying that
Prometheus). Prometheus' /api/v1/alerts gives its rendering of each
annotation; kcwatch's annotations must become equal to them, every one. The
first evaluation of a new {{ query }} is answered "query pending" by
kcwatch's cache (docs: README, Rules), so equality is waited for with a
deadline rather than expected at once. A template error is compared by its
message: Prometheus places it in its internal template text
("__alert_X:1:140: executing ... at <first>: MESSAGE"), kcwatch at the
FILE:LINE:COL of the rule file ("FILE:9:53: MESSAGE")."""

import json
import os
import re
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import prom_harness  # noqa: E402
from harness import Harness  # noqa: E402

TWO = ('label_replace(vector(2), "job", "b", "", "") or '
       'label_replace(vector(1), "job", "a", "", "")')

ANNOTATIONS = {
    "with_value": '{{ with query "vector(42)" }}{{ . | first | value }}{{ end }}',
    "with_else": '{{ with query "vector(1) == 2" }}some{{ else }}none{{ end }}',
    "range": '{{ range query `%s` }}{{ .Labels.job }}={{ .Value }};{{ end }}' % TWO,
    "range_else": '{{ range query "vector(1) == 2" }}x{{ else }}empty{{ end }}',
    "sort": '{{ range sortByLabel "job" (query `%s`) }}{{ .Labels.job }} {{ end }}' % TWO,
    "label": '{{ query `label_replace(vector(7), "job", "x", "", "")` | first | label "job" }}',
    "sample": '{{ with query `label_replace(vector(3), "job", "y", "", "")` }}'
              '{{ range . }}{{ . }}{{ end }}{{ end }}',
    "humanized": '{{ query "vector(1234567)" | first | value | humanize }}',
    "replace": '{{ reReplaceAll "(a+)b" "X$1" "aab cab" }}|'
               '{{ reReplaceAll "^connect-(.*)$" "${1}" $labels.instance }}',
    "safe": '{{ "<b>bold</b>" | safeHtml }}',
    "external": '{{ externalURL }}',
    "prefix": '[{{ pathPrefix }}]',
    "scalar": '{{ with query "scalar(vector(5))" }}{{ . | first | value }}{{ end }}',
    "first_empty": '{{ query "vector(1) == 2" | first | value }}',
}

RULES_HEAD = """\
groups:
  - name: parity
    interval: 1s
    rules:
      - alert: TemplateParity
        expr: label_replace(vector(1), "instance", "connect-7", "", "")
        annotations:
"""


def rules_text():
    lines = [RULES_HEAD]
    for name, text in sorted(ANNOTATIONS.items()):
        lines.append("          %s: %s\n" % (name, json.dumps(text)))
    return "".join(lines)


PROM_ERROR = re.compile(r"^<error expanding template: .*? at <[^>]*>: (.*)>$", re.S)
OUR_ERROR = re.compile(r"^<error expanding template: .*?:\d+:\d+: (.*)>$", re.S)


def normalised(annotations, pattern):
    """Template errors reduced to their message; everything else as is."""
    out = {}
    for k, v in (annotations or {}).items():
        m = pattern.match(v)
        out[k] = ("error", m.group(1)) if m else v
    return out


def alert_annotations(url, alertname):
    try:
        with urllib.request.urlopen(url + "/api/v1/alerts", timeout=5) as r:
            data = json.loads(r.read())["data"]["alerts"]
    except (OSError, ValueError, KeyError):
        return None
    for a in data:
        if a["labels"].get("alertname") == alertname:
            return a["annotations"]
    return None


def test_templates_render_as_prometheus():
    prom_harness.prometheus_bin()
    with Harness("template-parity") as h:
        prom = None
        try:
            rules = h.write("parity.yaml", rules_text())
            prom = prom_harness.PrometheusServer(h.tmp, ["127.0.0.1:1"],
                                                 rule_files=[rules]).start()
            theirs = h.wait_for(lambda: alert_annotations(prom.url, "TemplateParity"),
                                what="Prometheus' rendering")
            # kcwatch's externalURL is its own global.external_url: give it
            # Prometheus' so the two render the same text.
            h.start_daemon({"connect": [], "rule_files": [rules],
                            "prometheus": {"url": prom.url},
                            "global": {"external_url": theirs["external"]}}, wait_polls=0)
            admin = "http://%s" % h.config["global"]["listen"]
            last = {}

            want = normalised(theirs, PROM_ERROR)
            h.check(want["first_empty"] == ("error", "error calling first: first() called on "
                                            "vector with no elements"),
                    "Prometheus' error text changed: %r" % theirs["first_empty"])

            def same():
                ours = alert_annotations(admin, "TemplateParity")
                last["ours"] = ours
                return ours is not None and normalised(ours, OUR_ERROR) == want

            try:
                h.wait_for(same, timeout=30, what="kcwatch's annotations to equal Prometheus'")
            except AssertionError:
                ours = normalised(last.get("ours"), OUR_ERROR)
                diff = {k: (want.get(k), ours.get(k)) for k in sorted(set(want) | set(ours))
                        if want.get(k) != ours.get(k)}
                raise AssertionError("annotations differ (Prometheus, kcwatch):\n%s"
                                     % json.dumps(diff, indent=1))
            print("  rendered alike: %s" % json.dumps(theirs, sort_keys=True))
            h.finish()
        finally:
            if prom is not None:
                prom.close()


if __name__ == "__main__":
    harness.run_tests(globals())
