#!/usr/bin/env python3
"""The fault matrix's Alertmanager row (tests/FAULTS.md): a real
Alertmanager HA pair (Debian's prometheus-alertmanager), one member behind
fault_proxy.py, the other reached directly; each fault as an episode,
checked as the webhook row is (test_fault_matrix.receiver_faults).

Alertmanager semantics: kcwatch posts every alert to every member and sends
firing alerts again every resend_interval, so a member that missed them
(a fault, even a 200 that was not Alertmanager's) gets them with the next
send once the fault clears: every cell ends with the alert on the faulted
member. While the fault lasts the other member holds the alert (the pair
keeps paging). 2xx is accepted; 429 and 5xx are retried; other 4xx (409
here) and 3xx are final for that send, as in Prometheus' notifier."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "fakes"))
import harness  # noqa: E402
from am_harness import start_pair  # noqa: E402
from fault_proxy import FaultProxy  # noqa: E402
from harness import Harness  # noqa: E402
from test_fault_matrix import receiver_config, receiver_faults  # noqa: E402


def active(am, conn):
    return [a for a in am.alerts(alertname="ConnectTaskFailed", connector=conn)
            if a["status"]["state"] == "active"]


def test_alertmanager_faults():
    with Harness("faults-am", workers=1) as h:
        am1 = am2 = proxy = None
        try:
            am1, am2 = start_pair(h.tmp, h.sink.url + "/from-am")
            proxy = FaultProxy(am1.url).start()
            h.start_daemon(receiver_config({"name": "am", "alertmanager": {
                "urls": [proxy.url, am2.url], "resend_interval": "1s", "timeout": "1s"}}))

            def other_member_has_it(name, conn):
                h.wait_for(lambda: active(am2, conn), timeout=20,
                           what="%s: the alert on the other member" % name)
            receiver_faults(h, proxy, "am", lambda conn: active(am1, conn), resends=True,
                            during=other_member_has_it, label="alertmanager")
            h.finish()
        finally:
            for x in (proxy, am1, am2):
                if x is not None:
                    (x.stop if x is proxy else x.close)()


if __name__ == "__main__":
    harness.run_tests(globals())
