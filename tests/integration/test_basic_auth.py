#!/usr/bin/env python3
"""Basic auth (connect-rest.md §8): credentials are sent preemptively on every
request (the 401 carries no challenge), restarts work through it, and the
password never shows in the log."""

import base64
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402

PASSWORD = "Tr0ub4dor-&-3"


def test_preemptive_basic_auth():
    with Harness("basic-auth", workers=2, fake_kwargs={"basic_auth": ("kcw", PASSWORD)}) as h:
        pw = h.write("connect.password", PASSWORD + "\n")
        h.fake.add_connector("orders", tasks=1)
        h.start_daemon({"connect": [{"name": "c1", "urls": list(h.fake.urls),
                                     "poll_interval": "200ms", "timeout": "2s",
                                     "basic_auth": {"username": "kcw", "password_file": pw}}]})
        h.fake.fail_task("orders", 0)
        h.wait_for(lambda: h.fake.task_state("orders", 0) == "RUNNING"
                   and h.fake.restarts("orders"), what="restart through basic auth")
        want = "Basic " + base64.b64encode(("kcw:" + PASSWORD).encode()).decode()
        bad = [r for r in h.fake.requests() if r.headers.get("authorization") != want]
        h.check(not bad, "requests without the right Authorization header: %r" % bad[:5])
        h.check(not [r for r in h.fake.requests() if r.status == 401], "401 answers seen")
        h.check(PASSWORD not in h.log_text(), "the password appears in the daemon log")
        h.finish()


def test_wrong_password_is_not_a_crash():
    with Harness("basic-auth-wrong", workers=1, fake_kwargs={"basic_auth": ("kcw", PASSWORD)}) as h:
        pw = h.write("connect.password", "wrong\n")
        h.fake.add_connector("orders", tasks=1)
        h.start_daemon({"connect": [{"name": "c1", "urls": list(h.fake.urls),
                                     "poll_interval": "200ms", "timeout": "2s",
                                     "basic_auth": {"username": "kcw", "password_file": pw}}]})
        h.wait_for(lambda: len([r for r in h.fake.requests() if r.status == 401]) >= 3,
                   what="several 401 answers")
        h.fake.fail_task("orders", 0)
        h.wait_polls(5)
        h.check(not h.fake.requests(method="POST", pred=lambda r: r.status != 401),
                "a restart got through with a wrong password")
        h.check(h.log_records(level="error") or h.log_records(level="warn"),
                "401 not logged")
        h.finish()


if __name__ == "__main__":
    harness.run_tests(globals())
