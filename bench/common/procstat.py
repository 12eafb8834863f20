"""procstat.py: CPU and anonymous memory of a process, from /proc.

CPU is the process's CPU-time clock (clock_gettime on the clock id Linux
derives from the pid: every thread's run time, exited threads included, in
nanoseconds), so a window of a few tenths of a second is measured to the
microsecond instead of in 10 ms ticks; utime and stime (fields 14 and 15 of
/proc/PID/stat, in ticks) give the user/system split. Memory is RssAnon from
/proc/PID/status. A Sampler thread records the peak RssAnon while a
measurement runs."""

import ctypes
import os
import threading
import time

TICK = os.sysconf("SC_CLK_TCK")
CPUCLOCK_SCHED = 2  # the scheduler's run-time clock (linux/posix-timers.h)


def process_clock(pid):
    """The CPU-time clock id of process `pid` (MAKE_PROCESS_CPUCLOCK)."""
    return ctypes.c_int32(((~pid) << 3) | CPUCLOCK_SCHED).value


def cpu_seconds(pid):
    return time.clock_gettime(process_clock(pid))


def cpu_split(pid):
    """(user, system) seconds in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        # comm may hold spaces: split after its closing parenthesis.
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def rss_anon_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


class Sampler:
    """Peak and last RssAnon of some pids, sampled every `every` seconds."""

    def __init__(self, pids, every=0.2):
        self.pids = dict(pids)  # name -> pid
        self.every = every
        self.peak = {n: 0 for n in self.pids}
        self.last = {n: 0 for n in self.pids}
        self._stop = threading.Event()
        self._t = None

    def _sample(self):
        for n, pid in self.pids.items():
            try:
                v = rss_anon_kib(pid)
            except OSError:
                continue
            self.last[n] = v
            self.peak[n] = max(self.peak[n], v)

    def start(self):
        def run():
            while not self._stop.is_set():
                self._sample()
                self._stop.wait(self.every)
        self._sample()
        self._t = threading.Thread(target=run, daemon=True)
        self._t.start()
        return self

    def stop(self):
        self._stop.set()
        if self._t:
            self._t.join()
        self._sample()


class CpuWindow:
    """CPU seconds each pid used between start() and stop(), and the wall time."""

    def __init__(self, pids):
        self.pids = dict(pids)

    def start(self):
        self.t0 = time.monotonic()
        self.c0 = {n: cpu_seconds(p) for n, p in self.pids.items()}
        self.s0 = {n: cpu_split(p) for n, p in self.pids.items()}
        return self

    def stop(self):
        self.wall = time.monotonic() - self.t0
        self.cpu = {n: cpu_seconds(p) - self.c0[n] for n, p in self.pids.items()}
        self.split = {}
        for n, p in self.pids.items():
            u, s = cpu_split(p)
            self.split[n] = (u - self.s0[n][0], s - self.s0[n][1])
        return self
