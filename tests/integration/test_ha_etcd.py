#!/usr/bin/env python3
"""kcwatch instances when etcd itself goes away, on real etcd members.

etcd stopped (its only member killed), or its quorum lost (two of three
members killed): every instance stops acting
within the TTL and says so (log, /api/v1/ha, KcwatchEtcdUnavailable); a task
that fails meanwhile is evaluated and shown by both, restarted by none; once
the members are back the owner resumes and restarts it exactly once. One
member down is not an outage: the instances fail over to the others and
ownership does not move."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import ha_harness  # noqa: E402
from ha_harness import HaWorld, TTL, log_time  # noqa: E402

LABELS = {"cluster": "c1", "connector": "orders", "task": "0"}


def api_firing(inst, alertname):
    r = inst.api("/api/v1/alerts")
    alerts = (r or {}).get("data", {}).get("alerts", [])
    return [a for a in alerts if a["labels"].get("alertname") == alertname
            and a["state"] == "firing"]


def test_one_member_down_is_no_outage():
    with HaWorld("member-down", etcd_members=3) as w:
        w.fake.add_connector("orders", type="sink", tasks=1)
        # A follower first in both instances' endpoint lists: it goes, and
        # they must carry on through the others. (Losing the leader means an
        # election, about 0.5 s here, which a short TTL only just absorbs.)
        leader = w.wait(lambda: [w.etcd.leader()] if w.etcd.leader() is not None else None,
                        what="an etcd leader")[0]
        follower = (leader + 1) % 3
        urls = w.etcd.urls
        w.etcd_urls = [urls[follower]] + [u for i, u in enumerate(urls) if i != follower]
        a, b = w.instance("kcw-a"), w.instance("kcw-b")
        a.start()
        b.start()
        acts = w.wait_settled(2)
        w.check(w.etcd.leader() == leader, "the etcd leader changed before the test")
        w.etcd.stop_member(follower)
        renewals = [int(i.ha()["leaseRenewals"]) for i in (a, b)]
        # Three more TTLs on two members: leases renewed, nothing moved.
        w.wait(lambda: all(int(i.ha()["leaseRenewals"]) >= r + 8
                           for i, r in zip((a, b), renewals)),
               timeout=3 * TTL + 5, what="keepalives through the other members")
        w.check([a.acting(), b.acting()] == acts, "ownership moved: %r -> %r"
                % (acts, [a.acting(), b.acting()]))
        w.check(not a.log_records(msg="ha: lease not renewed in time: stopped acting for "
                                      "every cluster"), "kcw-a stopped acting")
        w.fake.fail_task("orders", 0, harness.TASK_FAILED_TRACE)
        w.wait(lambda: w.fake.restarts(), what="a restart with one etcd member down")
        a.finish()
        b.finish()


def etcd_outage(name, members, down):
    with HaWorld(name, etcd_members=members) as w:
        w.fake.add_connector("orders", type="sink", tasks=1)
        a, b = w.instance("kcw-a"), w.instance("kcw-b")
        a.start()
        b.start()
        acts = w.wait_settled(2)
        owner = a if acts[0] == ["c1"] else b
        for inst in (a, b):
            w.wait(lambda: (inst.ha() or {}).get("leaseValid") is True,
                   what="%s to hold its lease" % inst.instance)
        lines = [len(i.log_lines()) for i in (a, b)]
        for m in down:
            w.etcd.stop_member(m)
        lost = time.time()
        stop_msg = "ha: lease not renewed in time: stopped acting for every cluster"
        # Each one says so, in its log (timed by the log's own clock) and API.
        for inst, n in zip((a, b), lines):
            rec = w.wait(lambda: inst.log_records(n, msg=stop_msg), timeout=TTL + 5,
                         what="%s to log that it stopped acting" % inst.instance)[0]
            took = log_time(rec) - lost
            print("  %s stopped acting %.2fs after etcd went (TTL %ds)"
                  % (inst.instance, took, TTL))
            # An etcd leader cut off from its quorum answers for up to one
            # election timeout more (0.5 s here); the renewals it granted are
            # real, and the instance stops the granted TTL (TTL - 1 s here)
            # less the margin after the last one.
            w.check(took <= TTL + (0.5 if members > 1 else 0),
                    "%s stopped acting only after %.2fs" % (inst.instance, took))
            w.wait(lambda: inst.ha()["leaseValid"] is False and inst.acting() == [],
                   what="%s's API to show no lease and no cluster" % inst.instance)
        w.check(owner.log_records(lines[(a, b).index(owner)], msg="ha: stopped acting for cluster",
                                  cluster="c1"), "the owner did not log that it stopped")
        # Each one alerts about its own etcd outage (a built-in alert, like
        # the budget alert); nobody owns that one.
        for inst in (a, b):
            w.wait(lambda: inst.deliveries() and w.sink.find_alerts(
                "KcwatchEtcdUnavailable", "firing", {"kcwatch_instance": inst.instance}),
                what="KcwatchEtcdUnavailable from %s" % inst.instance)
        # A failure now: evaluated and shown by both, acted on by neither.
        w.fake.fail_task("orders", 0, harness.TASK_FAILED_TRACE)
        for inst in (a, b):
            w.wait(lambda: api_firing(inst, "ConnectTaskFailed"),
                   what="%s's API to show the firing alert" % inst.instance)
        target = w.fake.poll_count() + 10
        w.wait(lambda: w.fake.poll_count() >= target, what="10 polls")
        w.check(not w.fake.restarts(), "restarted without etcd: %r" % w.fake.restarts())
        w.check(not w.sink.find_alerts("ConnectTaskFailed"),
                "notified a cluster alert without etcd")
        # Quorum back: the owner resumes and acts, once.
        for m in down:
            w.etcd.start_member(m)
        w.wait(lambda: w.fake.restarts(), timeout=30, what="the restart once etcd is back")
        w.wait(lambda: w.fake.task_state("orders", 0) == "RUNNING", what="orders/0 RUNNING")
        w.wait(lambda: sorted((a.acting() or []) + (b.acting() or [])) == ["c1"],
               what="c1 owned again")
        for inst in (a, b):
            w.wait(lambda: w.sink.find_alerts("KcwatchEtcdUnavailable", "resolved",
                                              {"kcwatch_instance": inst.instance}),
                   what="KcwatchEtcdUnavailable resolved for %s" % inst.instance)
        target = w.fake.poll_count() + 10
        w.wait(lambda: w.fake.poll_count() >= target, what="10 polls")
        w.check(len(w.fake.restarts()) == 1, "restarts: %r" % w.fake.restarts())
        sent = a.restarts_sent() + b.restarts_sent()
        w.check(len(sent) == 1, "restart sent log lines: %r" % sent)
        a.finish()
        b.finish()


def test_etcd_stopped_owners_stop_and_resume():
    etcd_outage("stopped", 1, [0])


def test_quorum_lost_owners_stop_and_resume():
    etcd_outage("quorum", 3, [0, 1])


if __name__ == "__main__":
    ha_harness.run_tests(globals())
