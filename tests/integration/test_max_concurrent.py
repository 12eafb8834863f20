#!/usr/bin/env python3
"""remediation.max_concurrent bounds the restarts in flight per cluster.

Three connectors fail at once while the cluster answers restarts slowly (1 s,
as a busy herder does). With max_concurrent: 1 the restarts go out one after
another, each only once the previous one was answered; with 3 they overlap.
All three connectors are healed either way."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Harness  # noqa: E402

DELAY = 1.0
NAMES = ("a-sink", "b-sink", "c-sink")


def run(limit):
    with Harness("max-concurrent-%d" % limit, workers=1) as h:
        for n in NAMES:
            h.fake.add_connector(n, tasks=1)
        h.fake.set_response_delay(DELAY, path=r"/restart$")
        h.start_daemon({"remediation": {"max_concurrent": limit}})
        for n in NAMES:
            h.fake.fail_task(n, 0)
        h.wait_for(lambda: len(h.fake.restarts()) >= 3 and
                   all(r.status is not None for r in h.fake.restarts()),
                   what="three answered restarts")
        for n in NAMES:
            h.wait_for(lambda n=n: h.fake.task_state(n, 0) == "RUNNING",
                       what="%s running again" % n)
        times = sorted(r.time for r in h.fake.restarts())
        gaps = [b - a for a, b in zip(times, times[1:])]
        h.check(sorted(r.path.split("/")[2] for r in h.fake.restarts()) == sorted(NAMES),
                "one restart per connector: %r" % h.fake.restarts())
        h.finish()
        return gaps


def test_one_at_a_time():
    gaps = run(1)
    # Each restart waits for the previous answer (DELAY) before it is sent.
    if min(gaps) < DELAY * 0.9:
        raise AssertionError("restarts overlapped with max_concurrent 1: gaps %r" % gaps)


def test_in_parallel():
    gaps = run(3)
    if max(gaps) >= DELAY * 0.9:
        raise AssertionError("restarts were serialised with max_concurrent 3: gaps %r" % gaps)


if __name__ == "__main__":
    harness.run_tests(globals())
