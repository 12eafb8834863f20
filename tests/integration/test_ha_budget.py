#!/usr/bin/env python3
"""Restart budgets and back-off move with the cluster, on a real etcd.

Budget 2 restarts per hour; every restart fails again. The owner restarts
the task twice and stops (budget exhausted); it is killed with -9; the
standby takes the cluster over, reads the restart records the owner's
permit txns left under <prefix>/actions/c1/restarts/, and counts them: it
sends no third restart and says the budget is exhausted instead."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import ha_harness  # noqa: E402
from ha_harness import HaWorld, PREFIX, TTL  # noqa: E402

OVERRIDES = {
    "remediation": {"backoff": {"initial": "300ms", "max": "1s", "multiplier": 2, "jitter": 0},
                    "budget": {"max_restarts": 2, "window": "1h"},
                    "verify_timeout": "2s", "stable_period": "2s"},
}


def test_budget_survives_takeover():
    with HaWorld("budget") as w:
        w.fake.add_connector("orders", type="sink", tasks=1)
        w.fake.set_restart_outcome("orders", "fail_again")
        a, b = w.instance("kcw-a"), w.instance("kcw-b")
        a.start(overrides=OVERRIDES)
        b.start(overrides=OVERRIDES)
        acts = w.wait_settled(2)
        owner, standby = (a, b) if acts[0] == ["c1"] else (b, a)
        w.fake.fail_task("orders", 0, harness.TASK_FAILED_TRACE)
        w.wait(lambda: owner.log_records(msg="restart budget exhausted", connector="orders"),
               what="the owner to use up its budget")
        w.check(len(w.fake.restarts()) == 2, "restarts: %r" % w.fake.restarts())
        recs = w.etcd.get_prefix(PREFIX + "/actions/c1/restarts/")
        w.check(len(recs) == 1, "one restart record per target in etcd: %r" % recs)
        owner.kill()
        w.wait(lambda: standby.acting() == ["c1"], timeout=TTL + 5,
               what="the standby to take c1 over")
        # It decides: a third restart, or the budget found used up.
        w.wait(lambda: len(w.fake.restarts()) > 2 or
               standby.log_records(msg="restart budget exhausted", connector="orders"),
               what="the new owner to decide about orders/0")
        # Longer than the back-off (1 s at most) many times over.
        target = w.fake.poll_count() + 20
        w.wait(lambda: w.fake.poll_count() >= target, what="20 more polls")
        w.check(len(w.fake.restarts()) == 2, "a restart beyond the budget: %r"
                % w.fake.restarts())
        w.check(not standby.restarts_sent(), "the new owner restarted: %r"
                % standby.restarts_sent())
        w.check(standby.log_records(msg="ha: restart records taken over", targets="1"),
                "the standby did not say it took the restart records over")
        standby.finish()


if __name__ == "__main__":
    ha_harness.run_tests(globals())
