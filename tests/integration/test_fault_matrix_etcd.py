#!/usr/bin/env python3
"""The fault matrix's etcd row (tests/FAULTS.md): one kcwatch instance with
ha.etcd whose only endpoint is fault_proxy.py in front of a real etcd
member (Debian's etcd); each fault as an episode. etcd's grpc-gateway
answers 429 (ResourceExhausted: "too many requests") and 409 (Aborted), so
both are cells too. The watch on the ownership keys (a streaming POST
/v3/watch) goes through the proxy as well: passed on piece by piece while no
fault is set, cut when one is.

In every cell kcwatch
1. keeps running;
2. logs the episode once: the WARN/ERROR lines about etcd are the first
   failure and the state changes it causes (lease not renewed, stopped
   acting for the cluster), never one per request, however long it lasts;
3. acts on no partial data: it stops acting within the TTL (the fence runs
   out when keepalives fail), so a task that fails meanwhile is shown but
   not restarted and no cluster alert is notified; an unreadable ownership
   answer (malformed, truncated, huge, endless) never makes it act;
4. shows it: /api/v1/ha leaseValid false, kcwatch_ha_owner{cluster} 0,
   kcwatch_ha_lease_renewals_total flat, and the KcwatchEtcdUnavailable
   alert delivered;
5. recovers by itself once the fault clears: lease renewed, the cluster
   owned again (kcwatch_ha_owner 1), the failed task restarted, and
   KcwatchEtcdUnavailable resolved."""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "fakes"))
import harness  # noqa: E402
import ha_harness  # noqa: E402
from fault_proxy import FaultProxy  # noqa: E402
from ha_harness import HaWorld, TTL  # noqa: E402
from test_fault_matrix import FAULTS, cell  # noqa: E402
from test_metrics import value  # noqa: E402

# The failure and its consequences, each once: "ha: etcd request failed"
# (its later wordings, e.g. a reset seen before or after the status line,
# are DEBUG), "lease not renewed in time", "stopped acting for cluster"; one
# more for a state change a slow machine may add (the lease lost at etcd).
MAX_EPISODE_LINES = 4


def test_etcd_faults():
    with HaWorld("faults-etcd") as w:
        proxy = FaultProxy(w.etcd.urls[0]).start()
        try:
            w.etcd_urls = [proxy.url]
            w.fake.add_connector("orders", type="sink", tasks=1)
            a = w.instance("kcw-a")
            a.start(overrides={"remediation": {"budget": {"max_restarts": 100,
                                                          "window": "1h"}}})
            w.wait(lambda: a.acting() == ["c1"], what="kcw-a acting for c1")
            w.wait(lambda: [r for r in proxy.forwarded() if r[1] == "/v3/watch"],
                   what="the watch opened through the proxy")
            for fault, kw in FAULTS:
                name = cell(fault, kw)
                start = len(a.log_lines())
                restarts0 = len(w.fake.restarts())
                t0 = time.monotonic()
                proxy.set_fault(fault, **kw)
                # Fenced: it stops acting within the TTL, and says so.
                w.wait(lambda: (a.ha() or {}).get("leaseValid") is False and a.acting() == [],
                       timeout=TTL + 5, what="%s: kcw-a stopped acting" % name)
                w.check(time.monotonic() - t0 <= TTL + 1.5,
                        "%s: still acting %.1fs into the fault" % (name, time.monotonic() - t0))
                renewals = int(a.ha()["leaseRenewals"])
                # A failure now is shown, not acted on.
                w.fake.fail_task("orders", 0, harness.TASK_FAILED_TRACE)
                w.wait(lambda: w.sink.find_alerts("KcwatchEtcdUnavailable", "firing",
                                                  {"kcwatch_instance": "kcw-a"}, after=t0),
                       timeout=3 * TTL + 5, what="%s: KcwatchEtcdUnavailable delivered" % name)
                w.wait(lambda: fault == "refused" or len(proxy.faulted()) >= 8, timeout=30,
                       what="%s: an episode of several failed etcd requests" % name)
                target = w.fake.poll_count() + 10
                w.wait(lambda: w.fake.poll_count() >= target, what="%s: 10 polls" % name)
                w.check(a.alive(), "%s: the daemon died" % name)
                w.check(len(w.fake.restarts()) == restarts0,
                        "%s: restarted while fenced: %r" % (name, w.fake.restarts()))
                w.check(not w.sink.find_alerts("ConnectTaskFailed", "firing", after=t0),
                        "%s: a cluster alert notified while fenced" % name)
                m = a.metrics()
                w.check(value(m, "kcwatch_ha_owner", cluster="c1") == 0,
                        "%s: kcwatch_ha_owner{cluster=c1} not 0" % name)
                w.check(value(m, "kcwatch_ha_lease_renewals_total") == renewals
                        and int(a.ha()["leaseRenewals"]) == renewals,
                        "%s: lease renewed through the fault" % name)
                loud = [r for r in (harness.parse_logfmt(x) for x in a.log_lines()[start:])
                        if r.get("level") in ("warn", "error") and r.get("msg", "").startswith("ha:")]
                w.check(len(loud) <= MAX_EPISODE_LINES,
                        "%s: %d warn/error lines for one episode:\n%s"
                        % (name, len(loud), "\n".join(map(str, loud))))
                n_faulted = len(proxy.faulted())
                proxy.clear()
                t1 = time.monotonic()
                # Recovers: owns c1 again and restarts the failed task.
                w.wait(lambda: len(w.fake.restarts()) > restarts0
                       and w.fake.task_state("orders", 0) == "RUNNING",
                       timeout=30, what="%s: the failed task restarted after the fault" % name)
                w.wait(lambda: a.acting() == ["c1"]
                       and value(a.metrics(), "kcwatch_ha_owner", cluster="c1") == 1,
                       what="%s: c1 owned again" % name)
                w.wait(lambda: w.sink.find_alerts("KcwatchEtcdUnavailable", "resolved",
                                                  {"kcwatch_instance": "kcw-a"}, after=t1),
                       timeout=20, what="%s: KcwatchEtcdUnavailable resolved" % name)
                w.wait(lambda: value(a.metrics(), "kcwatch_ha_lease_renewals_total") > renewals,
                       what="%s: the lease renewed again" % name)
                print("  etcd x %-10s ok: %d faulted requests, %d loud lines, recovered in %.1fs"
                      % (name, n_faulted, len(loud), time.monotonic() - t1))
                proxy.records.clear()
            a.finish()
        finally:
            proxy.stop()


if __name__ == "__main__":
    ha_harness.run_tests(globals())
