#!/usr/bin/env python3
"""Ownership moving between kcwatch instances on a real etcd.

Four clusters over two instances: two each (the PromQL pseudo-cluster on
top, apart from them); one instance is killed: all four on the survivor,
which then restarts a failure on a cluster it just took over. A SIGSTOPped
owner (a paused VM) that wakes after its lease expired does not act: no
restart, no notification, although the task it last saw is FAILED."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import ha_harness  # noqa: E402
from ha_harness import HaWorld, TTL  # noqa: E402

CLUSTERS = ("c1", "c2", "c3", "c4")


def real(clusters):
    return [c for c in clusters if c != "_promql"]


def test_four_clusters_two_instances():
    with HaWorld("spread", clusters=CLUSTERS) as w:
        for f in w.fakes:
            f.add_connector("orders", type="sink", tasks=1)
        a, b = w.instance("kcw-a"), w.instance("kcw-b")
        a.start()
        b.start()
        acts = w.wait_settled(2, balanced=True)
        w.check([len(real(x)) for x in acts] == [2, 2], "not two each: %r" % acts)
        owners = w.owners()
        for c in CLUSTERS:
            who = a if c in acts[0] else b
            w.check(owners.get(c) == who.instance, "etcd owner of %s: %r" % (c, owners))
            line = 'kcwatch_ha_owner{cluster="%s"} 1' % c
            w.check(line in who.metrics(), "%s missing on %s" % (line, who.instance))
        # kcwatch status reads who owns what from etcd.
        st = a.run_status()
        for c in CLUSTERS:
            w.check(("%s owned by %s" % (c, owners[c])) in st, "status output:\n" + st)
        victim, survivor = (a, b) if "c1" in acts[0] else (b, a)
        victim_clusters = real(acts[(a, b).index(victim)])
        victim.kill()
        killed = time.monotonic()
        w.wait(lambda: real(survivor.acting() or []) == list(CLUSTERS), timeout=TTL + 5,
               what="all four clusters on the survivor")
        print("  survivor acts for all four %.2fs after kill -9 (TTL %ds)"
              % (time.monotonic() - killed, TTL))
        w.check(w.owners() == {**{c: survivor.instance for c in CLUSTERS},
                               "_promql": survivor.instance}, "etcd owners: %r" % w.owners())
        fake = w.fakes[CLUSTERS.index(victim_clusters[0])]
        fake.fail_task("orders", 0, harness.TASK_FAILED_TRACE)
        w.wait(lambda: fake.restarts(), what="the survivor's restart on %s" % victim_clusters[0])
        survivor.finish()


def test_sigstopped_owner_wakes_and_does_not_act():
    with HaWorld("pause") as w:
        w.fake.add_connector("orders", type="sink", tasks=1)
        # Every restart fails again: the task is FAILED whenever the paused
        # owner wakes, so acting on what it saw would mean a restart.
        w.fake.set_restart_outcome("orders", "fail_again")
        a, b = w.instance("kcw-a"), w.instance("kcw-b")
        a.start()
        b.start()
        acts = w.wait_settled(2)
        owner, standby = (a, b) if acts[0] == ["c1"] else (b, a)
        # The owner sees the failure, then pauses before it can do much more.
        w.fake.fail_task("orders", 0, harness.TASK_FAILED_TRACE)
        os.killpg(owner.proc.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        w.wait(lambda: standby.acting() == ["c1"], timeout=TTL + 5,
               what="the standby to take c1 over")
        w.wait(lambda: standby.restarts_sent(), what="the standby's restart")
        # Asleep for longer than the TTL for sure, then wake it while FAILED.
        w.wait(lambda: time.monotonic() - stopped > TTL + 0.5, what="TTL to pass")
        w.wait(lambda: w.fake.task_state("orders", 0) == "FAILED", what="orders/0 FAILED")
        mark = len(owner.log_lines())
        woke = time.monotonic()
        os.killpg(owner.proc.pid, signal.SIGCONT)
        w.wait(lambda: owner.log_records(mark, msg="ha: lease granted"),
               what="the woken instance to rejoin with a new lease")
        target = w.fake.poll_count() + 15
        w.wait(lambda: w.fake.poll_count() >= target, what="15 more polls")
        w.check(owner.log_records(mark, msg="ha: stopped acting for cluster", cluster="c1"),
                "the woken instance did not say it stopped acting")
        w.check(not owner.restarts_sent(mark), "the woken instance restarted: %r"
                % owner.restarts_sent(mark))
        w.check(not owner.deliveries(after=woke), "the woken instance notified: %r"
                % owner.deliveries(after=woke))
        # Every restart Connect got is one of the two logged ones; the woken
        # instance's are all from before its pause.
        w.wait(lambda: len(w.fake.restarts()) ==
               len(owner.restarts_sent()) + len(standby.restarts_sent()),
               what="every restart attributed: fake %d, owner %d, standby %d"
               % (len(w.fake.restarts()), len(owner.restarts_sent()),
                  len(standby.restarts_sent())))
        w.check(standby.acting() == ["c1"] and owner.acting() == [],
                "ownership after the wake: standby %r, woken %r"
                % (standby.acting(), owner.acting()))
        owner.finish()
        standby.finish()


if __name__ == "__main__":
    ha_harness.run_tests(globals())
