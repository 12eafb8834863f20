#!/usr/bin/env python3
"""Slack and PagerDuty receivers against the fakes that check their payloads.

The route sends everything to Slack and, with `continue`, critical alerts to
PagerDuty too. A failed task gives a readable Slack message (where, state,
trace, what kcwatch did) and a PagerDuty trigger; its recovery resolves the
incident with the same dedup_key. 429 with Retry-After is honoured, 500 is
retried, 400 is logged (with PagerDuty's error text) and not retried. The
Slack URL's token and the routing key appear nowhere: not in the log, not in
`kcwatch check` output."""

import json
import os
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from fake_pagerduty import FakePagerDuty  # noqa: E402
from fake_slack import FakeSlack  # noqa: E402
from harness import Harness, connect_rule  # noqa: E402

SLACK_TOKEN = "T0KCW/B0KCW/SlackSecretXyz123"
ROUTING_KEY = "PdRoutingKey0123456789abcdefABCD"
TRACE = ("org.apache.kafka.connect.errors.ConnectException: sink write failed <init>\n"
         "\tat com.example.Sink.put(Sink.java:42)\n"
         "\tat org.apache.kafka.connect.runtime.WorkerSinkTask.deliver(WorkerSinkTask.java:1)\n")


def rules(restart=True):
    return [connect_rule("ConnectTaskFailed", "task", "FAILED", restart=restart,
                         labels={"severity": "critical"}),
            connect_rule("ConnectConnectorPaused", "connector", "PAUSED",
                         labels={"severity": "info"})]


def config(slack, pd, **route):
    r = {"receiver": "slack", "group_by": ["alertname", "cluster", "connector"],
         "group_wait": "0s", "group_interval": "300ms", "repeat_interval": "1h",
         "routes": [{"matchers": ['severity="critical"'], "receiver": "pd", "continue": True},
                    {"receiver": "slack"}]}
    r.update(route)
    return {"receivers": [
        {"name": "slack", "slack": {"url": slack.url + "/services/" + SLACK_TOKEN,
                                    "channel": "#connect-alerts"}},
        {"name": "pd", "pagerduty": {"routing_key": ROUTING_KEY,
                                     "url": pd.url + "/v2/enqueue"}}],
        "route": r}


def no_secrets(h, extra_text=""):
    text = h.log_text() + extra_text
    for secret in ("SlackSecretXyz123", ROUTING_KEY):
        h.check(secret not in text, "%s leaked into the log or output" % secret)


