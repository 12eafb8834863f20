#!/usr/bin/env python3
"""An owner partitioned from etcd but not from Connect stops acting.

The owner runs in its own network namespace, joined to the host by a veth
pair carrying two subnets: 10.213.0.0/24 to Connect and the webhook sink,
10.213.1.0/24 to etcd. A blackhole route to etcd inside the namespace is the
partition: the owner still polls Connect and still reaches the sink, but no
etcd. It must stop acting within the TTL and say so (and page about its own
etcd outage); the other instance takes the cluster over and restarts the
failure. Needs root and `ip netns`; without them the test says SKIP and why.
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import ha_harness  # noqa: E402
from ha_harness import HaWorld, TTL, log_time  # noqa: E402

NS = "kcwha%d" % os.getpid()
VETH_HOST = "kcwh%da" % (os.getpid() % 100000)
VETH_NS = "kcwh%db" % (os.getpid() % 100000)
CONNECT_HOST, CONNECT_NS = "10.213.0.1", "10.213.0.2"
ETCD_HOST, ETCD_NS = "10.213.1.1", "10.213.1.2"


def ip(*args, check=True):
    return subprocess.run(["ip"] + list(args), capture_output=True, text=True, check=check,
                          timeout=10)


def netns_setup():
    """Creates the namespace and veth; returns None, or why it cannot."""
    if os.geteuid() != 0:
        return "not root"
    try:
        ip("netns", "add", NS)
    except (OSError, subprocess.CalledProcessError) as e:
        return "ip netns add failed: %s" % (getattr(e, "stderr", "") or e)
    try:
        ip("link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_NS)
        ip("link", "set", VETH_NS, "netns", NS)
        ip("addr", "add", CONNECT_HOST + "/24", "dev", VETH_HOST)
        ip("addr", "add", ETCD_HOST + "/24", "dev", VETH_HOST)
        ip("link", "set", VETH_HOST, "up")
        ip("-n", NS, "addr", "add", CONNECT_NS + "/24", "dev", VETH_NS)
        ip("-n", NS, "addr", "add", ETCD_NS + "/24", "dev", VETH_NS)
        ip("-n", NS, "link", "set", VETH_NS, "up")
        ip("-n", NS, "link", "set", "lo", "up")
    except subprocess.CalledProcessError as e:
        netns_teardown()
        return "veth setup failed: %s" % e.stderr
    return None


def netns_teardown():
    ip("netns", "del", NS, check=False)  # takes the veth pair with it
    ip("link", "del", VETH_HOST, check=False)


def test_partitioned_owner_stops_acting():
    why = netns_setup()
    if why:
        print("SKIP test_partitioned_owner_stops_acting: network namespaces unavailable (%s)"
              % why)
        return
    try:
        with HaWorld("partition", etcd_host=ETCD_HOST, connect_host=CONNECT_HOST) as w:
            w.fake.add_connector("orders", type="sink", tasks=1)
            part = w.instance("kcw-ns", netns=NS)
            part.host = CONNECT_NS  # its admin API, reached over the veth
            other = w.instance("kcw-host")
            part.start()
            w.wait(lambda: part.acting() == ["c1"], what="the namespaced instance to own c1")
            other.start()
            w.wait(lambda: (other.ha() or {}).get("owners") ==
                   [{"cluster": "c1", "owner": "kcw-ns", "acting": False}],
                   what="the other instance to see kcw-ns own c1")
            mark = len(part.log_lines())
            ip("-n", NS, "route", "add", "blackhole", ETCD_HOST + "/32")
            cut, cut_wall = time.monotonic(), time.time()
            rec = w.wait(lambda: part.log_records(mark, msg="ha: stopped acting for cluster",
                                                  cluster="c1"), timeout=TTL + 5,
                         what="the partitioned owner to say it stopped acting")[0]
            took = log_time(rec) - cut_wall
            print("  partitioned owner stopped acting after %.2fs (TTL %ds)" % (took, TTL))
            w.check(took <= TTL, "stopped only after %.2fs" % took)
            w.wait(lambda: part.acting() == [], what="its API to show it acts for nothing")
            w.wait(lambda: other.acting() == ["c1"], timeout=TTL + 5,
                   what="the other instance to take c1 over")
            # Still polling Connect, so it still evaluates; it must not act.
            # Restarts fail again, so the failure lasts long enough for both
            # to see it whatever their poll phase.
            w.fake.set_restart_outcome("orders", "fail_again")
            w.fake.fail_task("orders", 0, harness.TASK_FAILED_TRACE)
            w.wait(lambda: other.restarts_sent(), what="the new owner's restart")
            w.wait(lambda: part.log_records(mark, msg="alert firing",
                                            alertname="ConnectTaskFailed"),
                   what="the partitioned instance to see the failure too")
            w.wait(lambda: w.sink.find_alerts("KcwatchEtcdUnavailable", "firing",
                                              {"kcwatch_instance": "kcw-ns"}),
                   what="the partitioned instance to page about its etcd outage")
            target = w.fake.poll_count() + 10
            w.wait(lambda: w.fake.poll_count() >= target, what="10 more polls")
            w.check(not part.restarts_sent(mark), "the partitioned instance restarted")
            w.check(not part.deliveries(after=cut, cluster_alerts_only=True),
                    "the partitioned instance notified about a cluster: %r"
                    % part.deliveries(after=cut, cluster_alerts_only=True))
            w.wait(lambda: len(w.fake.restarts()) == len(other.restarts_sent()),
                   what="every restart Connect got to be one the new owner logged")
            # Healed: it rejoins as the standby; the owner keeps c1.
            ip("-n", NS, "route", "del", "blackhole", ETCD_HOST + "/32")
            w.wait(lambda: (part.ha() or {}).get("leaseValid") is True, timeout=TTL + 5,
                   what="the healed instance to hold a lease again")
            w.check(part.acting() == [] and other.acting() == ["c1"], "ownership after heal")
            part.finish()
            other.finish()
    finally:
        netns_teardown()


if __name__ == "__main__":
    ha_harness.run_tests(globals())
