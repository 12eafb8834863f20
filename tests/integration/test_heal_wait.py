#!/usr/bin/env python3
"""Page only when healing fails (remediation.heal_wait and the remediation label).

Every alert kcwatch acts on carries remediation="healing|healed|failed|
unfixable|held". With heal_wait, a group's first notification waits while its
alert is being healed: a task that a restart fixed produces one resolved
message labelled healed and no firing one; a restart that does not work is
told once its verdict is in, labelled failed; an unrecoverable trace is told
at once, labelled unfixable. Webhook, Slack and PagerDuty share that path: a
route on the label keeps PagerDuty for failed/unfixable, so the fixed task
pages nobody."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from fake_pagerduty import FakePagerDuty  # noqa: E402
from fake_slack import FakeSlack  # noqa: E402
from harness import Harness  # noqa: E402

CONFIG_TRACE = ("org.apache.kafka.common.config.ConfigException: Invalid value x for "
                "configuration topics\n\tat com.example.fake.FakeSinkTask.start(FakeSinkTask.java:12)\n")
# heal_wait's default is verify_timeout (3s in the harness): said explicitly
# because the harness turns it off for the tests that predate it.
HEAL = {"remediation": {"heal_wait": "3s"},
        "route": {"group_wait": "2s", "group_interval": "1s"}}


def task_alerts(h, connector, task, status=None):
    return h.sink.find_alerts("ConnectTaskFailed", status=status,
                              labels={"connector": connector, "task": str(task)})


def test_fixed_task_is_one_healed_message():
    with Harness("heal-fixed") as h:
        h.fake.add_connector("orders", type="sink", tasks=2)
        h.start_daemon(HEAL)
        h.fake.fail_task("orders", 1, harness.TASK_FAILED_TRACE)
        _, alert = h.wait_alert("ConnectTaskFailed", "resolved",
                                {"connector": "orders", "task": "1"},
                                what="the resolved message of the fixed task")
        h.check(alert["labels"].get("remediation") == "healed",
                "a fixed task is told as healed: %r" % alert["labels"])
        h.check(alert["labels"].get("root_cause") == "java.io.IOException: broken pipe @ "
                "com.example.fake.FakeSinkTask.put", "root_cause label: %r" % alert["labels"])
        h.check(len(h.fake.restarts()) == 1, "one restart: %r" % h.fake.restarts())
        # Past a few group intervals nothing else arrives.
        h.wait_polls(15)
        h.check(not task_alerts(h, "orders", 1, "firing"),
                "a task the restart fixed was notified as firing: %r"
                % task_alerts(h, "orders", 1, "firing"))
        h.check(len(task_alerts(h, "orders", 1)) == 1,
                "exactly one message for the fixed task, got %r" % task_alerts(h, "orders", 1))
        h.finish()


def test_failed_restart_and_unfixable_are_told():
    with Harness("heal-failed") as h:
        h.fake.add_connector("orders", type="sink", tasks=1)
        h.fake.add_connector("users", type="sink", tasks=1)
        h.fake.set_restart_outcome("orders", "fail_again")
        h.start_daemon(HEAL)
        h.fake.fail_task("orders", 0, harness.TASK_FAILED_TRACE)
        h.fake.fail_task("users", 0, CONFIG_TRACE)
        _, users = h.wait_alert("ConnectTaskFailed", "firing", {"connector": "users"},
                                what="the unfixable task's alert")
        h.check(users["labels"].get("remediation") == "unfixable",
                "ConfigException is unfixable: %r" % users["labels"])
        _, orders = h.wait_alert("ConnectTaskFailed", "firing", {"connector": "orders"},
                                 what="the alert of the task its restart did not fix")
        h.check(orders["labels"].get("remediation") == "failed",
                "the first message of a failed restart waits for the verdict: %r"
                % orders["labels"])
        h.check(len(h.fake.restarts()) >= 1, "orders/0 was restarted")
        healing = [a for _, a in h.sink.find_alerts("ConnectTaskFailed")
                   if a["labels"].get("remediation") == "healing"]
        h.check(not healing, "a message went out before the verdict: %r" % healing)
        h.finish()


def test_slack_and_pagerduty():
    with Harness("heal-receivers") as h, FakeSlack() as slack, FakePagerDuty() as pd:
        h.fake.add_connector("orders", type="sink", tasks=1)
        h.fake.add_connector("billing", type="sink", tasks=1)
        h.fake.set_restart_outcome("billing", "fail_again")
        route = {"receiver": "slack", "group_by": ["cluster", "root_cause"],
                 "group_wait": "2s", "group_interval": "1s", "repeat_interval": "1h",
                 "routes": [{"matchers": ['remediation=~"failed|unfixable"'], "receiver": "pd",
                             "continue": True},
                            {"receiver": "slack"}]}
        h.start_daemon({
            "remediation": {"heal_wait": "3s"},
            "receivers": [
                {"name": "slack", "slack": {"url": slack.url + "/services/T0/B0/x"}},
                {"name": "pd", "pagerduty": {"routing_key": "k" * 32,
                                             "url": pd.url + "/v2/enqueue"}}],
            "route": route})
        h.fake.fail_task("orders", 0, harness.TASK_FAILED_TRACE)
        h.wait_for(lambda: h.fake.task_state("orders", 0) == "RUNNING"
                   and len(slack.texts()) >= 1, what="orders/0 healed and told on Slack")
        h.wait_polls(15)
        h.check(len(slack.texts()) == 1, "one Slack message for the healed task: %r"
                % slack.texts())
        h.check(not pd.events(), "a healed task paged: %r" % pd.events())

        h.fake.fail_task("billing", 0, "java.io.IOException: disk full\n")
        h.wait_for(lambda: pd.events("trigger"), what="a page for the restart that failed")
        h.check(all(e.get("dedup_key") for e in pd.events("trigger")), "triggers carry a key")
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
