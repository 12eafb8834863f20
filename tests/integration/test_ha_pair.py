#!/usr/bin/env python3
"""Two kcwatch instances on one Connect cluster through a real etcd: an
active/standby pair. Exactly one restart per failure and one notification;
the standby still evaluates (and shows) the alert; the restart's ownership
txn leaves its record in etcd; kill -9 of the owner during a failure hands
the cluster to the standby, which restarts the task within TTL + poll (plus a
small scheduling allowance); a clean stop revokes the lease and
hands over at once; the new owner does not page again what the old one
paged."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import ha_harness  # noqa: E402
from ha_harness import HaWorld, PREFIX, POLL, TTL  # noqa: E402

LABELS = {"cluster": "c1", "connector": "orders", "task": "0"}


def pair(w):
    a = w.instance("kcw-a")
    b = w.instance("kcw-b")
    a.start()
    b.start()
    acts = w.wait_settled(2)
    owner, standby = (a, b) if acts[0] == ["c1"] else (b, a)
    return owner, standby


def test_one_restart_one_notification():
    # The worker takes 1 s to act on a restart: the task stays FAILED long
    # enough for the standby's polls to see it too, whatever their phase.
    with HaWorld("pair", restart_process_delay=1.0) as w:
        w.fake.add_connector("orders", type="sink", tasks=1)
        owner, standby = pair(w)
        w.check(w.owners() == {"c1": owner.instance}, "etcd owners: %r" % w.owners())
        want = [{"cluster": "c1", "owner": owner.instance, "acting": False}]
        w.wait(lambda: (standby.ha() or {}).get("owners") == want,
               what="the standby's API to show who owns c1 (%r)" % want)
        w.fake.fail_task("orders", 0, harness.TASK_FAILED_TRACE)
        w.wait(lambda: w.fake.restarts(), what="a restart")
        w.wait(lambda: w.fake.task_state("orders", 0) == "RUNNING", what="orders/0 RUNNING")
        w.wait(lambda: w.sink.find_alerts("ConnectTaskFailed", "resolved", LABELS),
               what="the resolved notification")
        # Both evaluated the failure; only the owner acted on it.
        for inst in (owner, standby):
            w.check(inst.log_records(msg="alert firing", alertname="ConnectTaskFailed"),
                    "%s did not evaluate the failure" % inst.instance)
        # Several more rounds of both, to let a wrong second restart or
        # notification show up.
        target = w.fake.poll_count() + 20
        w.wait(lambda: w.fake.poll_count() >= target, what="20 more polls")
        w.check(len(w.fake.restarts()) == 1, "restarts: %r" % w.fake.restarts())
        w.check(len(owner.restarts_sent()) == 1 and not standby.restarts_sent(),
                "restart sent by owner %d, standby %d" % (len(owner.restarts_sent()),
                                                          len(standby.restarts_sent())))
        firing = w.sink.find_alerts("ConnectTaskFailed", "firing", LABELS)
        resolved = w.sink.find_alerts("ConnectTaskFailed", "resolved", LABELS)
        # As with one instance: the firing alert, then (remediation news) the
        # same alert with what the restart did, then the resolution; never
        # the same notification twice.
        notes = [a["annotations"].get("remediation", "") for _, a in firing]
        w.check(len(resolved) == 1 and len(firing) <= 2 and len(set(notes)) == len(notes),
                "one notification per step expected: firing %r, resolved %d"
                % (notes, len(resolved)))
        w.check(not standby.deliveries(), "the standby notified: %r" % standby.deliveries())
        # The restart went through the ownership txn, which recorded it.
        rec = w.etcd.get_prefix(PREFIX + "/actions/c1/")
        w.check(PREFIX + "/actions/c1/last" in rec, "no action record: %r" % rec)
        last = json.loads(rec[PREFIX + "/actions/c1/last"][0])
        w.check(last["instance"] == owner.instance and last["connector"] == "orders",
                "action record: %r" % last)
        m_owner, m_standby = owner.metrics(), standby.metrics()
        w.check('kcwatch_ha_owner{cluster="c1"} 1' in m_owner, "owner metric:\n" + m_owner)
        w.check('kcwatch_ha_owner{cluster="c1"} 0' in m_standby, "standby metric")
        w.check(any(l.startswith("kcwatch_ha_lease_renewals_total ") and
                    float(l.split()[1]) > 0 for l in m_owner.splitlines()),
                "renewals counted:\n" + m_owner)
        owner.finish()
        standby.finish()


def test_kill9_owner_during_failure():
    with HaWorld("kill9") as w:
        w.fake.add_connector("orders", type="sink", tasks=1)
        owner, standby = pair(w)
        owner.kill()
        killed = time.monotonic()
        w.fake.fail_task("orders", 0, harness.TASK_FAILED_TRACE)
        failed = time.monotonic()
        w.wait(lambda: w.fake.restarts(), timeout=TTL + 10, what="the standby's restart")
        first = w.fake.restarts()[0]
        took = first.time - failed
        print("  restart %.2fs after the failure (%.2fs after kill -9); TTL %ds + poll %.1fs"
              % (took, first.time - killed, TTL, POLL))
        # The owner's lease is granted TTL - 1 s, so etcd's 500 ms revoke
        # sweep deletes its key within TTL of its last keepalive (sent before
        # the kill); the standby's watch sees the delete at once, and within
        # the poll it has seen the failure. What is left is five loopback
        # round trips (read, claim, handover read, permit txn, the restart)
        # and being scheduled on a loaded 2-core machine: ALLOWANCE.
        ALLOWANCE = 0.2
        bound = TTL + POLL + ALLOWANCE
        w.check(took <= bound, "standby restarted %.2fs after the failure, more than "
                "TTL + poll + %.1fs (%.2fs)" % (took, ALLOWANCE, bound))
        w.wait(lambda: standby.restarts_sent(), what="the standby's restart sent log line")
        w.check(len(w.fake.restarts()) == 1, "restarts: %r" % w.fake.restarts())
        w.check(w.owners() == {"c1": standby.instance}, "etcd owners: %r" % w.owners())
        w.wait(lambda: w.sink.find_alerts("ConnectTaskFailed", "firing", LABELS),
               what="the standby's notification")
        w.check(standby.deliveries(), "the notification came from the standby")
        standby.finish()


def test_clean_stop_hands_over_at_once():
    with HaWorld("handover") as w:
        w.fake.add_connector("orders", type="sink", tasks=1)
        owner, standby = pair(w)
        stopped = time.monotonic()
        owner.finish()  # SIGTERM, exit 0 within 5 s
        w.wait(lambda: standby.acting() == ["c1"], what="the standby to take over")
        took = time.monotonic() - stopped
        print("  standby acting %.2fs after SIGTERM to the owner (TTL %ds)" % (took, TTL))
        w.check(owner.log_records(msg="ha: lease revoked; the other instances take over now"),
                "the owner did not revoke its lease")
        # Revoked: no waiting for the TTL.
        w.check(took < TTL, "takeover took %.2fs after a clean stop" % took)
        w.fake.fail_task("orders", 0, harness.TASK_FAILED_TRACE)
        w.wait(lambda: standby.restarts_sent(), what="the new owner's restart")
        standby.finish()


def test_takeover_does_not_page_again():
    """The owner's notification log is in etcd; the instance that takes over
    adopts it: an alert already paged is not paged again, and the new owner
    sends its resolution."""
    rules = harness.default_rules() + [harness.connect_rule("ConnectorPaused", "connector",
                                                            "PAUSED")]
    labels = {"cluster": "c1", "connector": "audit"}
    with HaWorld("nodouble") as w:
        w.fake.add_connector("audit", type="sink", tasks=1, paused=True)
        a, b = w.instance("kcw-a"), w.instance("kcw-b")
        a.start(rules=rules)
        b.start(rules=rules)
        acts = w.wait_settled(2)
        owner, standby = (a, b) if acts[0] == ["c1"] else (b, a)
        w.wait(lambda: w.sink.find_alerts("ConnectorPaused", "firing", labels),
               what="the owner's page")
        w.wait(lambda: w.etcd.get_prefix("%s/notified/%s/" % (PREFIX, owner.instance)),
               what="the owner's notification log in etcd")
        owner.kill()
        w.wait(lambda: standby.acting() == ["c1"], timeout=TTL + 5,
               what="the standby to take c1 over")
        w.wait(lambda: standby.log_records(msg="ha: notification logs taken over"),
               what="the handover of the notification logs")
        target = w.fake.poll_count() + 15  # and six group intervals
        w.wait(lambda: w.fake.poll_count() >= target, what="15 more polls")
        firing = w.sink.find_alerts("ConnectorPaused", "firing", labels)
        w.check(len(firing) == 1, "paged %d times: %r" % (len(firing), firing))
        w.check(not standby.deliveries(), "the new owner paged again: %r"
                % standby.deliveries())
        w.fake.resume("audit")
        w.wait(lambda: w.sink.find_alerts("ConnectorPaused", "resolved", labels),
               what="the resolution")
        w.check(standby.deliveries(), "the resolution came from the new owner")
        standby.finish()


if __name__ == "__main__":
    ha_harness.run_tests(globals())