def test_messages_and_incident_lifecycle():
    with Harness("slack-pd") as h, FakeSlack() as slack, FakePagerDuty() as pd:
        h.fake.add_connector("orders", tasks=2)
        h.start_daemon(config(slack, pd), rules=rules())
        h.fake.fail_task("orders", 1, TRACE)
        text = h.wait_for(lambda: slack.wait_text("kcwatch: ", timeout=0),
                          what="a Slack message saying what kcwatch did")
        worker = h.fake.task_worker_id("orders", 1)
        for part in ("ConnectTaskFailed", "cluster `c1`", "connector `orders`", "task `1`",
                     "worker `%s`" % worker, "state `FAILED`",
                     "ConnectException: sink write failed &lt;init&gt;", "Sink.java:42"):
            h.check(part in text, "%r not in the Slack text:\n%s" % (part, text))
        h.check(slack.deliveries()[0].payload.get("channel") == "#connect-alerts", "channel")
        h.check(slack.deliveries()[0].path == "/services/" + SLACK_TOKEN, "path")

        trig = h.wait_for(lambda: pd.events("trigger"), what="a PagerDuty trigger")[0]
        p = trig["payload"]
        h.check(trig["routing_key"] == ROUTING_KEY, "routing_key")
        h.check(p["severity"] == "critical" and p["class"] == "ConnectTaskFailed" and
                p["group"] == "c1" and p["component"] == "orders task 1" and
                p["source"] == worker, p)
        h.check(p["summary"].startswith("ConnectTaskFailed: Task orders/1 failed"), p["summary"])
        h.check(p["custom_details"]["labels"]["task"] == "1", p["custom_details"])
        key = trig["dedup_key"]

        # Remediation restarts it; the fake brings it back RUNNING: resolved.
        h.wait_for(lambda: pd.events("resolve"), what="the PagerDuty resolve")
        h.check(pd.incidents() == {key: "resolved"}, pd.incidents())
        h.wait_for(lambda: slack.wait_text("resolved", timeout=0), what="the Slack resolution")
        # An info alert goes to Slack only.
        before = len(pd.received())
        h.fake.pause("orders")
        h.wait_for(lambda: slack.wait_text("ConnectConnectorPaused", timeout=0),
                   what="the paused connector on Slack")
        h.check(len(pd.received()) == before, "an info alert went to PagerDuty")
        h.check(not slack.violations and not pd.violations, slack.violations + pd.violations)
        # Nowhere: log, admin API, audit log (kcwatch history), kcwatch check.
        seen = ""
        for path in ("/api/v1/alerts", "/api/v1/rules", "/api/v2/silences", "/metrics"):
            with urllib.request.urlopen("http://%s%s" % (h.config["global"]["listen"], path),
                                        timeout=5) as r:
                seen += r.read().decode("utf-8", "replace")
        for args in (["check", "-c", h.config_path], ["history", "-c", h.config_path, "--json"]):
            out = subprocess.run([harness.kcwatch_bin()] + args, capture_output=True, text=True,
                                 timeout=30)
            h.check(out.returncode == 0, out.stdout + out.stderr)
            seen += out.stdout + out.stderr
        rows = json.loads(out.stdout)
        sent = {(r.get("receiver"), r.get("status")) for r in rows
                if r.get("kind") == "notification"}
        h.check(("pd", "sent") in sent and ("slack", "sent") in sent,
                "the audit log lacks the deliveries: %r" % sent)
        no_secrets(h, seen)
        h.finish()


def test_retry_after_500_and_400():
    with Harness("slack-pd-retry") as h, FakeSlack() as slack, FakePagerDuty() as pd:
        h.fake.add_connector("orders", tasks=3)
        slack.fail_next(1, 429, retry_after=2)
        slack.fail_next(1, 500)
        pd.fail_next(1, 429, retry_after=1)
        pd.fail_next(1, 500)
        h.start_daemon(config(slack, pd), rules=rules(restart=False))
        h.fake.fail_task("orders", 0, TRACE)
        h.wait_for(lambda: slack.deliveries(), what="Slack delivery after 429 and 500")
        got = slack.received()
        h.check([r.answered for r in got[:3]] == [429, 500, 200], got)
        h.check(got[1].time - got[0].time >= 1.9,
                "Retry-After: 2 not honoured (%.2fs)" % (got[1].time - got[0].time))
        h.wait_for(lambda: pd.events("trigger"), what="PagerDuty trigger after 429 and 500")
        got = pd.received()
        h.check([r.answered for r in got[:3]] == [429, 500, 202], got)
        h.check(got[1].time - got[0].time >= 0.9, "PagerDuty Retry-After not honoured")

        # 400: logged (PagerDuty's error text) and dropped, never retried.
        slack.fail_next(1, 400)
        pd.fail_next(1, 400)
        n_slack, n_pd = len(slack.received()), len(pd.received())
        h.fake.fail_task("orders", 2, TRACE)
        h.wait_for(lambda: h.log_records(msg="notification rejected: configuration error, not retried",
                                         receiver="slack"),
                   what="the Slack 400 logged as a configuration error")
        rec = h.wait_for(lambda: h.log_records(msg="notification rejected: configuration error, not retried",
                                               receiver="pd"),
                         what="the PagerDuty 400 logged")[0]
        h.check("Event object is invalid" in rec.get("body", ""), rec)
        # A later notification gets through; the rejected ones were not re-sent.
        h.fake.set_task_state("orders", 0, "RUNNING")
        h.wait_for(lambda: len(pd.events("resolve")) >= 1, what="the next PagerDuty event")
        h.check(len(slack.received()) - n_slack <= 2, "the Slack 400 was retried")
        h.check(sum(1 for r in pd.received()[n_pd:] if r.answered == 400) == 1,
                "the PagerDuty 400 was retried")
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
